import Foundation
import Testing
import KappaTesting

extension CLITests {
    /// Checkpoints written by the previous format (before inputs could be re-keyed) are
    /// read: a daemon of this version continues the three SPEC jobs from them and ends
    /// with the results a fresh replay over all the data computes.
    @Suite struct JobCLIUpgradeTests {
        /// `Fixtures/format1-checkpoints.tgz`: a data directory made by the binary of commit
        /// bca17de (checkpoint format 1): `rebu-gen --seed 11 --events 3000` in 3 partitions
        /// per topic, the first half of each topic produced, and the three shipped jobs run
        /// by `kappa process` to a clean stop; beside it, the second halves as JSON Lines.
        static let fixture = JobFx.packageRoot + "/Tests/KappaTests/Fixtures/format1-checkpoints.tgz"

        @Test(arguments: ShippedJob.allCases)
        func formatOneCheckpointsContinue(_ job: ShippedJob) throws {
            let ws = try CLIWorkspace()
            let unpack = Process()
            unpack.executableURL = URL(fileURLWithPath: "/bin/tar")
            unpack.arguments = ["xzf", Self.fixture, "-C", ws.tmp.path]
            try unpack.run()
            unpack.waitUntilExit()
            try #require(unpack.terminationStatus == 0, "tar xzf \(Self.fixture)")
            let data = ws.tmp.path + "/data"
            @discardableResult func kappa(_ args: [String]) throws -> CLIResult { try ws.ok(args + ["--data", data]) }

            for t in job.inputs {
                try kappa(["produce", t.rawValue, ws.tmp.path + "/\(t.rawValue)-2.jsonl"])
            }
            let file = try ws.jobFile(job)
            let daemon = try ws.start(["process", file, "--data", data])
            defer { if daemon.isRunning { daemon.send(SIGKILL) } }
            // Caught up: every task's checkpoint has read every input record.
            let total = try job.inputs.reduce(Int64(0)) { acc, t in
                acc + (try kappa(["topics", "describe", t.rawValue]).stdoutLines.map(parseJSONObject).reduce(Int64(0)) { $0 + intField($1, "end_offset") })
            }
            try waitUntil("\(job.name) v1 to read all \(total) input records", timeoutSeconds: 60, pollSeconds: 0.2) {
                guard daemon.isRunning else { throw CLIFailure(description: "the daemon exited: \(daemon.result)") }
                let r = try ws.kappa(["jobs", "describe", job.name, "--data", data])
                guard r.status == 0, let v1 = try r.stdoutLines.map(parseJSONObject).first(where: { intField($0, "version") == 1 }),
                      let tasks = v1["tasks"] as? [[String: Any]] else { return false }
                return tasks.reduce(Int64(0)) { $0 + (($1["processed"] as? NSNumber)?.int64Value ?? 0) } == total
            }
            try stopCleanly(daemon)
            #expect(errorLines(daemon.stderrText).isEmpty, "\(daemon.stderrText.suffix(2000))")

            try kappa(["replay", file])
            let diff = try parseJSONObject(try #require(try kappa(["jobs", "diff", job.name, "1", "2"]).stdoutLines.last))
            let output = try kappa(["consume", "\(job.output).v1", "--from-beginning"]).stdoutLines
            #expect(duplicates(output).isEmpty && Int64(output.count) == intField(diff, "results_a"),
                    "\(job.name): v1's output topic holds \(output.count) records for \(intField(diff, "results_a")) results")
            #expect(intField(diff, "only_in_a") == 0 && intField(diff, "only_in_b") == 0 && intField(diff, "different") == 0 && intField(diff, "same") > 0,
                    "\(job.name): v1 continued from format-1 checkpoints vs a fresh replay: \(diff)")
        }
    }
}
