import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaTesting
import RebuGenerator

extension CLITests {
    /// Several `kappa process` daemons of one job (SPEC §4, §6): they split its tasks, each
    /// task has one owner; when one dies (kill -9) the others take its tasks over, a new
    /// daemon takes its share, and the results equal an uninterrupted run's.
    @Suite struct JobCLIDaemonTests {
        /// The pid in a member id (`HOST-PID-N`).
        static func pid(ofMember id: String) -> Int32? {
            let parts = id.split(separator: "-")
            guard parts.count >= 3 else { return nil }
            return Int32(parts[parts.count - 2])
        }

        /// The owner pid of each task (nil: no owner), by task.
        static func owners(_ ws: CLIWorkspace, _ job: ShippedJob) throws -> [Int32?] {
            try ws.jobTasks(job.name, version: 1).map { ($0["owner"] as? String).flatMap(pid(ofMember:)) }
        }

        /// Waits until every task has an owner and the owners are exactly `daemons`.
        static func waitForOwners(_ ws: CLIWorkspace, _ job: ShippedJob, _ daemons: [CLIProcess], _ what: String) throws {
            var seen: [Int32?] = []
            try waitUntil("\(what): tasks owned by exactly \(daemons.map(\.pid)) (last seen: \(seen))", timeoutSeconds: 60, pollSeconds: 0.1) {
                for d in daemons where !d.isRunning { throw CLIFailure(description: "\(d) exited: \(d.result)") }
                // The job is registered by the first daemon a moment after it starts.
                guard try ws.kappa(["jobs", "describe", job.name]).status == 0 else { return false }
                seen = try owners(ws, job)
                return seen.count == JobFx.partitions && seen.allSatisfy { $0 != nil }
                    && Set(seen.compactMap { $0 }) == Set(daemons.map(\.pid))
            }
        }

        @Test(arguments: [ShippedJob.ridesPerCity, .appSessions, .ticketRideMatch])
        func daemonsSplitTasksAndTakeOverFromAKilledOne(_ job: ShippedJob) throws {
            let reference = try CLIWorkspace().referenceRun(job)
            try #require(!reference.output.isEmpty)

            let ws = try CLIWorkspace()
            try ws.createRebuTopics()
            let file = try ws.jobFile(job)
            let rounds = 4
            let parts = job.inputs.map { ($0, JobFx.chunks(JobFx.lines($0), count: rounds + 2)) }
            for (t, p) in parts { try ws.produce(t.rawValue, p[0]) }
            var rng = SeededRandom(seed: 0xDAE + UInt64(ShippedJob.allCases.firstIndex(of: job)!))

            var live = [try ws.start(["process", file]), try ws.start(["process", file])]
            var all = live
            try Self.waitForOwners(ws, job, live, "two daemons")
            let split = try Self.owners(ws, job)
            #expect(split.filter { $0 == live[0].pid }.count == 2 && split.filter { $0 == live[1].pid }.count == 2,
                    "4 tasks over 2 daemons should split 2 + 2: \(split) (daemons \(live.map(\.pid)))")

            for round in 1...rounds {
                // More input; kill -9 one daemon while it works on it (a chunk takes the
                // daemons of a debug build about half a second).
                for (t, p) in parts { try ws.produce(t.rawValue, p[round]) }
                sleepMillis(rng.int(0...500))
                let victim = live.remove(at: rng.int(0...1))
                try killNine(victim)
                try Self.waitForOwners(ws, job, live, "round \(round): the survivor after kill -9 of \(victim.pid)")
                // A new daemon takes its share.
                let fresh = try ws.start(["process", file])
                live.append(fresh)
                all.append(fresh)
                try Self.waitForOwners(ws, job, live, "round \(round): after a new daemon joined")
            }
            for (t, p) in parts { try ws.produce(t.rawValue, p[rounds + 1]) }

            try ws.waitCaughtUp(job.name, version: 1, daemons: live)
            // A clean stop hands the tasks over too.
            try stopCleanly(live[0])
            try Self.waitForOwners(ws, job, [live[1]], "after SIGTERM of \(live[0].pid)")
            try ws.waitCaughtUp(job.name, version: 1, daemons: [live[1]])
            try stopCleanly(live[1])
            let errors = all.flatMap { errorLines($0.stderrText) }
            #expect(errors.isEmpty, "the daemons reported errors: \(errors.prefix(5))")

            let owners = try Self.owners(ws, job)
            #expect(owners.allSatisfy { $0 == nil }, "tasks still owned after every daemon stopped: \(owners)")
            var results = try ws.results(job.name, output: job.output, version: 1)
            results.output = try ws.values(job.output)
            expectSameResults(results, reference, "\(job.name) with daemons joining, killed and leaving (seed \(rng.seed))")
        }
    }
}
