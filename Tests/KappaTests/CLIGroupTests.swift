import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore
import KappaLog
import KappaTesting

extension CLITests {
    /// Consumer groups through the real binary: members split the partitions, a killed
    /// member's partitions move to the others (at-least-once), `groups describe` shows
    /// owners and lag, and `groups reset` refuses live members and rewinds stopped ones.
    @Suite struct CLIGroupTests {
        static let partitions: Int32 = 6
        static let topic = "rides"
        static let group = "dash"

        /// One line of `groups describe`.
        struct PartitionState {
            var partition: Int32
            var committed: Int64?
            var end: Int64
            var lag: Int64
            var owner: String?
        }

        static func describe(_ ws: CLIWorkspace) throws -> [PartitionState]? {
            let r = try ws.kappa(["groups", "describe", group])
            guard r.status == 0 else { return nil }  // the group does not exist yet
            return try r.stdoutLines.map(parseJSONObject).compactMap { o in
                guard o["topic"] as? String == topic, o["group"] as? String == group else { return nil }
                return PartitionState(partition: Int32(intField(o, "partition")), committed: (o["committed"] as? NSNumber)?.int64Value,
                                      end: intField(o, "end"), lag: intField(o, "lag"), owner: o["owner"] as? String)
            }.sorted { $0.partition < $1.partition }
        }

        /// The member process an owner id names (ids are host-pid-nonce).
        static func member(_ owner: String?, in members: [CLIProcess]) -> CLIProcess? {
            guard let owner else { return nil }
            return members.first { owner.contains("-\($0.pid)-") }
        }

        /// Waits until `members` own every partition, each the share the assignment gives it.
        static func waitForStableOwnership(_ ws: CLIWorkspace, _ members: [CLIProcess], _ what: String) throws -> [Int32: CLIProcess] {
            var owners: [Int32: CLIProcess] = [:]
            try waitUntil("\(what): every partition owned by one of \(members.count) members, evenly", timeoutSeconds: 60, pollSeconds: 0.1) {
                guard let states = try describe(ws), states.count == Int(partitions) else { return false }
                owners = [:]
                for s in states {
                    guard let m = member(s.owner, in: members) else { return false }
                    owners[s.partition] = m
                }
                let share = Int(partitions) / members.count
                return members.allSatisfy { m in owners.values.filter { $0 === m }.count == share }
            }
            return owners
        }

        /// Records printed by a member so far (complete lines only).
        static func printed(_ m: CLIProcess) throws -> [MetaRecord] {
            try m.stdoutLines.map(MetaRecord.init)
        }

        @Test func membersSplitTakeOverAndReset() throws {
            let ws = try CLIWorkspace()
            let lines = rebuLines(seed: 51, count: 24_000)
            // What each partition holds, by offset, once everything is produced.
            let expected = routeByUserId(lines, partitions: Self.partitions)
            try ws.createTopic(Self.topic, partitions: Int(Self.partitions))
            let memberArgs = ["consume", Self.topic, "--group", Self.group, "--follow", "--from-beginning", "--with-meta"]
            let members = try (0..<3).map { _ in try ws.start(memberArgs) }
            let owners = try Self.waitForStableOwnership(ws, members, "three members")
            let groupsList = try ws.ok(["groups", "list"]).stdoutLines.map(parseJSONObject)
            #expect(groupsList.contains { $0["group"] as? String == Self.group && intField($0, "members") == 3 }, "groups list: \(groupsList)")

            // Phase 1: every record printed once, by its partition's owner only.
            try ws.ok(["produce", Self.topic, try ws.writeFile("p1.jsonl", lines: Array(lines[0..<3000]))])
            try waitUntil("members to print 3000 records", timeoutSeconds: 60, pollSeconds: 0.1) {
                try members.reduce(0) { $0 + (try Self.printed($1).count) } >= 3000
            }
            try waitUntil("lag 0 on every partition", timeoutSeconds: 60, pollSeconds: 0.1) {
                try Self.describe(ws)?.allSatisfy { $0.lag == 0 && $0.committed == $0.end && $0.owner != nil } ?? false
            }
            let phase1 = routeByUserId(Array(lines[0..<3000]), partitions: Self.partitions)
            var byPartition: [Int32: [MetaRecord]] = [:]
            for m in members {
                for (p, rs) in try groupByPartition(try Self.printed(m)) {
                    #expect(owners[p] === m, "partition \(p) printed by \(m.description), owned by \(owners[p]?.description ?? "nobody")")
                    #expect(byPartition[p] == nil, "partition \(p) printed by two members")
                    byPartition[p] = rs
                }
            }
            for p in 0..<Self.partitions {
                expectSameLines(byPartition[p]?.map(\.value) ?? [], phase1[p]!, "phase 1 partition \(p)")
                #expect(byPartition[p]?.first?.offset ?? 0 == 0)
            }

            // Phase 2: many more records; kill -9 one member as soon as it prints some of
            // them: it prints in 1 MiB pieces and commits when caught up or each second, so
            // it most likely dies with printed records it has not committed.
            let victim = members[1]
            let survivors = [members[0], members[2]]
            let victimPartitions = owners.filter { $0.value === victim }.map(\.key).sorted()
            let victimBefore = fileSize(victim.stdoutPath)
            try ws.ok(["produce", Self.topic, try ws.writeFile("p2.jsonl", lines: Array(lines[3000..<23_000]))])
            try waitUntil("the victim to print phase-2 records", timeoutSeconds: 60, pollSeconds: 0.001) {
                fileSize(victim.stdoutPath) > victimBefore
            }
            victim.send(SIGKILL)
            #expect(try victim.waitForExit() == 128 + SIGKILL)
            // Complete lines only: a kill may cut the last one.
            let victimRecords = try Self.printed(victim)
            try ws.ok(["produce", Self.topic, try ws.writeFile("p3.jsonl", lines: Array(lines[23_000...]))])

            // The survivors take over: no owner is the dead member, every record is out.
            let after = try Self.waitForStableOwnership(ws, survivors, "two survivors")
            #expect(after.values.allSatisfy { $0 !== victim })
            var all: [MetaRecord] = []
            try waitUntil("every record printed at least once", timeoutSeconds: 90, pollSeconds: 0.5) {
                all = try survivors.flatMap(Self.printed) + victimRecords
                let seen = Set(all.map { "\($0.partition)/\($0.offset)" })
                return expected.allSatisfy { p, ls in (0..<ls.count).allSatisfy { seen.contains("\(p)/\($0)") } }
            }
            for r in all {
                guard let want = expected[r.partition], r.offset < Int64(want.count), want[Int(r.offset)] == r.value else {
                    Issue.record("printed a record that is not the stored one: \(r)")
                    break
                }
            }
            // At-least-once, and duplicates only from the victim's uncommitted range: a
            // record printed twice was printed by the victim, in a partition it owned, at
            // or after where its successor started (the victim's last commit).
            var counts: [String: Int] = [:]
            for r in all { counts["\(r.partition)/\(r.offset)", default: 0] += 1 }
            let victimPrinted = Set(victimRecords.map { "\($0.partition)/\($0.offset)" })
            for (key, n) in counts where n > 1 {
                #expect(n == 2 && victimPrinted.contains(key), "\(key) printed \(n) times, not only by the dead member and its successor")
                let p = Int32(key.split(separator: "/")[0])!
                #expect(victimPartitions.contains(p), "\(key): duplicate in partition \(p), which the dead member did not own")
            }
            for p in victimPartitions {
                let lastByVictim = victimRecords.filter { $0.partition == p }.map(\.offset).max() ?? -1
                let successor = try survivors.flatMap(Self.printed).filter { $0.partition == p }.map(\.offset)
                let resumedAt = successor.min() ?? Int64(expected[p]!.count)
                #expect(resumedAt <= lastByVictim + 1, "partition \(p): successor resumed at \(resumedAt), after a gap past \(lastByVictim)")
            }

            // reset refuses while members live.
            let refused = try ws.kappa(["groups", "reset", Self.group, "--topic", Self.topic, "--to-earliest"])
            #expect(refused.status != 0, "\(refused)")
            #expect(refused.stderrLines.count == 1 && refused.stderrText.contains("live member"), "\(refused.stderrText)")

            // SIGTERM stops them cleanly, committing what they printed.
            for m in survivors {
                m.send(SIGTERM)
                #expect(try m.waitForExit() == 0, "clean stop: \(m.result)")
                #expect(m.stdout.last == 0x0A, "output ends with a whole line")
            }
            let stopped = try #require(try Self.describe(ws))
            for s in stopped {
                #expect(s.owner == nil && s.lag == 0 && s.committed == Int64(expected[s.partition]!.count), "after stop: \(s)")
            }
            let listed = try ws.ok(["groups", "list"]).stdoutLines.map(parseJSONObject)
            #expect(listed.contains { $0["group"] as? String == Self.group && intField($0, "members") == 0 }, "groups list: \(listed)")

            // --to-earliest: a new member reads everything again, once.
            try ws.ok(["groups", "reset", Self.group, "--topic", Self.topic, "--to-earliest"])
            for s in try #require(try Self.describe(ws)) {
                #expect(s.committed == 0 && s.lag == s.end, "after --to-earliest: \(s)")
            }
            let again = try ws.ok(["consume", Self.topic, "--group", Self.group, "--with-meta"])
            let reread = try groupByPartition(again.stdoutLines.map(MetaRecord.init))
            for p in 0..<Self.partitions {
                expectSameLines(reread[p]?.map(\.value) ?? [], expected[p]!, "re-read after --to-earliest, partition \(p)")
            }
            #expect(try #require(try Self.describe(ws)).allSatisfy { $0.lag == 0 })

            // --to-offset N: a new member starts at N in every partition.
            let n: Int64 = 100
            try ws.ok(["groups", "reset", Self.group, "--topic", Self.topic, "--to-offset", String(n)])
            for s in try #require(try Self.describe(ws)) {
                #expect(s.committed == min(n, s.end), "after --to-offset \(n): \(s)")
            }
            let fromN = try groupByPartition(try ws.ok(["consume", Self.topic, "--group", Self.group, "--with-meta"]).stdoutLines.map(MetaRecord.init))
            for p in 0..<Self.partitions {
                let want = expected[p]!.count > Int(n) ? Array(expected[p]![Int(n)...]) : []
                expectSameLines(fromN[p]?.map(\.value) ?? [], want, "re-read after --to-offset \(n), partition \(p)")
                #expect(fromN[p]?.first?.offset ?? n == n)
            }

            // --to-latest: nothing left to read.
            try ws.ok(["groups", "reset", Self.group, "--topic", Self.topic, "--to-latest"])
            let none = try ws.ok(["consume", Self.topic, "--group", Self.group])
            #expect(none.stdout.isEmpty)
        }
    }
}
