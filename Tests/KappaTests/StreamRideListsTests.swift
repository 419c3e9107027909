import Testing
import KappaCore
import KappaTesting
@testable import KappaStreams

/// RideLists (the matcher's rides per user: inline slots, spilled past them) against a
/// plain array per user: the same rides in the same order after any sequence of
/// inserts (in order, out of order, ties broken by partition and offset) and prunes,
/// across the inline/spilled boundary both ways and across growth of the table; ids
/// long enough to live on the heap, so a ride moved without care would show.
@Suite struct StreamRideListsTests {
    typealias Ride = TicketRideMatcher.Ride

    static func precedes(_ a: Ride, _ b: Ride) -> Bool { (a.time, a.partition, a.offset) < (b.time, b.partition, b.offset) }

    @Test(arguments: 0..<3)
    func matchesAnArrayPerUser(seed: UInt64) {
        var random = SeededRandom(seed: 500 + seed)
        let lists = RideLists(capacity: 2)  // grows many times
        var model: [[Ride]] = []
        var offset: Int64 = 0
        for step in 0..<30_000 {
            if model.isEmpty || Int.random(in: 0..<50, using: &random) == 0 {
                #expect(lists.addUser() == model.count)
                model.append([])
            }
            let u = Int.random(in: 0..<model.count, using: &random)
            let base = Int64(step / 8)
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<6:
                // Mostly in order; sometimes earlier, sometimes the same time (ties by
                // partition, then offset).
                let time = base - (Int.random(in: 0..<4, using: &random) == 0 ? Int64.random(in: 0...20, using: &random) : 0)
                offset += 1
                let long = Int.random(in: 0..<3, using: &random) == 0
                let ride = Ride(id: long ? "ride-with-a-long-identifier-\(offset)" : "r\(offset)", time: TimestampNanos(time),
                                partition: Int32.random(in: 0..<3, using: &random), offset: offset)
                lists.insert(ride, for: u)
                var i = model[u].count
                while i > 0 && Self.precedes(ride, model[u][i - 1]) { i -= 1 }
                model[u].insert(ride, at: i)
            case 6..<9:
                let horizon = TimestampNanos(base - Int64.random(in: 0...30, using: &random))
                let dropped = lists.prune(u, horizon: horizon)
                // The model: drop everything before the latest ride at or before horizon.
                var expected = 0
                if model[u].count > 1, model[u][1].time <= horizon {
                    expected = (model[u].lastIndex(where: { $0.time <= horizon }) ?? 0)
                    model[u].removeFirst(expected)
                }
                #expect(dropped == expected)
            default:
                let t = TimestampNanos(base - Int64.random(in: 0...10, using: &random))
                #expect(lists.latest(for: u, atOrBefore: t) == model[u].last(where: { $0.time <= t }))
            }
        }
        #expect(lists.users == model.count)
        var longest = 0
        for u in model.indices {
            var got: [Ride] = []
            lists.forEach(of: u) { got.append($0) }
            #expect(got == model[u], "user \(u)")
            #expect(lists.count(of: u) == model[u].count)
            longest = max(longest, model[u].count)
        }
        #expect(longest > RideLists.inline, "some user spilled past the inline slots")
    }

    @Test func setPlacesInlineOrSpilled() {
        let lists = RideLists()
        let short = (0..<2).map { Ride(id: "r\($0)", time: TimestampNanos(Int64($0)), partition: 0, offset: Int64($0)) }
        let long = (0..<(RideLists.inline + 3)).map { Ride(id: "a-long-ride-identifier-\($0)", time: TimestampNanos(Int64($0)), partition: 1, offset: Int64($0)) }
        lists.set(short, for: lists.addUser())
        lists.set(long, for: lists.addUser())
        lists.addUser()
        for (u, expected) in [short, long, []].enumerated() {
            var got: [Ride] = []
            lists.forEach(of: u) { got.append($0) }
            #expect(got == expected)
        }
        // A spilled user pruned back under the inline slots, then growing again.
        #expect(lists.prune(1, horizon: TimestampNanos(Int64(long.count - 2))) == long.count - 2)
        lists.insert(Ride(id: "late", time: TimestampNanos(100), partition: 0, offset: 100), for: 1)
        var got: [Ride] = []
        lists.forEach(of: 1) { got.append($0) }
        #expect(got.map(\.id.string) == [long[long.count - 2].id.string, long[long.count - 1].id.string, "late"])
    }
}

extension StreamRideListsTests {
    /// What a matcher restoring a checkpoint over its own state relies on: after
    /// removeAll, users are numbered from 0 again and hold nothing of before, spilled
    /// or inline; the key index forgets its keys the same way.
    @Test func removeAllStartsOver() {
        let lists = RideLists(capacity: 2)
        for u in 0..<5 {
            lists.addUser()
            for r in 0..<(u == 3 ? RideLists.inline + 4 : 2) {
                lists.insert(Ride(id: "user-\(u)-ride-with-a-long-id-\(r)", time: TimestampNanos(Int64(r)), partition: 0, offset: Int64(r)), for: u)
            }
        }
        #expect(lists.count(of: 3) == RideLists.inline + 4)
        lists.removeAll()
        #expect(lists.users == 0)
        for u in 0..<5 {
            #expect(lists.addUser() == u)
            #expect(lists.count(of: u) == 0 && lists.latest(for: u, atOrBefore: TimestampNanos(100)) == nil)
        }
        // Spilling again after a removeAll reuses nothing stale.
        for r in 0..<(RideLists.inline + 2) { lists.insert(Ride(id: "r\(r)", time: TimestampNanos(Int64(r)), partition: 0, offset: Int64(r)), for: 4) }
        var got: [String] = []
        lists.forEach(of: 4) { got.append($0.id.string) }
        #expect(got == (0..<(RideLists.inline + 2)).map { "r\($0)" })
        #expect(lists.count(of: 3) == 0)

        let keys = KeyIndex(capacity: 4)
        let names = (0..<100).map { "user-\($0)" }
        for n in names { _ = keys.id(of: n) }
        keys.removeAll()
        #expect(keys.count == 0)
        #expect(keys.id(of: "user-50") == 0 && keys.id(of: "user-7") == 1 && keys.id(of: "user-50") == 0)
        #expect(keys.count == 2)
    }
}

extension StreamRideListsTests {
    /// A ride's partition and offset share one word; what fits comes back as it went in,
    /// and what does not is refused rather than folded into another ride's position.
    @Test func partitionAndOffsetShareAWord() {
        for (p, o) in [(Int32(0), Int64(0)), (1023, 0), (0, (1 << 48) - 1), ((1 << 15) - 1, (1 << 48) - 1), (7, 123_456_789)] {
            #expect(Ride.fits(partition: p, offset: o))
            let r = Ride(id: "r", time: TimestampNanos(1), partition: p, offset: o)
            #expect(r.partition == p && r.offset == o)
        }
        for (p, o) in [(Int32(-1), Int64(0)), (1 << 15, 0), (0, 1 << 48), (0, -1)] {
            #expect(!Ride.fits(partition: p, offset: o))
        }
        // Ordered by partition before offset, whatever the offsets.
        #expect(RideLists.precedes(Ride(id: "a", time: TimestampNanos(5), partition: 0, offset: (1 << 48) - 1),
                                   Ride(id: "b", time: TimestampNanos(5), partition: 1, offset: 0)))
    }
}

extension TicketRideMatcher.Ride {
    init(id: String, time: TimestampNanos, partition: Int32, offset: Int64) {
        self.init(id: CompactID(id), time: time, partition: partition, offset: offset)
    }
}

/// CompactID: up to 15 bytes inside the value, longer ones out of line; either way the
/// same bytes back, equal by content, and a copy independent of its original.
@Suite struct StreamCompactIDTests {
    @Test(arguments: [0, 1, 7, 8, 14, 15, 16, 17, 36, 300])
    func keepsItsBytes(length: Int) {
        let text = String((0..<length).map { i in Character(UnicodeScalar(UInt8(33 + (i * 7) % 90))) })
        let id = CompactID(text)
        #expect(id.count == length)
        #expect(id.string == text)
        #expect(id.withBytes { Array($0) } == Array(text.utf8))
        let copy = id.copy()
        #expect(copy == id)
        id.deallocate()
        #expect(copy.string == text, "a copy outlives its original")
        if length > 0 {
            let other = CompactID(String(text.dropLast()) + "~")
            #expect(other != copy)
            other.deallocate()
        }
        let longer = CompactID(text + "x")
        #expect(longer != copy, "a longer id is another id")
        longer.deallocate()
        copy.deallocate()
    }

    @Test func nonASCIIAndZeroBytes() {
        for text in ["ü", "日本語のチケット番号", "a\u{0}b", "\u{0}"] {
            let id = CompactID(text)
            #expect(id.string == text && id.count == text.utf8.count)
            id.deallocate()
        }
    }
}

/// HugePageMemory keeps a table's bytes through growth: within malloc, from malloc to a
/// mapping (2 MiB and up), and from mapping to mapping (mremap).
@Suite struct StreamHugePageMemoryTests {
    @Test func growthKeepsTheContent() {
        var n = 1000
        var p = HugePageMemory.allocate(Int.self, capacity: n)
        for i in 0..<n { (p + i).initialize(to: i &* 7919) }
        for next in [100_000, 300_000, 1_000_000, 3_000_000] {  // 0.8 MB, 2.4 MB, 8 MB, 24 MB
            p = HugePageMemory.reallocate(p, from: n, to: next)
            for i in n..<next { (p + i).initialize(to: i &* 7919) }
            n = next
            #expect((0..<n).allSatisfy { p[$0] == $0 &* 7919 }, "after growing to \(n)")
        }
        HugePageMemory.deallocate(p, capacity: n)
    }
}
