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
    /// Exactly-once under kill -9 (SPEC §6): a `kappa process` daemon killed at random
    /// moments while its input is produced in chunks — and restarted each time — ends with
    /// the same output topic, late/dead-letter topics and query rows as one uninterrupted
    /// replay over the whole input, and no output record is visible twice.
    @Suite struct JobCLIExactlyOnceTests {
        static let chunks = 10

        /// A kill moment: right away (the daemon is starting or restoring), soon (reading
        /// the new chunk), or later (busy, checkpointing, or idle again).
        static func randomDelay(_ rng: inout SeededRandom) -> Int {
            switch rng.int(0...2) {
            case 0: return rng.int(0...25)
            case 1: return rng.int(25...250)
            default: return rng.int(250...1200)
            }
        }

        @Test(arguments: ShippedJob.allCases)
        func killNineWhileProducingEqualsUninterruptedRun(_ job: ShippedJob) throws {
            try killNineWhileProducing(job, keying: .byUser)
        }

        /// The same through the repartition topic (SPEC §5): app events keyed by device,
        /// rides by ride, tickets by ticket, so sessions and matches re-key every input.
        /// The results must also equal those over co-partitioned inputs: the same rows,
        /// of which those final over re-keyed inputs are final over co-partitioned ones
        /// too. (Not the other way round at the end of the data: a re-keyed owner waits
        /// for the slowest of all input partitions, a direct task only for its own.)
        @Test(arguments: [ShippedJob.appSessions, .ticketRideMatch])
        func killNineWhileReKeyingEqualsUninterruptedRun(_ job: ShippedJob) throws {
            let coPartitioned = try CLIWorkspace().referenceRun(job, keying: .byUser)
            let reKeyed = try killNineWhileProducing(job, keying: .byOwnId)
            expectSameMultiset(reKeyed.query.map(withoutFinal), coPartitioned.query.map(withoutFinal),
                               "\(job.name): query rows over re-keyed inputs vs co-partitioned ones")
            let finals = Set(coPartitioned.output)
            let notFinal = reKeyed.output.filter { !finals.contains($0) }
            #expect(notFinal.isEmpty, "\(job.name): \(notFinal.count) results final over re-keyed inputs are not over co-partitioned ones: \(notFinal.prefix(2).map(text))")
            let heldBack = coPartitioned.output.count - reKeyed.output.count
            #expect(heldBack >= 0 && heldBack < coPartitioned.output.count / 100,
                    "\(job.name): \(heldBack) of \(coPartitioned.output.count) results held back over re-keyed inputs (expected only the last few)")
        }

        /// A query row without its `"final"` flag.
        func withoutFinal(_ row: [UInt8]) -> [UInt8] {
            for suffix in [",\"final\":true}", ",\"final\":false}"] where row.count > suffix.utf8.count && row.suffix(suffix.utf8.count).elementsEqual(suffix.utf8) {
                return Array(row.dropLast(suffix.utf8.count)) + [UInt8(ascii: "}")]
            }
            return row
        }

        /// Kills and restarts a daemon of `job` while its inputs are produced; returns the
        /// reference results it was compared with.
        @discardableResult
        func killNineWhileProducing(_ job: ShippedJob, keying: InputKeying) throws -> JobResults {
            let reference = try CLIWorkspace().referenceRun(job, keying: keying)
            try #require(!reference.output.isEmpty, "the reference run of \(job.name) wrote no output")
            #expect(duplicates(reference.output).count == 0, "the reference output of \(job.name) has duplicate records")
            #expect(reference.query.count >= reference.output.count, "query shows fewer rows than the output topic holds")

            let ws = try CLIWorkspace()
            try ws.createRebuTopics(keying)
            let file = try ws.jobFile(job)
            // JOBCLI_SEED=N replays (or varies) the kill moments' choices.
            let base = ProcessInfo.processInfo.environment["JOBCLI_SEED"].flatMap { UInt64($0) } ?? 0xE0CE
            var rng = SeededRandom(seed: base + UInt64(ShippedJob.allCases.firstIndex(of: job)!) + (keying == .byUser ? 0 : 100))
            let chunked = job.inputs.map { ($0, JobFx.chunks(JobFx.lines($0), count: Self.chunks)) }

            var daemon = try ws.start(["process", file])
            var kills = 0
            var daemonErrors: [String] = []
            func restart() throws {
                daemonErrors += errorLines(daemon.stderrText)
                daemon = try ws.start(["process", file])
            }
            for c in 0..<Self.chunks {
                // Produce this chunk of every input (in a random order) in the background,
                // and kill the daemon at a random moment while it runs.
                var order = chunked
                order.shuffle(using: &rng)
                let killDuring = rng.int(0...(order.count - 1))
                for (i, (topic, parts)) in order.enumerated() {
                    let chunkFile = try ws.writeFile("chunk-\(topic.rawValue)-\(c).jsonl", lines: parts[c])
                    let producer = try ws.start(["produce", topic.rawValue, chunkFile])
                    if i == killDuring {
                        sleepMillis(Self.randomDelay(&rng))
                        try killNine(daemon)
                        kills += 1
                        try restart()
                    }
                    let status = try producer.waitForExit(timeoutSeconds: 120)
                    try #require(status == 0, "\(producer.result)")
                }
                // Sometimes kill again while the daemon is busy with the chunk, or right
                // after its restart (while it restores its checkpoints).
                if rng.chance(60) {
                    sleepMillis(Self.randomDelay(&rng))
                    try killNine(daemon)
                    kills += 1
                    try restart()
                }
            }
            #expect(kills >= 5, "only \(kills) kills")

            try ws.waitCaughtUp(job.name, version: 1, daemons: [daemon])
            try stopCleanly(daemon)
            daemonErrors += errorLines(daemon.stderrText)
            #expect(daemonErrors.isEmpty, "the daemons reported errors: \(daemonErrors.prefix(5))")

            let tasks = try ws.jobTasks(job.name, version: 1)
            let total = job.inputs.reduce(0) { $0 + JobFx.lines($1).count }
            let processed = tasks.reduce(Int64(0)) { $0 + intField($1, "processed") }
            #expect(processed == Int64(total), "tasks report \(processed) records processed, the inputs hold \(total) (after \(kills) kills)")

            var results = try ws.results(job.name, output: job.output, version: 1)
            results.output = try ws.values(job.output)
            expectSameResults(results, reference, "\(job.name) (\(keying.rawValue)) after \(kills) kill -9 (seed \(rng.seed))")
            return reference
        }
    }
}
