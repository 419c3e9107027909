import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore

/// `GET /v1/users/{user_id}/events` (the KappaHistory index inside `kappa serve`) against
/// the raw data, and the index rebuilt after it is deleted and after kill -9.
extension HTTPTests {
    @Suite struct History {
        static var appEvents: [[UInt8]] { splitLines(HTTPFx.dataset.jsonLines(.appEvents)) }

        @Test func eventsOfAUserInTimeOrderSurviveDeletionAndKill9() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 2)
            try ws.createTopic("tickets", partitions: 2)
            try ws.createTopic("app_events", partitions: 2)
            try ws.ok(["produce", "rides", try ws.writeFile("rides.jsonl", lines: HTTPFx.rides)])
            try ws.ok(["produce", "tickets", try ws.writeFile("tickets.jsonl", lines: HTTPFx.tickets)])
            try ws.ok(["produce", "app_events", try ws.writeFile("app.jsonl", lines: Self.appEvents)])
            // Users with a ticket have events in all three topics.
            let users = Array(Set(HTTPFx.tickets.compactMap { stringField("user_id", in: $0) })).sorted().prefix(4)
            let expected = try Dictionary(uniqueKeysWithValues: users.map { ($0, try Self.rawEvents(of: $0)) })

            var serve = try HTTPServe(ws)
            for user in users { try Self.check(serve, user, expected[user]!) }
            try expectProblem(try serve.get("/v1/users/nobody/events"), 404)
            #expect(try serve.stop() == 0)

            // Deleted: rebuilt from the log at the next start.
            try FileManager.default.removeItem(atPath: ws.data + "/history")
            serve = try HTTPServe(ws)
            for user in users { try Self.check(serve, user, expected[user]!) }
            // Killed while it indexes new records, at whatever point it has reached.
            try ws.ok(["produce", "app_events", try ws.writeFile("app2.jsonl", lines: Self.appEvents.map { $0 })])
            serve.process.send(SIGKILL)
            _ = try serve.process.waitForExit()
            serve = try HTTPServe(ws)
            for user in users {
                // Every app event of the user is now there twice (produced twice), in time order.
                let doubled = expected[user]!.flatMap { e in e.topic == "app_events" ? [e, e] : [e] }
                try Self.check(serve, user, doubled)
            }
            #expect(try serve.stop() == 0)
        }

        /// The history indexer runs at nice 10 on a thread of its own (and the RocksDB
        /// threads it starts inherit it), so that requests and appends go first on a busy
        /// machine; the threads that serve requests keep nice 0 (Linux nice is per thread).
        @Test func theIndexerYieldsTheCPUToRequests() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("app_events", partitions: 2)
            try ws.ok(["produce", "app_events", try ws.writeFile("app.jsonl", lines: Array(Self.appEvents.prefix(200)))])
            let serve = try HTTPServe(ws)
            _ = try serve.get("/v1/users/nobody/events")
            var nice: [String: Set<Int>] = [:]  // thread name → nice values seen
            let tasks = "/proc/\(serve.process.pid)/task"
            for tid in try FileManager.default.contentsOfDirectory(atPath: tasks) {
                guard let comm = try? String(contentsOfFile: "\(tasks)/\(tid)/comm", encoding: .utf8),
                      let stat = try? String(contentsOfFile: "\(tasks)/\(tid)/stat", encoding: .utf8) else { continue }
                // Fields after the parenthesised name: state is field 3, nice field 19.
                let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
                nice[comm.trimmingCharacters(in: .whitespacesAndNewlines), default: []].insert(Int(fields[16])!)
            }
            #expect(nice["kappa-history"]?.contains(10) == true, "\(nice)")
            #expect(nice.filter { $0.key.hasPrefix("NIO-ELT") }.values.allSatisfy { $0 == [0] } && nice.keys.contains { $0.hasPrefix("NIO-ELT") }, "\(nice)")
            #expect(nice.filter { $0.key.hasPrefix("rocksdb") }.values.allSatisfy { $0 == [10] }, "\(nice)")
            #expect(try serve.stop() == 0)
        }

        struct Event: Equatable {
            var topic: String
            var time: Int64
            var value: String
        }

        /// The user's lines from every topic, by event time (topic order breaks ties).
        static func rawEvents(of user: String) throws -> [Event] {
            var out: [Event] = []
            for (topic, lines) in [("app_events", appEvents), ("rides", HTTPFx.rides), ("tickets", HTTPFx.tickets)] {
                for line in lines where stringField("user_id", in: line) == user {
                    out.append(Event(topic: topic, time: try EventTime.parse(stringField("time_utc", in: line)!).get().rawValue, value: text(line)))
                }
            }
            return out.sorted { ($0.time, $0.topic) < ($1.time, $1.topic) }
        }

        /// Walks every page (limit 7) and compares with the raw events.
        static func check(_ serve: HTTPServe, _ user: String, _ expected: [Event],
                          sourceLocation: SourceLocation = #_sourceLocation) throws {
            var got: [Event] = []
            var cursor: String? = nil
            repeat {
                let page = try serve.json("/v1/users/\(urlEncode(user))/events?limit=7" + (cursor.map { "&cursor=\(urlEncode($0))" } ?? ""), sourceLocation: sourceLocation)
                for e in try #require(page["events"] as? [[String: Any]]) {
                    let value = String(decoding: try JSONSerialization.data(withJSONObject: try #require(e["value"]), options: [.sortedKeys]), as: UTF8.self)
                    got.append(Event(topic: e["topic"] as! String, time: try EventTime.parse(e["timestamp"] as! String).get().rawValue, value: value))
                    #expect(e["partition"] != nil && e["offset"] != nil)
                }
                #expect(page["as_of"] is [String: Any])
                cursor = page["next_cursor"] as? String
            } while cursor != nil
            func canonical(_ s: String) -> String {
                String(decoding: (try? JSONSerialization.data(withJSONObject: try JSONSerialization.jsonObject(with: Data(s.utf8)), options: [.sortedKeys])) ?? Data(), as: UTF8.self)
            }
            let want = expected.map { Event(topic: $0.topic, time: $0.time, value: canonical($0.value)) }
            #expect(got.map(\.time) == got.map(\.time).sorted(), "event-time order", sourceLocation: sourceLocation)
            #expect(got.count == want.count, "\(user): \(got.count) events, expected \(want.count)", sourceLocation: sourceLocation)
            #expect(Set(got.map { "\($0.topic)|\($0.time)|\($0.value)" }) == Set(want.map { "\($0.topic)|\($0.time)|\($0.value)" }), sourceLocation: sourceLocation)
        }
    }
}
