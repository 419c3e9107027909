import Foundation
import Testing
import KappaCore
import KappaFormat
import KappaLog
import KappaTesting

extension CLITests {
    /// Bad input never stops silently and never loses good input: each kind of bad line
    /// under each `--on-error` mode, and commands refused with a reason.
    @Suite struct CLIBadInputTests {
        static let partitions: Int32 = 3
        static let lineBytesMax = 1000
        static let goodBefore = 1999  // the bad line is line 2000
        static let goodAfter = 500

        enum BadLine: String, CaseIterable, Sendable {
            case invalidJSON, missingKey, missingTime, unparseableTime, tooLong

            var raw: [UInt8] {
                switch self {
                case .invalidJSON: bytes(#"{"event_type":"login","time_utc":"1457741907.959400112","user_id":"u000001""#)
                case .missingKey: bytes(#"{"event_type":"login","time_utc":"1457741907.959400112","device_id":"dev-1"}"#)
                case .missingTime: bytes(#"{"event_type":"login","user_id":"u000001","device_id":"dev-1"}"#)
                case .unparseableTime: bytes(#"{"event_type":"login","time_utc":"yesterday at noon","user_id":"u000001"}"#)
                case .tooLong:
                    bytes(#"{"event_type":"login","time_utc":"1457741907.959400112","user_id":"u000001","pad":""#
                          + String(repeating: "x", count: 1500) + #""}"#)
                }
            }

            /// What the reason must say.
            var reason: String {
                switch self {
                case .invalidJSON: "invalid JSON"
                case .missingKey: "missing key field 'user_id'"
                case .missingTime: "missing time field 'time_utc'"
                case .unparseableTime: "time field 'time_utc'"
                case .tooLong: "limit"
                }
            }

            /// What a dead letter keeps of the line: an over-long line only its start.
            var deadLetterValue: [UInt8] { self == .tooLong ? Array(raw.prefix(1024)) : raw }
        }

        struct Input {
            let before: [[UInt8]]
            let after: [[UInt8]]
            let all: [[UInt8]]
            var badLineNumber: Int { before.count + 1 }

            init(_ bad: BadLine) throws {
                let good = rebuLines(seed: 61, count: goodBefore + goodAfter)
                try #require(good.allSatisfy { $0.count <= lineBytesMax }, "good lines fit the limit")
                before = Array(good[0..<goodBefore])
                after = Array(good[goodBefore...])
                all = before + [bad.raw] + after
            }
        }

        static func produce(_ ws: CLIWorkspace, _ file: String, mode: String) throws -> CLIResult {
            try ws.kappa(["produce", "events", file, "--on-error", mode, "--max-line-bytes", String(lineBytesMax)])
        }

        /// Every "line N" a message names.
        static func lineNumbers(in text: String) -> [Int] {
            let words = text.split(whereSeparator: { $0 == " " || $0 == ":" || $0 == "," || $0 == "(" || $0 == ")" })
            return zip(words, words.dropFirst()).compactMap { $0 == "line" ? Int($1) : nil }
        }

        @Test(arguments: BadLine.allCases)
        func failStopsAtTheBadLine(_ bad: BadLine) throws {
            let ws = try CLIWorkspace()
            let input = try Input(bad)
            try ws.createTopic("events", partitions: Int(Self.partitions))
            let r = try Self.produce(ws, try ws.writeFile("in.jsonl", lines: input.all), mode: "fail")
            #expect(r.status != 0, "\(bad): \(r)")
            #expect(r.stderrLines.count == 1, "\(bad): one line on stderr: \(r.stderrText)")
            #expect(Self.lineNumbers(in: r.stderrText) == [input.badLineNumber], "\(bad): names line \(input.badLineNumber): \(r.stderrText)")
            #expect(r.stderrText.contains(bad.reason), "\(bad): says why: \(r.stderrText)")
            #expect(mentions(r.stderrText, " \(input.before.count) record"), "\(bad): says how many were written: \(r.stderrText)")
            let stored = try ws.ok(["consume", "events", "--from-beginning"])
            expectSameMultiset(stored.stdoutLines, input.before, "\(bad): every good line before the bad one, nothing after")
            let meta = try ws.consumeAll("events")
            let expected = routeByUserId(input.before, partitions: Self.partitions)
            for p in 0..<Self.partitions {
                expectSameLines(meta[p]?.map(\.value) ?? [], expected[p]!, "\(bad): partition \(p) in order")
            }
            #expect(!ws.dataDirectory.topicExists("events.dead-letter"))
        }

        @Test(arguments: BadLine.allCases)
        func skipWarnsAndKeepsEveryGoodLine(_ bad: BadLine) throws {
            let ws = try CLIWorkspace()
            let input = try Input(bad)
            try ws.createTopic("events", partitions: Int(Self.partitions))
            let r = try Self.produce(ws, try ws.writeFile("in.jsonl", lines: input.all), mode: "skip")
            #expect(r.status == 0, "\(bad): \(r)")
            let warnings = r.stderrLines.filter { Self.lineNumbers(in: $0) == [input.badLineNumber] }
            #expect(warnings.count == 1 && warnings.allSatisfy { $0.contains(bad.reason) }, "\(bad): one warning naming the line: \(r.stderrText)")
            let stored = try ws.ok(["consume", "events", "--from-beginning"])
            expectSameMultiset(stored.stdoutLines, input.before + input.after, "\(bad): every good line")
            #expect(!ws.dataDirectory.topicExists("events.dead-letter"))
        }

        @Test(arguments: BadLine.allCases)
        func deadLetterKeepsTheRawLine(_ bad: BadLine) throws {
            let ws = try CLIWorkspace()
            let input = try Input(bad)
            try ws.createTopic("events", partitions: Int(Self.partitions))
            let r = try Self.produce(ws, try ws.writeFile("in.jsonl", lines: input.all), mode: "dead-letter")
            #expect(r.status == 0, "\(bad): \(r)")
            #expect(r.stderrLines.contains { Self.lineNumbers(in: $0) == [input.badLineNumber] }, "\(bad): reported: \(r.stderrText)")
            let stored = try ws.ok(["consume", "events", "--from-beginning"])
            expectSameMultiset(stored.stdoutLines, input.before + input.after, "\(bad): every good line")

            let letters = try ws.ok(["consume", "events.dead-letter", "--from-beginning"])
            expectSameLines(letters.stdoutLines, [bad.deadLetterValue], "\(bad): the raw line in events.dead-letter")
            // The reason and the line number travel in the headers.
            let records = try readPartition(ws, "events.dead-letter", 0)
            try #require(records.count == 1)
            let headers = Dictionary(records[0].record.headers.map { ($0.key, text($0.value)) }, uniquingKeysWith: { a, _ in a })
            #expect(headers["kappa.line"] == String(input.badLineNumber), "\(bad): \(headers)")
            #expect(headers["kappa.error"]?.contains(bad.reason) == true, "\(bad): \(headers)")
        }

        /// `consume --with-meta` promises JSON Lines; a dead letter need not be JSON, so
        /// its value must still come out as valid JSON (the object, or a string).
        @Test(arguments: BadLine.allCases)
        func deadLetterWithMetaIsValidJSON(_ bad: BadLine) throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: 1)
            try ws.ok(["produce", "events", "-", "--on-error", "dead-letter", "--max-line-bytes", String(Self.lineBytesMax)],
                      stdin: joinLines([bad.raw]))
            let r = try ws.ok(["consume", "events.dead-letter", "--from-beginning", "--with-meta"])
            try #require(r.stdoutLines.count == 1)
            let line = r.stdoutLines[0]
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                Issue.record("\(bad): consume --with-meta printed a line that is not JSON: \(text(line).prefix(300))")
                return
            }
            if let s = object["value"] as? String {
                #expect(Array(s.utf8) == bad.deadLetterValue, "\(bad): value string is the raw line")
            } else {
                #expect(object["value"] is [String: Any], "\(bad): value is the stored object or a string")
            }
        }

        /// Blank lines count in line numbers but are not records; CRLF endings are cut.
        @Test func lineNumbersCountBlankLinesAndCRLF() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: 1)
            let good = rebuLines(seed: 62, count: 3)
            let crlf = [good[0], [], good[1], BadLine.missingKey.raw, good[2]].map { $0 + [0x0D] }
            let r = try ws.kappa(["produce", "events", "-"], stdin: joinLines(crlf))
            #expect(r.status != 0)
            #expect(Self.lineNumbers(in: r.stderrText) == [4], "\(r.stderrText)")
            let stored = try ws.ok(["consume", "events", "--from-beginning"])
            expectSameLines(stored.stdoutLines, [good[0], good[1]], "CRLF lines stored without the CR")
        }

        @Test func lastLineWithoutNewlineIsProduced() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: 1)
            let good = rebuLines(seed: 63, count: 3)
            try ws.ok(["produce", "events", "-"], stdin: good[0] + [0x0A] + good[1] + [0x0A] + good[2])
            let stored = try ws.ok(["consume", "events", "--from-beginning"])
            expectSameLines(stored.stdoutLines, good, "three records")
        }

        /// Many bad lines under skip: each good line kept, the count reported, the
        /// warnings bounded.
        @Test func manyBadLinesAreCountedAndReportedBounded() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: Int(Self.partitions))
            let good = rebuLines(seed: 64, count: 300)
            var lines: [[UInt8]] = []
            var bad = 0
            for (i, l) in good.enumerated() {
                lines.append(l)
                if i % 5 == 0 {
                    lines.append(BadLine.allCases[bad % BadLine.allCases.count].raw)
                    bad += 1
                }
            }
            let r = try Self.produce(ws, try ws.writeFile("in.jsonl", lines: lines), mode: "skip")
            #expect(r.status == 0, "\(r)")
            #expect(mentions(r.stderrText, "\(bad) bad lines"), "summary counts \(bad) bad lines: \(r.stderrText.suffix(300))")
            #expect(r.stderrLines.count < bad, "warnings are bounded: \(r.stderrLines.count) lines for \(bad) bad ones")
            let stored = try ws.ok(["consume", "events", "--from-beginning"])
            expectSameMultiset(stored.stdoutLines, good, "every good line")
        }

        // MARK: refused commands

        /// Commands that must fail with a reason, and leave the data as it was.
        @Test func refusedCommands() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: Int(Self.partitions))
            let good = rebuLines(seed: 65, count: 10)
            let file = try ws.writeFile("in.jsonl", lines: good)

            // Operating errors: non-zero with one line naming the problem.
            let oneLine: [([String], String)] = [
                (["produce", "nosuch", file], "nosuch"),
                (["produce", "events", ws.tmp.path + "/missing.jsonl"], "missing.jsonl"),
                (["consume", "nosuch", "--from-beginning"], "nosuch"),
                (["consume", "events", "--partition", "3"], "3"),
                (["topics", "create", "events", "--partitions", "2"], "events"),
                (["topics", "create", "bad", "--partitions", "0"], "partitions"),
                (["topics", "create", "bad/name", "--partitions", "1"], "bad/name"),
                (["topics", "describe", "nosuch"], "nosuch"),
                (["groups", "describe", "nosuch"], "nosuch"),
            ]
            for (args, needle) in oneLine {
                let r = try ws.kappa(args)
                #expect(r.status != 0, "\(r)")
                #expect(r.stderrLines.count == 1 && r.stderrText.contains(needle), "kappa \(args.joined(separator: " ")): one line naming '\(needle)': \(r.stderrText)")
                #expect(r.stdout.isEmpty)
            }

            // Invalid option values: refused before anything happens.
            let invalid: [([String], String)] = [
                (["produce", "events", file, "--on-error", "nope"], "--on-error"),
                (["produce", "events", file, "--fsync", "sometimes"], "--fsync"),
                (["produce", "events", file, "--max-line-bytes", "0"], "--max-line-bytes"),
                (["consume", "events", "--offset", "-1"], "--offset"),
                (["consume", "events", "--from-beginning", "--offset", "3"], "--offset"),
                (["consume", "events", "--max", "-2"], "--max"),
                (["consume", "events", "--partition", "-1"], "--partition"),
                (["consume", "events", "--group", "g", "--partition", "1"], "--partition"),
                (["topics", "create", "x", "--compression", "zstd"], "--compression"),
                (["topics", "create", "x", "--retention", "soon"], "--retention"),
                (["groups", "reset", "g", "--topic", "events"], "--to-earliest"),
                (["groups", "reset", "g", "--topic", "events", "--to-earliest", "--to-latest"], "--to-earliest"),
            ]
            for (args, needle) in invalid {
                let r = try ws.kappa(args)
                #expect(r.status != 0, "\(r)")
                #expect(r.stderrLines.first?.contains(needle) == true, "kappa \(args.joined(separator: " ")): reason names \(needle): \(r.stderrText)")
            }
            #expect(!ws.dataDirectory.topicExists("x") && !ws.dataDirectory.topicExists("bad"))
            let stored = try ws.ok(["consume", "events", "--from-beginning"])
            #expect(stored.stdout.isEmpty, "refused produces wrote nothing")
        }
    }
}
