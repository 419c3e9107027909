import Foundation
import Testing
@testable import KappaCore
@testable import KappaStreams

/// Job files (SPEC section 9): the three jobs of the SPEC parse to the expected
/// definitions; bad files fail with the file, the line and the field named.
@Suite struct StreamJobFileTests {
    static let m: Int64 = 60_000_000_000
    static let h: Int64 = 60 * m

    static let ridesPerCity = """
        name: rides-per-city
        inputs: [rides]
        window:      { key: city, time: time_utc, size: 1h, grace: 10m,
                       aggregates: [count, sum:fare, avg:fare, max:fare], emit: final }
        output: rides-per-city
        """
    static let appSessions = """
        name: app-sessions
        inputs: [app_events]
        session:     { key: user_id, time: time_utc, gap: 30m, grace: 5m }
        output: app-sessions
        """
    static let ticketRideMatch = """
        name: ticket-ride-match
        inputs: [tickets, rides]
        match:       { key: user_id, time: time_utc, tickets: tickets, rides: rides, grace: 10m }
        output: ticket-ride-matches
        """

    static func parse(_ text: String, path: String = "job.yaml") -> Result<JobDefinition, KappaError> {
        do { return .success(try JobFile.parse(text, path: path)) } catch { return .failure(error) }
    }

    @Test func ridesPerCityParses() throws {
        let def = try JobFile.parse(Self.ridesPerCity, path: "rides-per-city.yaml")
        let want = JobDefinition(
            name: "rides-per-city", inputs: ["rides"], output: "rides-per-city",
            operation: .window(WindowSpec(key: "city", time: "time_utc", sizeNanos: Self.h, advanceNanos: Self.h, graceNanos: 10 * Self.m,
                                          aggregates: [AggregateSpec(kind: .count, field: nil), AggregateSpec(kind: .sum, field: "fare"),
                                                       AggregateSpec(kind: .avg, field: "fare"), AggregateSpec(kind: .max, field: "fare")],
                                          emit: .final)))
        #expect(def == want)
        #expect(def.keyField == "city" && def.timeField == "time_utc" && def.kind == "window" && def.idleTimeoutNanos == nil)
        if case .window(let w) = def.operation {
            #expect(w.aggregates.map(\.outputName) == ["count", "sum_fare", "avg_fare", "max_fare"])
            #expect(w.fields == ["fare"])
        }
    }

    @Test func appSessionsParses() throws {
        let def = try JobFile.parse(Self.appSessions, path: "app-sessions.yaml")
        #expect(def == JobDefinition(name: "app-sessions", inputs: ["app_events"], output: "app-sessions",
                                     operation: .session(SessionSpec(key: "user_id", time: "time_utc", gapNanos: 30 * Self.m, graceNanos: 5 * Self.m))))
        #expect(def.kind == "session")
    }

    @Test func ticketRideMatchParses() throws {
        let def = try JobFile.parse(Self.ticketRideMatch, path: "ticket-ride-match.yaml")
        #expect(def == JobDefinition(name: "ticket-ride-match", inputs: ["tickets", "rides"], output: "ticket-ride-matches",
                                     operation: .match(MatchSpec(key: "user_id", time: "time_utc", tickets: "tickets", rides: "rides", graceNanos: 10 * Self.m))))
        #expect(def.kind == "match")
        // Inputs in the other order are fine too.
        let swapped = Self.ticketRideMatch.replacingOccurrences(of: "[tickets, rides]", with: "[rides, tickets]")
        #expect(throws: Never.self) { try JobFile.parse(swapped, path: "x.yaml") }
    }

    @Test func hoppingBlockStyleAndDefaults() throws {
        let def = try JobFile.parse("""
            name: rides-per-city-hopping
            inputs:
              - rides
            output: rpc-hop
            idle_timeout: 30s
            window:
              key: city
              size: 1h
              advance: 15m
              aggregates:
                - count
                - min:fare
                - sum:event_details.fare
              emit: updates
            """, path: "hop.yaml")
        guard case .window(let w) = def.operation else {
            Issue.record("not a window job: \(def)")
            return
        }
        #expect(w.sizeNanos == Self.h && w.advanceNanos == 15 * Self.m)
        #expect(w.graceNanos == 0, "grace defaults to 0")
        #expect(w.time == "time_utc", "time defaults to time_utc")
        #expect(w.emit == .updates)
        #expect(w.aggregates == [AggregateSpec(kind: .count, field: nil), AggregateSpec(kind: .min, field: "fare"), AggregateSpec(kind: .sum, field: "event_details.fare")])
        #expect(w.aggregates.map(\.outputName) == ["count", "min_fare", "sum_event_details_fare"])
        #expect(def.idleTimeoutNanos == 30_000_000_000)
        // emit defaults to final.
        let d2 = try JobFile.parse("name: a\ninputs: [rides]\noutput: b\nwindow: { key: city, size: 7d, grace: 0s, aggregates: [count] }\n", path: "a.yaml")
        if case .window(let w2) = d2.operation {
            #expect(w2.emit == .final && w2.sizeNanos == 7 * 24 * Self.h && w2.advanceNanos == w2.sizeNanos && w2.graceNanos == 0)
        }
    }

    @Test(arguments: [("500ms", Int64(500_000_000)), ("30s", 30_000_000_000), ("10m", 600_000_000_000), ("1h", 3_600_000_000_000),
                      ("7d", 604_800_000_000_000), ("0s", 0), ("1ms", 1_000_000)])
    func durations(_ text: String, _ nanos: Int64) {
        #expect(JobFile.parseDurationNanos(text) == nanos)
    }

    @Test(arguments: ["10 minutes", "10", "", "m", "1.5h", "-5m", "+5m", "1h30m", "10M", " 10m", "10 m", "99999999999999d", "10min"])
    func badDurations(_ text: String) {
        #expect(JobFile.parseDurationNanos(text) == nil, "'\(text)'")
    }

    /// (file text, the line the error must name, phrases it must contain)
    static let bad: [(String, String, Int, [String])] = [
        ("unknown top-level field", "name: j\ninputs: [rides]\noutput: o\nwindows: { key: city, size: 1h, aggregates: [count] }\n", 4, ["unknown field 'windows'"]),
        ("unknown window field", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  colour: red\n  aggregates: [count]\n", 7, ["unknown field 'colour'"]),
        ("bad duration", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 10 minutes\n  aggregates: [count]\n", 6, ["'size'", "10 minutes"]),
        ("bad gap", "name: s\ninputs: [app_events]\noutput: o\nsession: { key: user_id, gap: 30 }\n", 4, ["'gap'", "30"]),
        ("zero gap", "name: s\ninputs: [app_events]\noutput: o\nsession: { key: user_id, gap: 0s }\n", 4, ["'gap'"]),
        ("missing key", "name: j\ninputs: [rides]\noutput: o\nwindow: { size: 1h, aggregates: [count] }\n", 4, ["missing field 'key'"]),
        ("missing session key", "name: s\ninputs: [app_events]\noutput: o\nsession:\n  gap: 30m\n", 5, ["missing field 'key'"]),
        ("two operators", "name: j\ninputs: [rides]\noutput: o\nwindow: { key: city, size: 1h, aggregates: [count] }\nsession: { key: user_id, gap: 30m }\n", 1, ["window", "session", "one operator"]),
        ("no operator", "name: j\ninputs: [rides]\noutput: o\n", 1, ["window", "session", "match"]),
        ("unknown aggregate", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  aggregates:\n    - count\n    - median:fare\n", 9, ["unknown aggregate 'median:fare'"]),
        // An empty aggregate crashed the parser (index out of range; fuzz-jobfile).
        ("empty aggregate", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  aggregates: [count, \"\"]\n", 7, ["unknown aggregate ''"]),
        ("aggregate without field", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  aggregates:\n    - sum\n", 8, ["'sum' needs a field"]),
        ("count with field", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  aggregates: [count:fare]\n", 7, ["'count' takes no field"]),
        ("empty aggregates", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  aggregates: []\n", 7, ["'aggregates'"]),
        ("bad emit", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  aggregates: [count]\n  emit: sometimes\n", 8, ["'emit'"]),
        ("advance over size", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  advance: 2h\n  aggregates: [count]\n", 7, ["'advance'"]),
        ("size not a multiple", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  advance: 25m\n  aggregates: [count]\n", 7, ["'advance'", "multiple"]),
        ("match inputs not its topics", "name: m\ninputs: [tickets, app_events]\noutput: o\nmatch: { key: user_id, tickets: tickets, rides: rides, grace: 10m }\n", 2, ["'tickets'", "'rides'", "inputs"]),
        ("match one input", "name: m\ninputs: [tickets]\noutput: o\nmatch: { key: user_id, tickets: tickets, rides: rides }\n", 2, ["inputs"]),
        ("match same topic twice", "name: m\ninputs: [rides, rides]\noutput: o\nmatch: { key: user_id, tickets: rides, rides: rides }\n", 2, ["inputs"]),
        ("missing inputs", "name: j\noutput: o\nwindow: { key: city, size: 1h, aggregates: [count] }\n", 1, ["'inputs'"]),
        ("empty inputs", "name: j\ninputs: []\noutput: o\nwindow: { key: city, size: 1h, aggregates: [count] }\n", 2, ["'inputs'"]),
        ("input listed twice", "name: j\ninputs: [rides, rides]\noutput: o\nwindow: { key: city, size: 1h, aggregates: [count] }\n", 2, ["twice"]),
        ("missing name", "inputs: [rides]\noutput: o\nwindow: { key: city, size: 1h, aggregates: [count] }\n", 1, ["'name'"]),
        ("missing output", "name: j\ninputs: [rides]\nwindow: { key: city, size: 1h, aggregates: [count] }\n", 1, ["'output'"]),
        ("operator not a mapping", "name: j\ninputs: [rides]\noutput: o\nwindow: hourly\n", 4, ["'window'", "mapping"]),
        ("bad idle timeout", "name: j\ninputs: [rides]\noutput: o\nidle_timeout: soon\nwindow: { key: city, size: 1h, aggregates: [count] }\n", 4, ["'idle_timeout'"]),
    ]

    @Test(arguments: bad)
    func errorsNameTheLineAndField(_ label: String, _ text: String, _ line: Int, _ phrases: [String]) {
        switch Self.parse(text, path: "jobs/bad.yaml") {
        case .success(let def):
            Issue.record("\(label): parsed: \(def)")
        case .failure(let e):
            #expect(e.code == .invalidArgument, "\(label)")
            #expect(e.message.hasPrefix("jobs/bad.yaml: "), "\(label): \(e.message)")
            #expect(e.message.contains("line \(line):"), "\(label): want line \(line): \(e.message)")
            for p in phrases { #expect(e.message.contains(p), "\(label): want '\(p)' in: \(e.message)") }
        }
    }

    /// Errors Yams finds (a syntax error, a field given twice) are reported like the
    /// others: one line (SPEC 8: "a one-line reason"), naming the file and the line.
    @Test(arguments: [
        ("syntax error", "name: j\ninputs: [rides]\noutput: o\nwindow: { key: city, size: 1h\n  aggregates: [count]\n: : :\n", [4, 5, 6], [String]()),
        ("duplicate field", "name: j\ninputs: [rides]\noutput: o\nwindow:\n  key: city\n  size: 1h\n  size: 2h\n  aggregates: [count]\n", [6, 7], ["size"]),
    ] as [(String, String, [Int], [String])])
    func yamlErrorsAreOneLineAndNameTheLine(_ label: String, _ text: String, _ lines: [Int], _ phrases: [String]) {
        guard case .failure(let e) = Self.parse(text, path: "x.yaml") else {
            Issue.record("\(label): parsed")
            return
        }
        #expect(e.message.hasPrefix("x.yaml: "), "\(label): \(e.message)")
        #expect(!e.message.contains("\n"), "\(label): the message spans several lines (it echoes the file): \(e.message)")
        #expect(lines.contains { e.message.contains("line \($0)") }, "\(label): want one of lines \(lines): \(e.message)")
        for p in phrases { #expect(e.message.contains(p), "\(label): \(e.message)") }
    }

    @Test func notYAMLOrEmpty() {
        for text in ["", "   \n", "name: [unclosed\n", "- a\n- b\n", "just a string\n"] {
            guard case .failure(let e) = Self.parse(text, path: "x.yaml") else {
                Issue.record("'\(text)' parsed")
                continue
            }
            #expect(e.message.hasPrefix("x.yaml: "), "\(e.message)")
        }
    }

    /// The job files shipped in jobs/ are the SPEC's.
    @Test func shippedJobFilesMatchTheSpec() throws {
        for (file, text) in [("rides-per-city", Self.ridesPerCity), ("app-sessions", Self.appSessions), ("ticket-ride-match", Self.ticketRideMatch)] {
            let path = "\(#filePath)".replacingOccurrences(of: "Tests/KappaTests/StreamJobFileTests.swift", with: "jobs/\(file).yaml")
            guard let data = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
                Issue.record("cannot read \(path)")
                continue
            }
            #expect(try JobFile.parse(data, path: path) == JobFile.parse(text, path: path), "\(file)")
        }
    }
}
