import CPrefetch
import HeapModule
import KappaCore
import KappaJSON

/// A ticket matched (or not) to the user's latest ride at or before it.
public struct MatchResult: Equatable, Sendable {
    public var ticketId: String
    public var user: String
    public var ticketTime: TimestampNanos
    public var ticketPartition: Int32
    public var ticketOffset: Int64
    public var rideId: String?
    public var rideTime: TimestampNanos?
    public var ridePartition: Int32?
    public var rideOffset: Int64?
    public var final: Bool

    /// `{"ticket_id","user_id","ticket_time","ride_id","ride_time"}` (ride fields null
    /// when unmatched).
    public func json() -> [UInt8] {
        let out = ByteWriter(capacity: 256)
        appendJSON(to: out)
        return Array(out.bytes)
    }

    /// `json()` written into `out`.
    public func appendJSON(to out: ByteWriter) {
        Self.appendJSON(to: out, ticketId: { JSONEscape.appendString(ticketId, to: $0) }, user: user, ticketTime: ticketTime,
                        rideId: { w in rideId.map { JSONEscape.appendString($0, to: w) } != nil }, rideTime: rideTime)
    }

    /// The one writer of a result's JSON, for `MatchResult` and `MatchRef` alike: the ids
    /// are written by the caller (from a String or from bytes), the rest here. `rideId`
    /// writes the ride's id and returns true, or returns false when there is none.
    /// (Non-optional closures: an optional one escapes, an allocation per result.)
    static func appendJSON(to out: ByteWriter, ticketId: (ByteWriter) -> Void, user: String, ticketTime: TimestampNanos,
                           rideId: (ByteWriter) -> Bool, rideTime: TimestampNanos?) {
        out.append(MatchResult.ticketPrefix)
        ticketId(out)
        out.append(MatchResult.userPrefix)
        JSONEscape.appendString(user, to: out)
        out.append(MatchResult.ticketTimePrefix)
        out.appendDecimalSeconds(ticketTime)
        out.append(MatchResult.ridePrefix)
        if !rideId(out) { out.append(MatchResult.null) }
        out.append(MatchResult.rideTimePrefix)
        if let rideTime {
            out.append(UInt8(ascii: "\""))
            out.appendDecimalSeconds(rideTime)
            out.append(UInt8(ascii: "\""))
        } else {
            out.append(MatchResult.null)
        }
        out.append(UInt8(ascii: "}"))
    }

    static let ticketPrefix = Array("{\"ticket_id\":".utf8)
    static let userPrefix = Array(",\"user_id\":".utf8)
    static let ticketTimePrefix = Array(",\"ticket_time\":\"".utf8)
    static let ridePrefix = Array("\",\"ride_id\":".utf8)
    static let rideTimePrefix = Array(",\"ride_time\":".utf8)
    static let null = Array("null".utf8)
}

/// A result as the matcher holds it, handed out for the length of a call: the ticket,
/// its user as results show it, and the ride it matched. Written as JSON from the ids'
/// bytes (through `MatchResult`'s one JSON writer), without a String
/// per result.
struct MatchRef {
    let ticket: TicketRideMatcher.Ticket
    let user: String
    let ride: TicketRideMatcher.Ride?

    func appendJSON(to out: ByteWriter) {
        MatchResult.appendJSON(to: out, ticketId: { w in ticket.id.withBytes { JSONEscape.appendString($0, to: w) } }, user: user,
                               ticketTime: ticket.time, rideId: { w in ride.map { r in r.id.withBytes { JSONEscape.appendString($0, to: w) } } != nil },
                               rideTime: ride?.time)
    }

    func result(final: Bool) -> MatchResult {
        MatchResult(ticketId: ticket.id.string, user: user, ticketTime: ticket.time, ticketPartition: ticket.partition,
                    ticketOffset: ticket.offset, rideId: ride?.id.string, rideTime: ride?.time, ridePartition: ride?.partition,
                    rideOffset: ride?.offset, final: final)
    }
}

/// Ride-to-ticket matching at the task that owns a set of users (an as-of join): each
/// ticket is matched to the same user's latest ride with `time_utc` at or before the
/// ticket's (ties: the ride later in its partition). Lateness is judged before a ride or
/// ticket gets here, against the stream time of the partition it was read from
/// (`StreamClock`): one more than `grace` behind is late and never added. Each topic has
/// its own *watermark* — the smallest stream time among the partitions of that topic that
/// send this task records (`SourceProgress`), set by the task. A ticket waits until the
/// rides' watermark has passed its time + grace — every ride it could match has arrived
/// unless it was late — then its match is final. Because lateness and finality depend on
/// each partition's own order only, the result does not depend on how the partitions'
/// reads interleave: a replay matches like the live run.
///
/// Memory is bounded by the users, not the log: per user, rides older than every ticket
/// that can still come are dropped, except the latest of them.
public final class TicketRideMatcher {
    public let spec: MatchSpec
    /// The rides' watermark: no on-time ride older than this minus grace can still come.
    public var ridesWatermark: TimestampNanos?
    /// The tickets' watermark: no on-time ticket older than this minus grace can still
    /// come, so rides no such ticket can match are dropped.
    public var ticketsWatermark: TimestampNanos?

    /// Plain bits (see `CompactID`): its id is owned by the `RideLists` holding it.
    /// 32 bytes, so that a user's four inline rides are two whole cache lines: the
    /// partition shares a word with the offset (`partition << 48 | offset`), which also
    /// orders rides by (time, partition, offset) with one comparison after the time.
    struct Ride: Equatable {
        var id: CompactID
        var time: TimestampNanos
        private(set) var position: UInt64

        static let offsetBits = 48
        /// Whether a ride at `partition`/`offset` can be kept: partitions below 2^15
        /// (`Limits.partitionsMax` is 1,024), offsets below 2^48 (281 trillion records
        /// in one partition).
        static func fits(partition: Int32, offset: Int64) -> Bool {
            partition >= 0 && partition < 1 << 15 && offset >= 0 && offset < 1 << offsetBits
        }

        init(id: CompactID, time: TimestampNanos, partition: Int32, offset: Int64) {
            precondition(Self.fits(partition: partition, offset: offset), "ride at partition \(partition) offset \(offset): the matcher keeps offsets below 2^48")
            self.id = id
            self.time = time
            position = UInt64(partition) << UInt64(Self.offsetBits) | UInt64(offset)
        }

        var partition: Int32 { Int32(truncatingIfNeeded: position >> UInt64(Self.offsetBits)) }
        var offset: Int64 { Int64(position & (1 << UInt64(Self.offsetBits) - 1)) }
    }

    /// Ordered by (time, partition, offset): the order tickets become final in.
    struct Ticket: Comparable {
        var id: CompactID  // owned by `pending`, freed when the ticket is emitted
        var user: Int32  // in `users`
        var time: TimestampNanos
        var partition: Int32
        var offset: Int64

        static func < (a: Ticket, b: Ticket) -> Bool { (a.time, a.partition, a.offset) < (b.time, b.partition, b.offset) }
        static func == (a: Ticket, b: Ticket) -> Bool { (a.time, a.partition, a.offset) == (b.time, b.partition, b.offset) }
    }

    // `let`: a stored `var` of class type is retained around every call on it.
    private let users = KeyIndex(capacity: 1024)
    /// By user id: the user as results show it (made once per user).
    private var userNames: [String] = []
    private let rides = RideLists()  // by user id
    /// Tickets waiting for the rides to catch up, by (time, partition, offset): those that
    /// become final come off the top. A heap, not a sorted array: re-keyed tickets arrive
    /// from several partitions a batch at a time, far from in order.
    private var pending = Heap<Ticket>()
    private var oldestPending: TimestampNanos? { pending.min?.time }
    private var rideCount = 0
    /// closeReady's scratch: the users of the tickets it emitted.
    private var readyUsers: [Int32] = []

    public init(spec: MatchSpec) { self.spec = spec }

    deinit {
        for t in pending.unordered { t.id.deallocate() }
    }

    public func addRide(user: String, id: String, time: TimestampNanos, partition: Int32 = 0, offset: Int64) {
        var u = user, i = id
        u.withUTF8 { u in i.withUTF8 { i in
            addRide(user: UnsafeRawBufferPointer(u), id: UnsafeRawBufferPointer(i), time: time, partition: partition, offset: offset)
        } }
    }

    public func addTicket(user: String, id: String, time: TimestampNanos, partition: Int32 = 0, offset: Int64) {
        var u = user, i = id
        u.withUTF8 { u in i.withUTF8 { i in
            addTicket(user: UnsafeRawBufferPointer(u), id: UnsafeRawBufferPointer(i), time: time, partition: partition, offset: offset)
        } }
    }

    /// Hints for records about to be added, so that their lookups do not wait for memory
    /// (240k users' state is far larger than the cache). A record's key is its user when
    /// its topic is keyed by the job's key; a wrong key only wastes a load. Two stages,
    /// records apart: `prefetchUser` starts loading the user's slot in the key index;
    /// `prefetchRides` (the slot has arrived) finds the user's id and starts loading the
    /// user's rides.
    @inline(__always)
    func prefetchUser(_ user: UnsafeRawBufferPointer) { users.prefetch(user) }

    /// Returns the user's id (nil: not known yet), which `addRide`/`addTicket` may be
    /// given for the same user instead of looking it up again.
    @inline(__always)
    func prefetchRides(_ user: UnsafeRawBufferPointer) -> Int32? {
        guard let u = users.find(user) else { return nil }
        rides.prefetch(Int(u))
        return u
    }

    @inline(__always)
    private func userId(_ user: UnsafeRawBufferPointer) -> Int {
        let u = Int(users.id(of: user))
        if u == rides.users {
            rides.addUser()
            userNames.append(String(decoding: user, as: UTF8.self))
        }
        return u
    }

    /// `addRide` with the user's and the ride's UTF-8 bytes as they lie in the record:
    /// the hot path. The ride must be on time (judged by the caller).
    /// `known`: the user's id if the caller found it (`prefetchRides` of these same bytes).
    public func addRide(user: UnsafeRawBufferPointer, known: Int32? = nil, id: UnsafeRawBufferPointer, time: TimestampNanos, partition: Int32, offset: Int64) {
        let u = known.map(Int.init) ?? userId(user)
        rideCount += 1
        // A user's rides come from one partition unless the rides topic is re-keyed;
        // (time, partition, offset) orders them all.
        rides.insert(Ride(id: CompactID(id), time: time, partition: partition, offset: offset), for: u)
        prune(u)
    }

    /// Adds an on-time ticket (judged by the caller) to the waiting list.
    public func addTicket(user: UnsafeRawBufferPointer, known: Int32? = nil, id: UnsafeRawBufferPointer, time: TimestampNanos, partition: Int32, offset: Int64) {
        pending.insert(Ticket(id: CompactID(id), user: known ?? Int32(userId(user)), time: time, partition: partition, offset: offset))
    }

    /// Emits every ticket whose match is final, ordered by (ticket time, partition,
    /// offset). `idleRides` (the opt-in idle timeout) finalises as if the rides had
    /// caught up.
    public func closeReady(idleRides: Bool = false, emit: (MatchResult) -> Void) {
        closeReadyRefs(idleRides: idleRides) { emit($0.result(final: true)) }
    }

    /// `closeReady`, handing out each result as the matcher holds it (borrowed for the
    /// call), so that the task writes it from bytes.
    func closeReadyRefs(idleRides: Bool = false, emit: (MatchRef) -> Void) {
        guard !pending.isEmpty else { return }
        let horizon: TimestampNanos
        if idleRides {
            horizon = TimestampNanos(.max)
        } else {
            guard let rst = ridesWatermark else { return }
            // Final once the rides' watermark has passed ticket time + grace: a ride at
            // exactly that distance is still on time, so equality must wait.
            horizon = rst - spec.graceNanos
        }
        guard let first = pending.min, idleRides || first.time < horizon else { return }
        // Each ticket's match is read before its user's rides are pruned for the tickets
        // still waiting; the users are pruned once the ready tickets are all out.
        readyUsers.removeAll(keepingCapacity: true)
        while let t = pending.min, idleRides || t.time < horizon {
            pending.removeMin()
            emit(ref(for: t))
            t.id.deallocate()
            readyUsers.append(t.user)
        }
        for user in readyUsers { prune(Int(user)) }
    }

    private func ref(for t: Ticket) -> MatchRef {
        MatchRef(ticket: t, user: userNames[Int(t.user)], ride: rides.latest(for: Int(t.user), atOrBefore: t.time))
    }

    /// Tickets still waiting, with their match so far, for queries.
    public func openResults() -> [MatchResult] { pending.unordered.sorted().map { ref(for: $0).result(final: false) } }

    /// Drops user `u`'s rides no future ticket can match: keeps those after the oldest
    /// ticket time still possible, and the latest one at or before it.
    @inline(__always)
    private func prune(_ u: Int) {
        guard let tst = ticketsWatermark else { return }
        var horizon = tst - spec.graceNanos
        if let oldest = oldestPending, oldest < horizon { horizon = oldest }
        rideCount -= rides.prune(u, horizon: horizon)
    }

    public var stateSize: (rides: Int, pendingTickets: Int) { (rideCount, pending.count) }

    /// Checkpoint format 2: watermarks, then every user in id order (first appearance,
    /// so a decoded matcher numbers its users as this one does and encodes to the same
    /// bytes) with its rides, then the waiting tickets.
    func encode(into w: ByteWriter) {
        w.put(ridesWatermark)
        w.put(ticketsWatermark)
        w.put(users.count)
        for u in 0..<users.count {
            w.put(userNames[u])
            w.put(rides.count(of: u))
            rides.forEach(of: u) { r in
                r.id.withBytes { w.put($0) }
                w.put(r.time.rawValue)
                w.put(Int64(r.partition))
                w.put(r.offset)
            }
        }
        w.put(pending.count)
        for t in pending.unordered.sorted() {
            t.id.withBytes { w.put($0) }
            w.put(userNames[Int(t.user)])
            w.put(t.time.rawValue)
            w.put(Int64(t.partition))
            w.put(t.offset)
        }
    }

    func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        ridesWatermark = try r.timestamp()
        ticketsWatermark = try r.timestamp()
        try decodeUsersAndTickets(&r, legacyPartition: nil)
    }

    /// What format 1 (one task per partition, no re-keying) kept besides users and
    /// tickets: the task's two stream times and late counts, which now live in its clocks.
    struct LegacyClocks {
        var ridesStreamTime: TimestampNanos?
        var ticketsStreamTime: TimestampNanos?
        var lateRides: Int64
        var lateTickets: Int64
    }

    /// Decodes checkpoint format 1, where every ride and ticket came from `partition`.
    func decodeLegacy(_ r: inout StateReader, partition: Int32) throws(StateReader.Failure) -> LegacyClocks {
        let c = LegacyClocks(ridesStreamTime: try r.timestamp(), ticketsStreamTime: try r.timestamp(),
                             lateRides: try r.int64(), lateTickets: try r.int64())
        ridesWatermark = c.ridesStreamTime
        ticketsWatermark = c.ticketsStreamTime
        try decodeUsersAndTickets(&r, legacyPartition: partition)
        return c
    }

    private func decodeUsersAndTickets(_ r: inout StateReader, legacyPartition: Int32?) throws(StateReader.Failure) {
        func partition(_ r: inout StateReader) throws(StateReader.Failure) -> Int32 {
            if let legacyPartition { return legacyPartition }
            return Int32(truncatingIfNeeded: try r.int64())
        }
        users.removeAll()
        userNames = []
        rides.removeAll()
        rideCount = 0
        for t in pending.unordered { t.id.deallocate() }
        pending = Heap()
        for _ in 0..<(try r.count()) {
            let user = try r.string()
            var list: [Ride] = []
            // A failure part way leaves the ids read so far to `list`, which frees them.
            var handedOver = false
            defer { if !handedOver { for ride in list { ride.id.deallocate() } } }
            for _ in 0..<(try r.count()) {
                let id = try r.stringBytes()
                let time = try r.int64(), p = try partition(&r), offset = try r.int64()
                guard Ride.fits(partition: p, offset: offset) else { throw StateReader.Failure(description: "ride at partition \(p) offset \(offset) out of range") }
                list.append(Ride(id: CompactID(id), time: TimestampNanos(time), partition: p, offset: offset))
            }
            rideCount += list.count
            guard Int(users.id(of: user)) == rides.users else { throw StateReader.Failure(description: "user '\(user)' twice") }
            rides.set(list, for: rides.addUser())
            handedOver = true
            userNames.append(user)
        }
        var waiting: [Ticket] = []
        var handedOver = false
        defer { if !handedOver { for t in waiting { t.id.deallocate() } } }
        for _ in 0..<(try r.count()) {
            let id = try r.stringBytes()
            let user = try r.string()
            let u = Int(users.id(of: user))
            if u == rides.users {  // older checkpoints listed only users with rides
                rides.addUser()
                userNames.append(user)
            }
            let time = try r.int64(), p = try partition(&r), offset = try r.int64()
            waiting.append(Ticket(id: CompactID(id), user: Int32(u), time: TimestampNanos(time), partition: p, offset: offset))
        }
        pending = Heap(waiting)
        handedOver = true
    }
}
