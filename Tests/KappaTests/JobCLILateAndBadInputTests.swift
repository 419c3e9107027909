import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaTesting

extension CLITests {
    /// Late events and dead letters (SPEC §5: "an event later than that is not silently
    /// dropped: it is counted and written to the job's late-events topic"), and job
    /// files that are wrong (SPEC §8: non-zero exit with a one-line reason).
    @Suite struct JobCLILateAndBadInputTests {
        /// 2016-03-12T00:00:00Z, an hour boundary.
        static let t0: Int64 = 1_457_740_800

        static func trip(_ seconds: Int64, city: String?, fare: Int) -> [UInt8] {
            let cityField = city.map { ",\"city\":\"\($0)\"" } ?? ""
            return bytes("{\"user_id\":\"u1\",\"time_utc\":\"\(t0 + seconds).250000000\"\(cityField),\"fare\":\(fare)}")
        }

        static let lateJob = """
            name: late-test
            inputs: [trips]
            window: { key: city, time: time_utc, size: 1h, grace: 0s,
                      aggregates: [count, sum:fare], emit: final }
            output: late-out
            """

        struct Row: Equatable, CustomStringConvertible {
            var key: String
            var start: Int64
            var end: Int64
            var count: Int64
            var sum: Double
            var final: Bool?
            var description: String { "\(key) [\(start - t0), \(end - t0)) count \(count) sum \(sum) final \(final.map(String.init) ?? "-")" }
        }

        static func rows(_ lines: [[UInt8]]) throws -> [Row] {
            try lines.map { l in
                let o = try parseJSONObject(l)
                return Row(key: o["key"] as? String ?? "?", start: stringValue(o, "window_start").flatMap(wholeSeconds) ?? -1,
                           end: stringValue(o, "window_end").flatMap(wholeSeconds) ?? -1, count: intField(o, "count"),
                           sum: (o["sum_fare"] as? NSNumber)?.doubleValue ?? Double(stringValue(o, "sum_fare") ?? "") ?? .nan,
                           final: o["final"] as? Bool)
            }.sorted { ($0.start, $0.key) < ($1.start, $1.key) }
        }

        @Test func lateEventsGoToTheLateTopicAndRecordsWithoutKeyToTheDeadLetterTopic() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("trips", partitions: 1)
            let onTime1 = Self.trip(100, city: "Berlin", fare: 10)
            let onTime2 = Self.trip(3700, city: "Berlin", fare: 20)  // stream time passes [0, 1h) + 0s: closes it
            let late1 = Self.trip(200, city: "Berlin", fare: 1000)  // its window is final: late
            let late2 = Self.trip(3500, city: "Paris", fare: 5)  // a new key, but its window is over: late
            let noKey = Self.trip(3800, city: nil, fare: 7)  // no 'city': dead letter
            let onTime3 = Self.trip(7300, city: "Berlin", fare: 30)  // closes [1h, 2h); [2h, 3h) stays open
            try ws.produce("trips", [onTime1, onTime2, late1, late2, noKey, onTime3])
            let file = try ws.writeJobFile("late-test.yaml", Self.lateJob)

            let daemon = try ws.start(["process", file])
            try ws.waitCaughtUp("late-test", version: 1, daemons: [daemon], partitions: 1)
            try stopCleanly(daemon, signal: SIGINT)  // SIGINT stops it cleanly too
            #expect(errorLines(daemon.stderrText).isEmpty, "\(daemon.stderrText.suffix(2000))")

            expectSameLines(try ws.values("late-test.v1.late"), sortedLines([late1, late2]), "late-events topic")
            expectSameLines(try ws.values("late-test.v1.dead-letter"), [noKey], "dead-letter topic")
            let meta = try ws.ok(["consume", "late-test.v1.dead-letter", "--from-beginning", "--with-meta"]).stdoutLines.map(parseJSONObject)
            #expect(meta.count == 1 && meta.first?["key"] as? String == "u1", "dead letter keeps the input record's key: \(meta)")

            let h: Int64 = 3600
            let output = try Self.rows(try ws.values("late-out"))
            #expect(output == [Row(key: "Berlin", start: Self.t0, end: Self.t0 + h, count: 1, sum: 10, final: nil),
                               Row(key: "Berlin", start: Self.t0 + h, end: Self.t0 + 2 * h, count: 1, sum: 20, final: nil)],
                    "final results must exclude the late events: \(output)")
            let query = try Self.rows(try ws.query("late-test"))
            #expect(query == [Row(key: "Berlin", start: Self.t0, end: Self.t0 + h, count: 1, sum: 10, final: true),
                              Row(key: "Berlin", start: Self.t0 + h, end: Self.t0 + 2 * h, count: 1, sum: 20, final: true),
                              Row(key: "Berlin", start: Self.t0 + 2 * h, end: Self.t0 + 3 * h, count: 1, sum: 30, final: false)],
                    "query: \(query)")
            #expect(try ws.query("late-test", ["Paris"]).isEmpty, "a key seen only in late events has no results")

            let task = try #require(try ws.jobTasks("late-test", version: 1).first)
            #expect(intField(task, "late") == 2 && intField(task, "dead_letters") == 1 && intField(task, "processed") == 6,
                    "jobs describe counts: \(task)")

            // The job's topics are written by the job alone: `produce` into one is refused
            // (a record added there would be cut away when the job next starts).
            let refused = try ws.kappa(["produce", "late-test.v1.late"], stdin: Self.trip(9000, city: "Rome", fare: 1) + [0x0A])
            #expect(refused.status != 0 && refused.stderrText.contains("belongs to job 'late-test'"), "\(refused)")
            expectSameLines(try ws.values("late-test.v1.late"), sortedLines([late1, late2]), "late-events topic after a refused produce")
        }

        /// A version whose late-events and dead-letter partitions never get a record creates
        /// no log in them (they are opened at their first write); they read as empty.
        @Test func lateAndDeadLetterPartitionsNeverWrittenHoldNoLog() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("trips", partitions: 1)
            try ws.produce("trips", [Self.trip(100, city: "Berlin", fare: 10), Self.trip(3700, city: "Paris", fare: 20)])
            let file = try ws.writeJobFile("late-test.yaml", Self.lateJob)
            _ = try ws.ok(["replay", file])
            for topic in ["late-test.v1.late", "late-test.v1.dead-letter"] {
                #expect(try ws.logFiles(topic, 0).isEmpty, "\(topic)")
                #expect(try ws.values(topic).isEmpty)
            }
            #expect(try Self.rows(try ws.values("late-out.v1")).count == 1)  // [0, 1h) of Berlin is final; Paris's is open
            let tasks = try ws.jobTasks("late-test", version: 1)
            #expect(tasks.count == 1 && tasks.allSatisfy { intField($0, "late") == 0 && intField($0, "dead_letters") == 0 }, "\(tasks)")
        }

        /// A job file that is wrong, and what the reason must name.
        struct BadJob: CustomTestStringConvertible, Sendable {
            var label: String
            var yaml: String?  // nil: the file does not exist
            var mentions: [String]
            var testDescription: String { label }
        }

        static let good = """
            name: bad-test
            inputs: [rides]
            window:      { key: city, time: time_utc, size: 1h, grace: 10m,
                           aggregates: [count, sum:fare, avg:fare, max:fare], emit: final }
            output: bad-out
            """

        static let badJobs: [BadJob] = [
            BadJob(label: "unknown top-level field", yaml: good + "\ncolour: red\n", mentions: ["colour"]),
            BadJob(label: "unknown window field", yaml: good.replacingOccurrences(of: "size: 1h", with: "sise: 1h"), mentions: ["sise"]),
            BadJob(label: "bad duration", yaml: good.replacingOccurrences(of: "size: 1h", with: "size: 1hour"), mentions: ["size", "1hour"]),
            BadJob(label: "negative grace", yaml: good.replacingOccurrences(of: "grace: 10m", with: "grace: -10m"), mentions: ["grace"]),
            BadJob(label: "unknown aggregate", yaml: good.replacingOccurrences(of: "max:fare", with: "median:fare"), mentions: ["median"]),
            BadJob(label: "missing input topic", yaml: good.replacingOccurrences(of: "[rides]", with: "[no-such-topic]"), mentions: ["no-such-topic"]),
            BadJob(label: "missing output", yaml: good.replacingOccurrences(of: "output: bad-out", with: ""), mentions: ["output"]),
            BadJob(label: "no operator", yaml: "name: bad-test\ninputs: [rides]\noutput: bad-out\n", mentions: ["window"]),
            BadJob(label: "invalid YAML", yaml: good.replacingOccurrences(of: "inputs: [rides]", with: "inputs: [rides"), mentions: []),
            BadJob(label: "empty file", yaml: "", mentions: []),
            BadJob(label: "missing file", yaml: nil, mentions: ["does-not-exist.yaml"]),
        ]

        @Test(arguments: badJobs)
        func badJobFilesAreRefusedWithAOneLineReason(_ bad: BadJob) throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 2)
            let path: String
            if let yaml = bad.yaml {
                path = try ws.writeJobFile("bad.yaml", yaml)
            } else {
                path = ws.tmp.path + "/does-not-exist.yaml"
            }
            for command in ["process", "replay"] {
                let r = try ws.kappa([command, path], timeoutSeconds: 60)
                #expect(r.status != 0, "\(command) with a job file with \(bad.label) must fail: \(r)")
                #expect(r.stdout.isEmpty, "\(command): nothing on stdout: \(r.stdoutText.prefix(500))")
                let lines = r.stderrLines
                #expect(lines.count == 1 && lines.first?.hasPrefix("kappa: ") == true,
                        "\(command) with \(bad.label): expected one line 'kappa: …' on stderr, got \(lines.count): \(r.stderrText.prefix(1500))")
                for m in bad.mentions {
                    #expect(r.stderrText.contains(m), "\(command) with \(bad.label): the reason should name '\(m)': \(r.stderrText.prefix(500))")
                }
            }
            // Nothing was computed, and the input is untouched.
            let topics = try ws.ok(["topics", "list"]).stdoutLines.map { try parseJSONObject($0)["topic"] as? String ?? "" }
            #expect(!topics.contains { $0.hasPrefix("bad-out") }, "a refused job created topics: \(topics)")
        }
    }
}
