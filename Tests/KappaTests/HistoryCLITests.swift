import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore
import KappaHistory
import KappaLog
import KappaTesting
import RebuGenerator

extension CLITests {
    /// `kappa history` as a user runs it, and kill -9 of a real indexing process.
    @Suite struct HistoryCLITests {
        /// kill -9 of `kappa history catch-up` at moments spread over its run (after its
        /// first commits), again and again; each restart resumes; the finished index
        /// equals one built in a single uninterrupted run: same offsets, counts and pages.
        @Test func killedIndexerResumesToTheUninterruptedIndex() throws {
            let ws = try CLIWorkspace()
            for (topic, key) in [("app_events", "device_id"), ("rides", "user_id"), ("tickets", "ticket_id")] {
                try ws.createTopic(topic, partitions: 3, extra: ["--key-field", key])
            }
            let gen = ws.tmp.path + "/gen"
            let summary = try RebuGenerator.write(RebuConfig(seed: 17, appEvents: 40_000), to: gen)
            let total = Int64(summary.files.map(\.lines).reduce(0, +))
            for topic in ["app_events", "rides", "tickets"] {
                try ws.ok(["produce", topic, gen + "/\(topic).jsonl", "--key-field", topic == "app_events" ? "device_id" : (topic == "rides" ? "user_id" : "ticket_id")])
            }
            let index = ws.data + "/history/index"
            var random = SeededRandom(seed: 17)
            var partial = 0
            var indexedBefore: Int64 = -1
            for round in 0..<5 {
                let p = try ws.start(["history", "catch-up", "--commit-entries", "500"])
                // Its first commit is in RocksDB's write-ahead log; then a random moment later.
                try waitUntil("round \(round): the indexer's first commit", timeoutSeconds: 60, pollSeconds: 0.001) {
                    Self.walBytes(index) > 0 || !p.isRunning
                }
                usleep(UInt32(random.int(0...150_000)))
                p.send(SIGKILL)
                let status = try p.waitForExit()
                let history = try UserHistory(directory: ws.dataDirectory)
                let counts = try history.status().counts
                // Each restart resumed: what was indexed never shrinks.
                #expect(counts.indexed >= indexedBefore, "round \(round): \(counts.indexed) < \(indexedBefore)")
                indexedBefore = counts.indexed
                if status == 128 + SIGKILL && counts.read < total { partial += 1 }
            }
            #expect(partial >= 2, "at least two kills landed while indexing")
            try ws.ok(["history", "catch-up"])
            let (survivor, survivorPages) = try Self.snapshot(ws.dataDirectory)
            // The same index, built in one run.
            try FileManager.default.removeItem(atPath: ws.data + "/history")
            let rebuilt = try ws.ok(["history", "catch-up"])
            #expect(rebuilt.stdoutText.contains("\"read\":\(survivor.counts.read)"), "\(rebuilt.stdoutText)")
            let (fresh, freshPages) = try Self.snapshot(ws.dataDirectory)
            #expect(survivor.asOf == fresh.asOf)
            #expect(survivor.counts == fresh.counts)
            #expect(survivorPages == freshPages)
            #expect(survivor.counts.indexed == total, "every generated event has a user")
        }

        /// Offsets, counts, and the first 200 entries of 50 users.
        static func snapshot(_ dir: DataDirectory) throws -> (HistoryStatus, [[HistoryPage.Entry]]) {
            let history = try UserHistory(directory: dir)
            let users = (1...50).map { String(format: "u%06d", $0 * 13) }
            return (try history.status(), try users.map { try history.page(user: $0, limit: 200).entries })
        }

        /// Bytes in the write-ahead logs (`*.log`) of the RocksDB directory.
        static func walBytes(_ dir: String) -> Int64 {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            return names.filter { $0.hasSuffix(".log") }.reduce(0) { total, name in
                var st = stat()
                return total + (stat(dir + "/" + name, &st) == 0 ? Int64(st.st_size) : 0)
            }
        }

        /// `history show` prints a page and the next cursor; following it pages on;
        /// status and rebuild print the same counts.
        @Test func showStatusAndRebuild() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 2)
            try ws.createTopic("app", partitions: 2, extra: ["--key-field", "device_id"])
            var lines: [[UInt8]] = []
            for i in 0..<30 {
                lines.append(Array("{\"user_id\":\"u\(i % 3)\",\"device_id\":\"d\(i)\",\"time_utc\":\"\(1_457_740_800 + 30 - i).5\",\"i\":\(i)}".utf8))
            }
            try ws.ok(["produce", "rides", try ws.writeFile("rides.jsonl", lines: Array(lines[0..<15]))])
            try ws.ok(["produce", "app", try ws.writeFile("app.jsonl", lines: Array(lines[15...])), "--key-field", "device_id"])
            var seen: [String] = []
            var cursor: [String] = []
            while true {
                let r = try ws.ok(["history", "show", "u1", "--limit", "3"] + cursor)
                seen += r.stdoutLines.map { String(decoding: $0, as: UTF8.self) }
                guard let next = r.stderrLines.first(where: { $0.contains("--cursor") })?.split(separator: " ").last else { break }
                cursor = ["--cursor", String(next)]
            }
            // u1 is i = 1, 4, …, 28: times fall as i grows, so the order is i = 28 first.
            let order = seen.compactMap { line in line.range(of: "\"i\":").map { Int(line[$0.upperBound...].prefix { $0.isNumber })! } }
            #expect(order == stride(from: 28, through: 1, by: -3).map { $0 })
            #expect(seen.allSatisfy { $0.hasPrefix("{\"topic\":") && $0.contains("\"value\":{\"user_id\":\"u1\"") })
            let ranged = try ws.ok(["history", "show", "u1", "--from", "1457740810", "--to", "1457740820"])
            #expect(ranged.stdoutLines.count == 3, "\(ranged.stdoutText)")  // times 1457740810.5 … 1457740819.5: i = 13, 16, 19
            let status = try ws.ok(["history", "status"])
            #expect(status.stdoutText.contains("\"indexed\":30"), "\(status.stdoutText)")
            let rebuilt = try ws.ok(["history", "rebuild"])
            #expect(rebuilt.stdoutText.contains("\"indexed\":30"))
            #expect(rebuilt.stderrText.contains("rebuilt from the log"))
            let bad = try ws.kappa(["history", "show", "u1", "--cursor", "garbage!"])
            #expect(bad.status == 1 && bad.stderrText.contains("cursor"), "\(bad)")
        }
    }
}

