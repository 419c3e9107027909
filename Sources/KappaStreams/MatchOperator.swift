import KappaCore
import KappaJSON

/// A ticket matched (or not) to the user's latest ride at or before it.
public struct MatchResult: Equatable, Sendable {
    public var ticketId: String
    public var user: String
    public var ticketTime: Int64
    public var ticketOffset: Int64
    public var rideId: String?
    public var rideTime: Int64?
    public var rideOffset: Int64?
    public var final: Bool

    /// `{"ticket_id","user_id","ticket_time","ride_id","ride_time"}` (ride fields null
    /// when unmatched).
    public func json() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160)
        out.append(contentsOf: "{\"ticket_id\":".utf8)
        JSONEscape.appendString(ticketId, to: &out)
        out.append(contentsOf: ",\"user_id\":".utf8)
        JSONEscape.appendString(user, to: &out)
        out.append(contentsOf: ",\"ticket_time\":\"".utf8)
        TimestampNanos(ticketTime).appendDecimalSeconds(to: &out)
        out.append(contentsOf: "\",\"ride_id\":".utf8)
        if let rideId { JSONEscape.appendString(rideId, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: ",\"ride_time\":".utf8)
        if let rideTime {
            out.append(UInt8(ascii: "\""))
            TimestampNanos(rideTime).appendDecimalSeconds(to: &out)
            out.append(UInt8(ascii: "\""))
        } else {
            out.append(contentsOf: "null".utf8)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// Ride-to-ticket matching for one task (an as-of join of two co-partitioned topics):
/// each ticket is matched to the same user's latest ride with `time_utc` at or before the
/// ticket's (ties: the ride later in the log). Each topic has its own stream time. A
/// ticket waits until the rides' stream time has passed its time + grace — every ride it
/// could match has arrived unless it was late — then its match is final. A ride (or
/// ticket) more than `grace` behind its own topic's stream time is late and ignored.
/// Because lateness and finality depend on each topic's own order only, the result does
/// not depend on how the two topics' reads interleave: a replay matches like the live run.
///
/// Memory is bounded by the users, not the log: per user, rides older than every ticket
/// that can still come are dropped, except the latest of them.
public final class TicketRideMatcher {
    public let spec: MatchSpec
    public private(set) var ridesStreamTime: Int64?
    public private(set) var ticketsStreamTime: Int64?
    public private(set) var lateRides: Int64 = 0
    public private(set) var lateTickets: Int64 = 0

    struct Ride: Equatable {
        var id: String
        var time: Int64
        var offset: Int64
    }

    struct Ticket {
        var id: String
        var user: Int32  // in `users`
        var time: Int64
        var offset: Int64
    }

    private var users = KeyIndex(capacity: 1024)
    private var rides: [[Ride]] = []  // by user id, ascending by (time, offset)
    /// Tickets waiting for the rides to catch up, ascending by (time, offset): those
    /// that become final are a prefix. Tickets arrive nearly in order (disorder is
    /// bounded by grace), so keeping the order costs an insertion near the end.
    private var pending: [Ticket] = []
    private var oldestPending: Int64? { pending.first?.time }
    private var rideCount = 0

    public init(spec: MatchSpec) { self.spec = spec }

    public func addRide(user: String, id: String, time: Int64, offset: Int64) -> Bool {
        var u = user
        return u.withUTF8 { addRide(user: UnsafeRawBufferPointer($0), id: id, time: time, offset: offset) }
    }

    public func addTicket(user: String, id: String, time: Int64, offset: Int64) -> Bool {
        var u = user
        return u.withUTF8 { addTicket(user: UnsafeRawBufferPointer($0), id: id, time: time, offset: offset) }
    }

    @inline(__always)
    private func userId(_ user: UnsafeRawBufferPointer) -> Int {
        let u = Int(users.id(of: user))
        if u == rides.count { rides.append([]) }
        return u
    }

    /// Advances a topic's stream time; false (counted) when `time` is more than grace behind it.
    @inline(__always)
    private func onTime(_ time: Int64, streamTime: inout Int64?, late: inout Int64) -> Bool {
        let st = max(streamTime ?? time, time)
        streamTime = st
        guard time >= st - spec.graceNanos else {
            late += 1
            return false
        }
        return true
    }

    /// `addRide` with the user's UTF-8 bytes as they lie in the record: the hot path.
    public func addRide(user: UnsafeRawBufferPointer, id: String, time: Int64, offset: Int64) -> Bool {
        guard onTime(time, streamTime: &ridesStreamTime, late: &lateRides) else { return false }
        let u = userId(user)
        rideCount += 1
        // In place: no copy of the user's list.
        var i = rides[u].count
        while i > 0 && (rides[u][i - 1].time, rides[u][i - 1].offset) > (time, offset) { i -= 1 }
        rides[u].insert(Ride(id: id, time: time, offset: offset), at: i)
        prune(&rides[u])
        return true
    }

    public func addTicket(user: UnsafeRawBufferPointer, id: String, time: Int64, offset: Int64) -> Bool {
        guard onTime(time, streamTime: &ticketsStreamTime, late: &lateTickets) else { return false }
        var i = pending.count
        while i > 0 && (pending[i - 1].time, pending[i - 1].offset) > (time, offset) { i -= 1 }
        pending.insert(Ticket(id: id, user: Int32(userId(user)), time: time, offset: offset), at: i)
        return true
    }

    /// Emits every ticket whose match is final, ordered by (ticket time, offset).
    /// `idleRides` (the opt-in idle timeout) finalises as if the rides had caught up.
    public func closeReady(idleRides: Bool = false, emit: (MatchResult) -> Void) {
        guard !pending.isEmpty else { return }
        let horizon: Int64
        if idleRides {
            horizon = .max
        } else {
            guard let rst = ridesStreamTime else { return }
            // Final once the rides' stream time has passed ticket time + grace: a ride at
            // exactly that distance is still on time, so equality must wait.
            horizon = rst - spec.graceNanos
        }
        var ready = 0
        while ready < pending.count && (horizon == .max || pending[ready].time < horizon) { ready += 1 }
        guard ready > 0 else { return }
        for t in pending[..<ready] { emit(result(for: t, final: true)) }
        let users = Set(pending[..<ready].map(\.user))
        pending.removeFirst(ready)
        for user in users { prune(&rides[Int(user)]) }
    }

    func result(for t: Ticket, final: Bool) -> MatchResult {
        let ride = rides[Int(t.user)].last(where: { $0.time <= t.time })
        return MatchResult(ticketId: t.id, user: users.keys[Int(t.user)], ticketTime: t.time, ticketOffset: t.offset, rideId: ride?.id,
                           rideTime: ride?.time, rideOffset: ride?.offset, final: final)
    }

    /// Tickets still waiting, with their match so far, for queries.
    public func openResults() -> [MatchResult] { pending.map { result(for: $0, final: false) } }

    /// Drops rides no future ticket can match: keep those after the oldest ticket time
    /// still possible, and the latest one at or before it.
    private func prune(_ list: inout [Ride]) {
        guard let tst = ticketsStreamTime else { return }
        var horizon = tst - spec.graceNanos
        if let oldest = oldestPending, oldest < horizon { horizon = oldest }
        guard list.count > 1, list[1].time <= horizon else { return }  // nothing to drop
        var lastOld = -1
        for (i, r) in list.enumerated() where r.time <= horizon { lastOld = i }
        if lastOld > 0 {
            list.removeFirst(lastOld)
            rideCount -= lastOld
        }
    }

    public var stateSize: (rides: Int, pendingTickets: Int) { (rideCount, pending.count) }

    func encode(into w: ByteWriter) {
        w.put(ridesStreamTime.map { TimestampNanos($0) })
        w.put(ticketsStreamTime.map { TimestampNanos($0) })
        w.put(lateRides)
        w.put(lateTickets)
        // Every user in id order (first appearance), so a decoded matcher numbers its
        // users as this one does and encodes to the same bytes; no sorting.
        w.put(users.count)
        for u in 0..<users.count {
            w.put(users.keys[u])
            w.put(rides[u].count)
            for r in rides[u] {
                w.put(r.id)
                w.put(r.time)
                w.put(r.offset)
            }
        }
        w.put(pending.count)
        for t in pending {
            w.put(t.id)
            w.put(users.keys[Int(t.user)])
            w.put(t.time)
            w.put(t.offset)
        }
    }

    func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        ridesStreamTime = try r.timestamp()?.rawValue
        ticketsStreamTime = try r.timestamp()?.rawValue
        lateRides = try r.int64()
        lateTickets = try r.int64()
        users = KeyIndex(capacity: 1024)
        rides = []
        rideCount = 0
        for _ in 0..<(try r.count()) {
            let user = try r.string()
            var list: [Ride] = []
            for _ in 0..<(try r.count()) { list.append(Ride(id: try r.string(), time: try r.int64(), offset: try r.int64())) }
            rideCount += list.count
            guard Int(users.id(of: user)) == rides.count else { throw StateReader.Failure(description: "user '\(user)' twice") }
            rides.append(list)
        }
        pending = []
        for _ in 0..<(try r.count()) {
            let id = try r.string()
            let user = try r.string()
            let u = Int(users.id(of: user))
            if u == rides.count { rides.append([]) }  // older checkpoints listed only users with rides
            pending.append(Ticket(id: id, user: Int32(u), time: try r.int64(), offset: try r.int64()))
        }
        pending.sort { ($0.time, $0.offset) < ($1.time, $1.offset) }
    }
}
