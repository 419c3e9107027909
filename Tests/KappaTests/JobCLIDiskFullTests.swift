import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaTesting

extension CLITests {
    /// Issue 8: a disk that fills while a job daemon runs. The daemon stops with the task,
    /// the reason and where its input stood; nothing after its last checkpoint counts and
    /// no torn batch is left. Started again once there is room, it resumes from its
    /// checkpoints and ends with exactly the output of an uninterrupted run.
    @Suite struct JobCLIDiskFullTests {
        static let job = """
            name: per-user
            inputs: [e]
            window: { key: user_id, time: time_utc, size: 1h, grace: 1h, aggregates: [count], emit: updates }
            output: per-user
            """

        @Test(.enabled(if: TmpfsMount.available, "needs root to mount a small tmpfs"))
        func diskFullStopsTheDaemonAtItsLastCheckpointAndItResumes() throws {
            let lines = rebuLines(seed: 83, count: 40_000)
            // The reference, on a roomy disk.
            let ref = try CLIWorkspace()
            try ref.createTopic("e", partitions: 2)
            try ref.produce("e", lines)
            try ref.ok(["replay", try ref.writeJobFile("per-user.yaml", Self.job), "--switch"])
            let expected = try ref.values("per-user")
            try #require(expected.count == lines.count, "emit: updates writes one record per event")

            let mount = try TmpfsMount(sizeBytes: 3 << 20)  // the input takes 2.6 MiB, its output 0.8 MiB more
            let ws = try CLIWorkspace(dataRoot: mount.path + "/data")
            try ws.createTopic("e", partitions: 2)
            try ws.produce("e", lines)  // the input fits; its output will not
            let file = try ws.writeJobFile("per-user.yaml", Self.job)
            let daemon = try ws.start(["process", file])
            let status = try daemon.waitForExit(timeoutSeconds: 120)
            #expect(status == 1, "the daemon must stop with an error when the disk is full: \(daemon.result)")
            let message = daemon.stderrText.split(separator: "\n").last.map(String.init) ?? ""
            #expect(message.hasPrefix("kappa: per-user.v1 task ") && message.contains(" stopped (input at e/")
                    && message.contains("No space left on device") && message.contains("free space, then start it again"), "\(message)")
            // No torn batch anywhere, and readers see only what checkpoints published.
            for topic in ["per-user.v1", "e"] {
                for p: Int32 in 0..<2 {
                    for log in try ws.logFiles(topic, p) {
                        #expect(try diskBatches(log).reduce(0) { $0 + $1.totalBytes } == Int(fileSize(log)), "\(log): no torn batch")
                    }
                }
            }
            let before = try ws.values("per-user")
            #expect(before.count < lines.count && Set(before).isSubset(of: Set(expected)), "\(before.count) results visible before the restart")

            try mount.resize(bytes: 64 << 20)
            let resumed = try ws.start(["process", file])
            try ws.waitCaughtUp("per-user", version: 1, daemons: [resumed], partitions: 2)
            try stopCleanly(resumed)
            #expect(errorLines(resumed.stderrText).isEmpty, "\(resumed.stderrText.suffix(2000))")
            let after = try ws.values("per-user")
            expectSameMultiset(after, expected, "per-user after the full disk and a restart")
        }
    }
}
