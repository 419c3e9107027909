import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore

/// Freshness and consistency of the store routes while the log grows and versions
/// switch: pages neither skip nor repeat a row, and an answer never mixes two versions.
extension HTTPTests {
    @Suite struct Consistency {
        static let perUserHour = """
            name: rides-per-user
            inputs: [rides]
            window: { key: user_id, time: time_utc, size: 1h, grace: 10m, aggregates: [count, sum:fare], emit: final }
            output: rides-per-user
            """

        @Test func pagesNeitherSkipNorRepeatWhileRecordsArrive() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 2)
            let chunks = JobFx.chunks(HTTPFx.rides, count: 8)
            try ws.ok(["produce", "rides", try ws.writeFile("rides-0.jsonl", lines: chunks[0] + chunks[1])])
            let daemon = try ws.start(["process", try ws.writeFile("job.yaml", lines: [Array(Self.perUserHour.utf8)])])
            let serve = try HTTPServe(ws)
            func inputRead(_ page: [String: Any]) -> Int64 {
                ((page["as_of"] as? [String: Any])?["tasks"] as? [[String: Any]] ?? []).reduce(0) { $0 + (int64(($1["input_offsets"] as? [String: Any])?["rides"]) ?? 0) }
            }
            var produced = Int64(chunks[0].count + chunks[1].count)
            try waitUntil("the store to reflect the first rides", timeoutSeconds: 120) {
                let a = try serve.get("/v1/jobs/rides-per-user/rows?limit=1")
                guard a.status == 200 else { return false }
                return inputRead(try a.json()) == produced
            }
            // The rows before the walk: every final one must come back exactly once.
            var before: [String: [String: Any]] = [:]
            for row in try allRows(serve) where row["final"] as? Bool == true { before[identity(row)] = row }
            #expect(before.count > 100)

            var seen: [String: Int] = [:]
            var cursor: String? = nil
            var next = 2
            var pages = 0
            repeat {
                let page = try serve.json("/v1/jobs/rides-per-user/rows?limit=50" + (cursor.map { "&cursor=\(urlEncode($0))" } ?? ""))
                let rows = try #require(page["rows"] as? [[String: Any]])
                #expect(rows.map(identity) == rows.map(identity).sorted(by: identityOrder), "a page is in key order")
                for row in rows {
                    seen[identity(row), default: 0] += 1
                    if let old = before[identity(row)] { #expect(sameJSON(old, row), "a final row changed: \(old) → \(row)") }
                }
                cursor = page["next_cursor"] as? String
                pages += 1
                // Between pages, more rides arrive and the store takes them in.
                if next < chunks.count && pages % 3 == 0 {
                    try ws.ok(["produce", "rides", try ws.writeFile("rides-\(next).jsonl", lines: chunks[next])])
                    produced += Int64(chunks[next].count)
                    next += 1
                    try waitUntil("the store to take in chunk \(next - 1)", timeoutSeconds: 120) {
                        inputRead(try serve.json("/v1/jobs/rides-per-user/rows?limit=1")) == produced
                    }
                }
            } while cursor != nil
            #expect(next > 4, "records arrived during the walk (\(next - 2) chunks)")
            #expect(seen.values.allSatisfy { $0 == 1 }, "repeated: \(seen.filter { $0.value > 1 }.keys.prefix(5))")
            let missing = Set(before.keys).subtracting(seen.keys)
            #expect(missing.isEmpty, "skipped: \(missing.prefix(5))")
            daemon.send(SIGTERM)
            #expect(try daemon.waitForExit() == 0)
            #expect(try serve.stop() == 0)
        }

        @Test func aSwitchIsSeenWholeNeverAMixOfVersions() throws {
            let ws = try CLIWorkspace()
            try HTTPFx.prepare(ws, jobs: [HTTPFx.ridesPerDay])
            let serve = try HTTPServe(ws)
            let v1Cursor = try #require(try serve.json("/v1/jobs/rides-per-day/rows?limit=1")["next_cursor"] as? String)
            let halfDay = try ws.writeFile("half-day.yaml", lines: [Array(HTTPFx.ridesPerDay.replacingOccurrences(of: "size: 1d", with: "size: 12h").utf8)])
            let replay = try ws.start(["replay", halfDay, "--switch"])
            var versions: [Int64] = []
            try waitUntil("the server to answer from v2", timeoutSeconds: 180) {
                let page = try serve.json("/v1/jobs/rides-per-day/rows?limit=1000")
                let version = try #require(int64(page["version"]))
                #expect(int64((page["as_of"] as? [String: Any])?["version"]) == version)
                let size: Int64 = version == 1 ? 86_400 : 43_200
                for row in try #require(page["rows"] as? [[String: Any]]) {
                    let start = Int64(try #require(row["window_start"] as? String).split(separator: ".")[0])!
                    let end = Int64(try #require(row["window_end"] as? String).split(separator: ".")[0])!
                    #expect(end - start == size, "v\(version) answered a row of another version: \(row)")
                }
                if versions.last != version { versions.append(version) }
                return version == 2
            }
            #expect(versions == [1, 2] || versions == [2])
            #expect(try replay.waitForExit(timeoutSeconds: 120) == 0)
            // A cursor made in v1 is refused now that v2 is current: its rows would mix versions.
            try expectProblem(try serve.get("/v1/jobs/rides-per-day/rows?cursor=\(urlEncode(v1Cursor))"), 409)
            #expect(try serve.stop() == 0)
        }
    }
}

private func identity(_ row: [String: Any]) -> String {
    "\(row["key"] as? String ?? "")\u{1F}\(row["window_start"] as? String ?? "")"
}

private func identityOrder(_ a: String, _ b: String) -> Bool {
    let pa = a.split(separator: "\u{1F}"), pb = b.split(separator: "\u{1F}")
    if pa[0] != pb[0] { return pa[0] < pb[0] }
    return Double(pa[1])! < Double(pb[1])!
}

/// Every row of rides-per-user, paged.
private func allRows(_ serve: HTTPServe) throws -> [[String: Any]] {
    var rows: [[String: Any]] = []
    var cursor: String? = nil
    repeat {
        let page = try serve.json("/v1/jobs/rides-per-user/rows?limit=1000" + (cursor.map { "&cursor=\(urlEncode($0))" } ?? ""))
        rows += page["rows"] as? [[String: Any]] ?? []
        cursor = page["next_cursor"] as? String
    } while cursor != nil
    return rows
}
