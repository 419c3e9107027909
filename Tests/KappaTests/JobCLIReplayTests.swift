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
    /// Replay (SPEC §7): `kappa replay` computes the next version from offset 0 into its
    /// own topics while the current version keeps running and serving; `jobs switch`
    /// moves readers; `jobs drop` deletes an old version, never the current one.
    @Suite struct JobCLIReplayTests {
        /// One row of a window job's `kappa query` output.
        struct WindowRow: Hashable {
            var key: String
            var start: Int64
            var end: Int64
            var count: Int64
            var final: Bool
        }

        static func windowRows(_ lines: [[UInt8]]) throws -> [WindowRow] {
            try lines.map { line in
                let o = try parseJSONObject(line)
                let start = try #require(stringValue(o, "window_start").flatMap(wholeSeconds), "window_start in \(text(line))")
                let end = try #require(stringValue(o, "window_end").flatMap(wholeSeconds), "window_end in \(text(line))")
                return WindowRow(key: try #require(o["key"] as? String, "key in \(text(line))"), start: start, end: end,
                                 count: intField(o, "count"), final: (o["final"] as? Bool) ?? true)
            }
        }

        /// Rides per (city, window start) for tumbling windows of `size` seconds, counted
        /// plainly from the input lines (the data's disorder, 5 minutes, is below the
        /// job's grace, so no ride is late and every ride is in exactly one window).
        static func expectedCounts(_ rides: [[UInt8]], size: Int64) throws -> [String: Int64] {
            var out: [String: Int64] = [:]
            for l in rides {
                let city = try #require(stringField("city", in: l), "city in \(text(l))")
                let t = try #require(stringField("time_utc", in: l).flatMap(wholeSeconds), "time_utc in \(text(l))")
                out["\(city)|\(t - t % size)", default: 0] += 1
            }
            return out
        }

        /// Query rows (final and open) must hold every ride exactly once: one row per
        /// (city, window), windows of `size` seconds, counts as counted plainly.
        static func expectQueryMatches(_ rows: [WindowRow], rides: [[UInt8]], size: Int64, _ what: String,
                                       sourceLocation: SourceLocation = #_sourceLocation) throws {
            let bad = rows.filter { $0.end - $0.start != size || $0.start % size != 0 }
            #expect(bad.isEmpty, "\(what): \(bad.count) rows are not aligned \(size) s windows, e.g. \(String(describing: bad.first))",
                    sourceLocation: sourceLocation)
            var got: [String: Int64] = [:]
            var twice: [String] = []
            for r in rows {
                let id = "\(r.key)|\(r.start)"
                if got[id] != nil { twice.append(id) }
                got[id, default: 0] += r.count
            }
            #expect(twice.isEmpty, "\(what): windows shown more than once: \(twice.prefix(5))", sourceLocation: sourceLocation)
            let expected = try expectedCounts(rides, size: size)
            if got != expected {
                let wrong = expected.filter { got[$0.key] != $0.value }.prefix(3).map { "\($0.key): expected \($0.value), got \(got[$0.key].map(String.init) ?? "none")" }
                let extra = got.keys.filter { expected[$0] == nil }.prefix(3)
                Issue.record("\(what): \(got.count) windows, expected \(expected.count); \(wrong) extra: \(Array(extra))", sourceLocation: sourceLocation)
            }
            #expect(rows.contains { $0.final } && rows.contains { !$0.final }, "\(what): expected both final and open windows",
                    sourceLocation: sourceLocation)
        }

        @Test func replayOfTheSameJobFileEqualsTheLiveVersionAndDropRemovesTheOldOne() throws {
            let job = ShippedJob.ridesPerCity
            let ws = try CLIWorkspace()
            try ws.createRebuTopics()
            let rides = JobFx.lines(.rides)
            try ws.produce("rides", rides)
            let file = try ws.jobFile(job)

            // v1 live.
            let daemon = try ws.start(["process", file])
            try ws.waitCaughtUp(job.name, version: 1, daemons: [daemon])

            // v2 from offset 0, while v1 keeps running.
            let r = try ws.ok(["replay", file])
            let summary = try parseJSONObject(try #require(r.stdoutLines.last, "replay printed nothing: \(r)"))
            #expect(intField(summary, "version") == 2, "\(r.stdoutText)")
            #expect(intField(summary, "records") == Int64(rides.count), "\(r.stdoutText)")
            #expect(daemon.isRunning, "the v1 daemon stopped during the replay: \(daemon.result)")

            let list = try parseJSONObject(try #require(try ws.ok(["jobs", "list"]).stdoutLines.first))
            #expect(intField(list, "current") == 1, "jobs list: \(list)")
            #expect(intArray(list["versions"]) == [1, 2], "jobs list: \(list)")

            let diff = try ws.ok(["jobs", "diff", job.name, "1", "2"])
            let counts = try parseJSONObject(try #require(diff.stdoutLines.last, "jobs diff printed nothing"))
            #expect(intField(counts, "only_in_a") == 0 && intField(counts, "only_in_b") == 0 && intField(counts, "different") == 0,
                    "jobs diff 1 2: \(diff.stdoutText.prefix(2000))")
            #expect(intField(counts, "results_a") > 0 && intField(counts, "results_a") == intField(counts, "results_b")
                    && intField(counts, "same") == intField(counts, "results_a"), "jobs diff 1 2: \(diff.stdoutText.prefix(2000))")

            let v1 = try ws.results(job.name, output: job.output, version: 1)
            let v2 = try ws.results(job.name, output: job.output, version: 2)
            #expect(!v1.output.isEmpty)
            expectSameResults(v2, v1, "v2 (replay) against v1 (live)")
            try Self.expectQueryMatches(try Self.windowRows(v1.query), rides: rides, size: 3600, "v1 query")

            // Readers follow the current version.
            expectSameLines(try ws.values(job.output), v1.output, "consume \(job.output) while v1 is current")

            // The current version cannot be dropped.
            let refused = try ws.kappa(["jobs", "drop", job.name, "1"])
            #expect(refused.status != 0, "dropping the current version: \(refused)")
            #expect(refused.stderrLines.count == 1 && refused.stderrText.hasPrefix("kappa: "), "\(refused)")
            try ws.ok(["jobs", "switch", job.name, "2"])
            expectSameLines(try ws.values(job.output), v2.output, "consume \(job.output) after switching to v2")

            // v1 is old now; once its daemon has stopped, it can be dropped.
            let running = try ws.kappa(["jobs", "drop", job.name, "1"])
            #expect(running.status != 0, "dropping v1 while its daemon runs must be refused: \(running)")
            try stopCleanly(daemon)
            #expect(errorLines(daemon.stderrText).isEmpty, "\(daemon.stderrText.suffix(2000))")
            try ws.ok(["jobs", "drop", job.name, "1"])

            let topics = try ws.ok(["topics", "list"]).stdoutLines.map { try parseJSONObject($0)["topic"] as? String ?? "" }
            let leftovers = topics.filter { $0.hasPrefix("\(job.output).v1") || $0.hasPrefix("\(job.name).v1.") }
            #expect(leftovers.isEmpty, "v1's topics are still listed after jobs drop: \(leftovers)")
            #expect(topics.contains("\(job.output).v2"), "topics: \(topics)")
            let after = try parseJSONObject(try #require(try ws.ok(["jobs", "list"]).stdoutLines.first))
            #expect(intArray(after["versions"]) == [2] && intField(after, "current") == 2, "jobs list after drop: \(after)")
            let describe = try ws.describeJob(job.name)
            #expect(describe.map { intField($0, "version") } == [2], "jobs describe after drop: \(describe)")
            expectSameLines(try ws.values(job.output), v2.output, "consume \(job.output) after dropping v1")
            expectSameLines(try ws.query(job.name), v2.query, "query after dropping v1")
            let gone = try ws.kappa(["consume", "\(job.output).v1", "--from-beginning"])
            #expect(gone.status != 0, "the dropped version's output topic can still be read: \(gone)")
        }

        /// "An interrupted replay of the same job file resumes from its checkpoints": kill -9
        /// a replay several times at random moments; the replay run to the end afterwards
        /// is still v1 and equals an uninterrupted replay.
        @Test(arguments: [ShippedJob.ridesPerCity, .appSessions])
        func replayKilledAndResumedEqualsAnUninterruptedReplay(_ job: ShippedJob) throws {
            let reference = try CLIWorkspace().referenceRun(job)
            let ws = try CLIWorkspace()
            try ws.createRebuTopics()
            for t in job.inputs { try ws.produce(t.rawValue, JobFx.lines(t)) }
            let file = try ws.jobFile(job)
            var rng = SeededRandom(seed: 0x3E91A7 + UInt64(ShippedJob.allCases.firstIndex(of: job)!))
            // Kill within the first 30% of the time a whole replay took (it checkpoints only
            // every ten seconds, so a killed replay starts over): each run is killed.
            let maxDelay = max(20, Int(reference.replaySeconds * 300))
            var kills = 0
            var finished: CLIResult?
            for _ in 0..<5 {
                let replay = try ws.start(["replay", file, "--switch"])
                sleepMillis(rng.int(10...maxDelay))
                guard replay.isRunning else {
                    finished = replay.result
                    break
                }
                try killNine(replay)
                kills += 1
            }
            #expect(kills >= 2, "the replay finished before it could be killed twice (\(kills) kills)")
            let r = try finished ?? ws.ok(["replay", file, "--switch"])
            #expect(r.status == 0, "\(r)")
            let summary = try parseJSONObject(try #require(r.stdoutLines.last, "replay printed nothing: \(r)"))
            #expect(intField(summary, "version") == 1, "after \(kills) kills the replay should resume v1: \(r.stdoutText) \(r.stderrText)")
            let list = try parseJSONObject(try #require(try ws.ok(["jobs", "list"]).stdoutLines.first))
            #expect(intArray(list["versions"]) == [1] && intField(list, "current") == 1, "jobs list: \(list)")
            let total = job.inputs.reduce(0) { $0 + JobFx.lines($1).count }
            let processed = try ws.jobTasks(job.name, version: 1).reduce(Int64(0)) { $0 + intField($1, "processed") }
            #expect(processed == Int64(total), "tasks report \(processed) records processed, the inputs hold \(total) (after \(kills) kills)")
            var results = try ws.results(job.name, output: job.output, version: 1)
            results.output = try ws.values(job.output)
            expectSameResults(results, reference, "\(job.name): replay resumed after \(kills) kill -9 (seed \(rng.seed))")
        }

        @Test func replayOfAChangedJobFileServesTheNewResultsOnlyAfterTheSwitch() throws {
            let job = ShippedJob.ridesPerCity
            let ws = try CLIWorkspace()
            try ws.createRebuTopics()
            let rides = JobFx.lines(.rides)
            let firstPart = Array(rides[..<(rides.count * 7 / 10)])
            try ws.produce("rides", firstPart)
            let hourly = try job.yaml
            try #require(hourly.contains("size: 1h"), "the shipped job file changed: \(hourly)")
            let file1h = try ws.writeJobFile("rides-1h.yaml", hourly)
            let file30m = try ws.writeJobFile("rides-30m.yaml", hourly.replacingOccurrences(of: "size: 1h", with: "size: 30m"))

            let v1Daemon = try ws.start(["process", file1h])
            try ws.waitCaughtUp(job.name, version: 1, daemons: [v1Daemon])

            let r = try ws.ok(["replay", file30m])
            let summary = try parseJSONObject(try #require(r.stdoutLines.last, "replay printed nothing: \(r)"))
            #expect(intField(summary, "version") == 2, "\(r.stdoutText)")
            #expect(intField(summary, "records") == Int64(firstPart.count), "\(r.stdoutText)")

            // v1 keeps serving and running: more input reaches it, not v2.
            try ws.produce("rides", Array(rides[firstPart.count...]))
            try ws.waitCaughtUp(job.name, version: 1, daemons: [v1Daemon])
            let versions = try ws.describeJob(job.name)
            #expect(versions.map { $0["current"] as? Bool } == [true, false], "jobs describe: \(versions)")
            #expect(versions.last?["caught_up"] as? Bool == true, "v2 should be marked caught up after its replay: \(String(describing: versions.last))")

            let v1Output = try ws.values("\(job.output).v1")
            let served = try ws.values(job.output)
            expectSameLines(served, v1Output, "consume \(job.output) before the switch (v1)")
            #expect(try Self.windowRows(served).allSatisfy { $0.end - $0.start == 3600 }, "consume before the switch shows other than 1h windows")
            try Self.expectQueryMatches(try Self.windowRows(try ws.query(job.name)), rides: rides, size: 3600, "query before the switch (v1, all input)")
            let v2Rows = try Self.windowRows(try ws.values("\(job.output).v2"))
            #expect(!v2Rows.isEmpty && v2Rows.allSatisfy { $0.end - $0.start == 1800 }, "v2's output is not 30m windows")
            try Self.expectQueryMatches(try Self.windowRows(try ws.query(job.name, ["--version", "2"])), rides: firstPart, size: 1800,
                                        "query --version 2 (the replay covered the first 70%)")

            try ws.ok(["jobs", "switch", job.name, "2"])
            let switched = try ws.values(job.output)
            expectSameLines(switched, try ws.values("\(job.output).v2"), "consume \(job.output) after the switch (v2)")
            #expect(try Self.windowRows(switched).allSatisfy { $0.end - $0.start == 1800 }, "consume after the switch shows other than 30m windows")

            // `process` now runs the current version, v2, which catches up with the rest.
            let v2Daemon = try ws.start(["process", file30m])
            try ws.waitCaughtUp(job.name, version: 2, daemons: [v2Daemon, v1Daemon])
            try Self.expectQueryMatches(try Self.windowRows(try ws.query(job.name)), rides: rides, size: 1800, "query after the switch (v2, all input)")
            let finalRows = try Self.windowRows(try ws.values(job.output))
            #expect(!finalRows.isEmpty && finalRows.allSatisfy { $0.end - $0.start == 1800 })
            try stopCleanly(v2Daemon)
            try stopCleanly(v1Daemon)
            #expect(errorLines(v1Daemon.stderrText + v2Daemon.stderrText).isEmpty,
                    "\(v1Daemon.stderrText.suffix(1000)) \(v2Daemon.stderrText.suffix(1000))")
        }
    }
}
