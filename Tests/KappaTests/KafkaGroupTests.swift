import Foundation
import Testing
import KappaCore

// Consumer groups of real Kafka clients through `kappa serve`, with the offsets in
// Kappa's group store.

extension CLITests {
    @Suite struct KafkaGroupTests {
        /// Two members split a 4-partition topic, read, commit and leave; a third member
        /// (another client library) resumes from the commits: it gets exactly what was
        /// produced since, nothing lost and nothing committed again. `kappa groups
        /// describe` shows the Kafka clients' commits and lag all along.
        @Test(.enabled(if: KafkaTools.hasConfluentKafka && KafkaTools.hasKafkaPython, KafkaTools.missingPython))
        func twoMembersSplitAndAThirdResumesFromTheirCommits() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("orders", partitions: 4)
            let server = try KafkaServe(ws)
            let first = 400
            let split = try ws.python(KafkaScripts.group, [server.bootstrap, "orders", "shop", "split", String(first)])
            let assigned = try #require(split.first { $0["event"] as? String == "assigned" })
            let a = Set(try #require(assigned["a"] as? [Int])), b = Set(try #require(assigned["b"] as? [Int]))
            #expect(a.count == 2 && b.count == 2 && a.isDisjoint(with: b), "assignment \(a) \(b)")
            let read = split.filter { $0["event"] as? String == "record" }
            #expect(read.count == first)
            var positions = Set<PartitionOffset>()
            for r in read {
                let p = Int(int64(r["partition"])!)
                positions.insert(PartitionOffset(Int32(p), int64(r["offset"])!))
                #expect((r["member"] as? String == "a" ? a : b).contains(p), "member \(r["member"]!) read partition \(p), not its own")
            }
            #expect(positions.count == first, "every record once")
            let ends = try ws.endOffsets("orders")
            #expect(ends.reduce(0, +) == Int64(first))
            var lags = try groupLags(ws, "shop")
            #expect(lags.map(\.committed) == ends && lags.allSatisfy { $0.lag == 0 }, "\(lags)")

            // More records while nobody reads, by `kappa produce`.
            let later = (0..<120).map { Array("{\"user_id\":\"later-\($0)\",\"time_utc\":\"\(1_700_000_000 + $0).25\",\"n\":\($0)}".utf8) }
            try ws.ok(["produce", "orders"], stdin: joinLines(later))
            lags = try groupLags(ws, "shop")
            #expect(lags.reduce(0) { $0 + $1.lag } == 120)

            let resumed = try ws.python(KafkaScripts.group, [server.bootstrap, "orders", "shop", "resume", "120"])
            let values = resumed.filter { $0["event"] as? String == "record" }.compactMap { $0["value"] as? String }
            #expect(values.sorted() == later.map { String(decoding: $0, as: UTF8.self) }.sorted(),
                    "the third member read \(values.count) records: exactly the 120 produced after the commits")
            lags = try groupLags(ws, "shop")
            #expect(lags.allSatisfy { $0.lag == 0 }, "\(lags)")
            #expect(try server.stop() == 0)
        }
    }
}

extension CLITests.KafkaGroupTests {
    /// A member killed with kill -9 sends no LeaveGroup and no more heartbeats: once its
    /// session times out the group rebalances and the survivor takes its partitions.
    @Test(.enabled(if: KafkaTools.hasConfluentKafka, KafkaTools.missingPython))
    func aMemberThatStopsHeartbeatingLosesItsPartitions() throws {
        let ws = try CLIWorkspace()
        try ws.createTopic("orders", partitions: 4)
        let server = try KafkaServe(ws)
        let python3 = try #require(KafkaTools.python3)
        let script = try ws.writeFile("member.py", lines: [Array(KafkaScripts.member.utf8)])
        let victim = try ws.startExternal(python3, [script, server.bootstrap, "orders", "g", "victim", "2000"])
        try waitUntil("the victim to own every partition") { text(victim.stdout).contains("[0, 1, 2, 3]") }
        let survivor = try ws.startExternal(python3, [script, server.bootstrap, "orders", "g", "survivor", "2000"])
        try waitUntil("the two members to share the partitions", timeoutSeconds: 60) {
            text(survivor.stdout).contains("\"partitions\": [0, 1]") || text(survivor.stdout).contains("\"partitions\": [2, 3]")
        }
        victim.send(SIGKILL)
        #expect(try survivor.waitForExit(timeoutSeconds: 90) == 0, "the survivor never got every partition: \(survivor.stderrText.suffix(1000))")
        #expect(text(survivor.stdout).split(separator: "\n").last?.contains("[0, 1, 2, 3]") == true)
        #expect(try server.stop() == 0)
    }
}

struct GroupLag: Equatable {
    var partition: Int64
    var committed: Int64
    var end: Int64
    var lag: Int64
}

/// `kappa groups describe G`, by partition.
func groupLags(_ ws: CLIWorkspace, _ group: String) throws -> [GroupLag] {
    try ws.ok(["groups", "describe", group]).stdoutLines.map(parseJSONObject).map {
        GroupLag(partition: intField($0, "partition"), committed: intField($0, "committed"), end: intField($0, "end"), lag: intField($0, "lag"))
    }.sorted { $0.partition < $1.partition }
}
