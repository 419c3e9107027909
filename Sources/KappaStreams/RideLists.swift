import CPrefetch
import KappaCore

/// The rides the matcher keeps per user, ascending by (time, partition, offset).
///
/// Pruning keeps a user's latest ride at or before the oldest ticket time still possible
/// and those after it, so a user holds a few rides at a time (1M rides of 176k users:
/// 1–2 for nine in ten users, more than four for under 1 %). Each user has `inline` slots
/// in one table indexed by user id, and a count in a small array that stays cached: a
/// ride costs one random access, no allocation, in memory that asks for huge pages. A
/// user who needs more at once keeps them in `spilled` until pruning brings them back;
/// its first slot then holds where (an index, so finding them is a load, not a hash).
/// Before, a Swift array per user cost an allocation (and reallocations as it grew), a
/// reference to follow and a header to load per ride, each a cache and TLB miss: about a
/// quarter of a 1M-ride match replay's CPU.
final class RideLists {
    typealias Ride = TicketRideMatcher.Ride

    static let inline = 4
    /// `counts[u]` of a user whose rides are in `spilled`.
    private static let isSpilled: UInt8 = .max

    /// User u's inline rides are `slots[u * inline ..< u * inline + counts[u]]`
    /// (initialized); the rest of its slots are uninitialized. A spilled user's first
    /// slot holds its index in `spilled` (`spillIndex`).
    private var slots: UnsafeMutablePointer<Ride>
    private var counts: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Users so far (ids `0..<users`).
    private(set) var users = 0
    /// Lists of spilled users; the empty ones are free, listed in `freeSpills`.
    private var spilled: [[Ride]] = []
    private var freeSpills: [Int] = []

    init(capacity: Int = 1024) {
        self.capacity = capacity
        slots = HugePageMemory.allocate(Ride.self, capacity: capacity * Self.inline)
        counts = .allocate(capacity: capacity)
    }

    deinit {
        freeIds()
        HugePageMemory.deallocate(slots, capacity: capacity * Self.inline)
        counts.deallocate()
    }

    /// Rides are plain bits; only their long ids hold memory.
    private func freeIds() {
        for u in 0..<users { forEach(of: u) { $0.id.deallocate() } }
    }

    /// Forgets every user and ride (keeping the memory).
    func removeAll() {
        freeIds()
        users = 0
        spilled = []
        freeSpills = []
    }

    /// Where spilled user `u`'s rides are in `spilled`.
    @inline(__always)
    private func spillIndex(_ u: Int) -> Int {
        UnsafeRawPointer(slots + u * Self.inline).load(as: Int.self)
    }

    /// Makes `list` user `u`'s spilled rides.
    private func spill(_ list: [Ride], for u: Int) {
        let i: Int
        if let free = freeSpills.popLast() {
            spilled[free] = list
            i = free
        } else {
            spilled.append(list)
            i = spilled.count - 1
        }
        UnsafeMutableRawPointer(slots + u * Self.inline).storeBytes(of: i, as: Int.self)
        counts[u] = Self.isSpilled
    }

    /// Takes spilled user `u`'s rides out of `spilled`; the user holds none after.
    private func unspill(_ u: Int) -> [Ride] {
        let i = spillIndex(u)
        let list = spilled[i]
        spilled[i] = []
        freeSpills.append(i)
        counts[u] = 0
        return list
    }

    /// Adds a user with no rides; returns its id.
    @discardableResult
    func addUser() -> Int {
        if users == capacity {
            // Rides are moved bit for bit (Swift values are bitwise movable).
            slots = HugePageMemory.reallocate(slots, from: capacity * Self.inline, to: capacity * 2 * Self.inline)
            let biggerCounts = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
            biggerCounts.initialize(from: counts, count: users)
            counts.deallocate()
            counts = biggerCounts
            capacity *= 2
        }
        counts[users] = 0
        users += 1
        return users - 1
    }

    /// Starts loading user `u`'s first rides (a hint for an access soon after).
    @inline(__always)
    func prefetch(_ u: Int) {
        guard u < users else { return }
        // Both cache lines of the user's slots (4 × 32 bytes, from a 64-byte boundary).
        kappa_prefetch(slots + u * Self.inline)
        kappa_prefetch(slots + u * Self.inline + 2)
    }

    @inline(__always)
    static func precedes(_ a: Ride, _ b: Ride) -> Bool { (a.time, a.position) < (b.time, b.position) }

    /// Adds `ride` in order among user `u`'s rides. The lists own its id from here on and
    /// free it when the ride is pruned; rides handed out (`latest`, `forEach`) borrow it.
    @inline(__always)
    func insert(_ ride: Ride, for u: Int) {
        let c = Int(counts[u])
        guard c < Self.inline else {
            if counts[u] == Self.isSpilled {
                Self.insert(ride, into: &spilled[spillIndex(u)])
            } else {
                spill(u, adding: ride)
            }
            return
        }
        let base = slots + u * Self.inline
        var i = c
        while i > 0 && Self.precedes(ride, base[i - 1]) { i -= 1 }
        if i < c { (base + i + 1).moveInitialize(from: base + i, count: c - i) }  // the usual case, in order, moves nothing
        (base + i).initialize(to: ride)
        counts[u] = UInt8(c + 1)
    }

    /// A ride past the inline slots: the user's rides move to `spilled`.
    private func spill(_ u: Int, adding ride: Ride) {
        let base = slots + u * Self.inline
        var list = [Ride](unsafeUninitializedCapacity: Self.inline * 2) { buffer, n in
            buffer.baseAddress!.moveInitialize(from: base, count: Self.inline)
            n = Self.inline
        }
        Self.insert(ride, into: &list)
        spill(list, for: u)
    }

    private static func insert(_ ride: Ride, into list: inout [Ride]) {
        var i = list.count
        while i > 0 && precedes(ride, list[i - 1]) { i -= 1 }
        list.insert(ride, at: i)
    }

    /// Drops user `u`'s rides before the latest one at or before `horizon`; returns how
    /// many it dropped.
    @inline(__always)
    func prune(_ u: Int, horizon: TimestampNanos) -> Int {
        let c = Int(counts[u])
        guard c <= Self.inline else { return pruneSpilled(u, horizon: horizon) }
        let base = slots + u * Self.inline
        guard c > 1, base[1].time <= horizon else { return 0 }  // nothing to drop
        var lastOld = 1
        while lastOld + 1 < c && base[lastOld + 1].time <= horizon { lastOld += 1 }
        for i in 0..<lastOld { base[i].id.deallocate() }
        base.moveInitialize(from: base + lastOld, count: c - lastOld)
        counts[u] = UInt8(c - lastOld)
        return lastOld
    }

    private func pruneSpilled(_ u: Int, horizon: TimestampNanos) -> Int {
        let i = spillIndex(u)
        guard spilled[i].count > 1, spilled[i][1].time <= horizon else { return 0 }
        var list = unspill(u)  // now the only reference: changed in place
        var lastOld = 1
        while lastOld + 1 < list.count && list[lastOld + 1].time <= horizon { lastOld += 1 }
        for i in 0..<lastOld { list[i].id.deallocate() }
        list.removeFirst(lastOld)
        place(list, for: u)
        return lastOld
    }

    /// Puts `list` (ascending) as user `u`'s rides, inline when it fits; the user holds
    /// none inline and is not spilled.
    private func place(_ list: [Ride], for u: Int) {
        if list.count <= Self.inline {
            (slots + u * Self.inline).initialize(from: list, count: list.count)
            counts[u] = UInt8(list.count)
        } else {
            spill(list, for: u)
        }
    }

    /// User `u`'s latest ride at or before `time`.
    @inline(__always)
    func latest(for u: Int, atOrBefore time: TimestampNanos) -> Ride? {
        let c = Int(counts[u])
        guard c <= Self.inline else { return spilled[spillIndex(u)].last(where: { $0.time <= time }) }
        let base = slots + u * Self.inline
        var i = c
        while i > 0 {
            i -= 1
            if base[i].time <= time { return base[i] }
        }
        return nil
    }

    func count(of u: Int) -> Int {
        counts[u] == Self.isSpilled ? spilled[spillIndex(u)].count : Int(counts[u])
    }

    /// User `u`'s rides in order.
    func forEach(of u: Int, _ body: (Ride) -> Void) {
        if counts[u] == Self.isSpilled {
            for r in spilled[spillIndex(u)] { body(r) }
            return
        }
        let base = slots + u * Self.inline
        for i in 0..<Int(counts[u]) { body(base[i]) }
    }

    /// Sets the rides of `u`, a user just added (restoring a checkpoint): `list` ascending.
    /// The lists own the rides' ids from here on, as they do those `insert` is given.
    func set(_ list: [Ride], for u: Int) {
        precondition(counts[u] == 0, "set is for a user with no rides yet")
        place(list, for: u)
    }
}
