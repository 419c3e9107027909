import Testing
@testable import KappaCore
@testable import KappaStreams
import KappaTesting

struct MatchEvent {
    var user: String
    var id: String
    var time: Int64
    var offset: Int64  // in its own topic
}

enum MatchData {
    static let users = ["u1", "u2", "u3", "u4", "u5"]

    /// Rides and tickets over three days, each topic in its own arrival order (bounded
    /// disorder < `bound`), offsets dense per topic. Rides share timestamps (same user,
    /// same time: the later offset must win); many tickets sit exactly on a ride's time;
    /// "ghost" has tickets and no ride; "newbie" files tickets before the first ride.
    static func generate(rides rideCount: Int, tickets ticketCount: Int, bound: Int64, lateRides: Int = 0, lateTickets: Int = 0,
                         lateDelay: Int64 = 0, rng: inout SeededRandom) -> (rides: [MatchEvent], tickets: [MatchEvent]) {
        var rides: [(String, Int64)] = []
        for _ in 0..<rideCount {
            let u = users[rng.int(0...(users.count - 1))]
            if rng.chance(6), let same = rides.last(where: { $0.0 == u }) {
                rides.append((u, same.1))
            } else {
                rides.append((u, StreamFx.base + Int64(rng.int(0...(3 * 1440 - 1))) * StreamFx.minute + (rng.chance(50) ? Int64(rng.int(0...59)) * StreamFx.second : 0)))
            }
        }
        let newbieFirstRide = StreamFx.base + 2 * StreamFx.day
        rides.append(("newbie", newbieFirstRide))
        rides.append(("newbie", newbieFirstRide + StreamFx.hour))
        var tickets: [(String, Int64)] = []
        for i in 0..<ticketCount {
            switch rng.int(0...99) {
            case 0..<35:
                let r = rides[rng.int(0...(rides.count - 1))]
                tickets.append((r.0, r.1))  // exactly at a ride's time
            case 35..<40:
                tickets.append(("ghost", StreamFx.base + Int64(rng.int(0...(3 * 1440 - 1))) * StreamFx.minute))
            case 40..<45:
                tickets.append(("newbie", newbieFirstRide - Int64(rng.int(1...600)) * StreamFx.minute + (i % 2 == 0 ? 0 : StreamFx.hour)))
            case 45..<50:
                tickets.append((users[rng.int(0...(users.count - 1))], StreamFx.base - Int64(rng.int(0...100)) * StreamFx.minute))  // before all rides
            default:
                tickets.append((users[rng.int(0...(users.count - 1))],
                                StreamFx.base + Int64(rng.int(0...(3 * 1440 - 1))) * StreamFx.minute + Int64(rng.int(0...59)) * StreamFx.second))
            }
        }
        func arrange(_ raw: [(String, Int64)], prefix: String, late: Int) -> [MatchEvent] {
            var times = raw.map(\.1)
            for _ in 0..<late { times[rng.int(0...(times.count - 1))] += lateDelay }
            return StreamFx.arrivalOrder(times, bound: bound, rng: &rng).enumerated().map { off, i in
                // A third of the ids are longer than a CompactID holds inline.
                MatchEvent(user: raw[i].0, id: i % 3 == 0 ? "\(prefix)-with-a-longer-identifier-\(i)" : "\(prefix)\(i)", time: raw[i].1, offset: Int64(off))
            }
        }
        return (arrange(rides, prefix: "r", late: lateRides), arrange(tickets, prefix: "t", late: lateTickets))
    }

    /// Ids late in their own topic: more than grace behind that topic's stream time.
    static func late(_ events: [MatchEvent], grace: Int64) -> Set<String> {
        var st: Int64? = nil
        var out = Set<String>()
        for e in events {
            let now = max(st ?? e.time, e.time)
            st = now
            if e.time < now - grace { out.insert(e.id) }
        }
        return out
    }

    /// Per ticket: the same user's ride with the greatest (time, offset) among rides at
    /// or before the ticket time, or none.
    static func oracle(rides: [MatchEvent], tickets: [MatchEvent]) -> [String: MatchResult] {
        var byUser: [String: [MatchEvent]] = [:]
        for r in rides { byUser[r.user, default: []].append(r) }
        var out: [String: MatchResult] = [:]
        for t in tickets {
            let best = (byUser[t.user] ?? []).filter { $0.time <= t.time }.max { ($0.time, $0.offset) < ($1.time, $1.offset) }
            out[t.id] = MatchResult(ticketId: t.id, user: t.user, ticketTime: TimestampNanos(t.time), ticketPartition: 0, ticketOffset: t.offset, rideId: best?.id,
                                    rideTime: best.map { TimestampNanos($0.time) }, ridePartition: best.map { _ in 0 }, rideOffset: best?.offset, final: true)
        }
        return out
    }

    enum Interleaving: CustomStringConvertible, CaseIterable, Sendable {
        case ridesFirst, ticketsFirst, random, byTime
        var description: String {
            switch self {
            case .ridesFirst: "rides first"
            case .ticketsFirst: "tickets first"
            case .random: "random"
            case .byTime: "by time"
            }
        }
    }

    struct Run {
        var emitted: [MatchResult] = []
        var rideOnTime: [String: Bool] = [:]
        var ticketOnTime: [String: Bool] = [:]
    }

    /// Feeds both topics, each in its own order, interleaved as asked, closing after
    /// every batch; then a far-future sentinel ride finalises every ticket.
    static func run(_ m: DirectMatcher, rides: [MatchEvent], tickets: [MatchEvent], _ how: Interleaving, rng: inout SeededRandom) -> Run {
        var run = Run()
        var ri = 0, ti = 0
        func feedRides(_ n: Int) {
            for r in rides[ri..<min(ri + n, rides.count)] { run.rideOnTime[r.id] = m.addRide(user: r.user, id: r.id, time: r.time, offset: r.offset) }
            ri = min(ri + n, rides.count)
            m.closeReady { run.emitted.append($0) }
        }
        func feedTickets(_ n: Int) {
            for t in tickets[ti..<min(ti + n, tickets.count)] { run.ticketOnTime[t.id] = m.addTicket(user: t.user, id: t.id, time: t.time, offset: t.offset) }
            ti = min(ti + n, tickets.count)
            m.closeReady { run.emitted.append($0) }
        }
        switch how {
        case .ridesFirst:
            while ri < rides.count { feedRides(rng.int(1...50)) }
            while ti < tickets.count { feedTickets(rng.int(1...50)) }
        case .ticketsFirst:
            while ti < tickets.count { feedTickets(rng.int(1...50)) }
            while ri < rides.count { feedRides(rng.int(1...50)) }
        case .random:
            while ri < rides.count || ti < tickets.count {
                if ti >= tickets.count || (ri < rides.count && rng.chance(50)) { feedRides(rng.int(1...20)) } else { feedTickets(rng.int(1...20)) }
            }
        case .byTime:
            while ri < rides.count || ti < tickets.count {
                if ti >= tickets.count || (ri < rides.count && rides[ri].time <= tickets[ti].time) { feedRides(1) } else { feedTickets(1) }
            }
        }
        _ = m.addRide(user: StreamFx.sentinelKey, id: "sentinel", time: StreamFx.farFuture, offset: 1 << 40)
        m.closeReady { run.emitted.append($0) }
        return run
    }

    static func check(_ emitted: [MatchResult], against oracle: [String: MatchResult], context: String) {
        var problems: [String] = []
        var got: [String: MatchResult] = [:]
        for r in emitted {
            if got[r.ticketId] != nil { problems.append("\(r.ticketId) emitted twice") }
            got[r.ticketId] = r
        }
        for id in Set(oracle.keys).subtracting(got.keys).sorted() { problems.append("\(id) never emitted") }
        for id in Set(got.keys).subtracting(oracle.keys).sorted() { problems.append("\(id) emitted, not in the oracle") }
        for (id, o) in oracle {
            guard let g = got[id], g != o else { continue }
            problems.append("\(id) (\(o.user) @\(o.ticketTime)): got ride \(g.rideId ?? "nil")@\(g.rideTime.map { "\($0)" } ?? "-") want \(o.rideId ?? "nil")@\(o.rideTime.map { "\($0)" } ?? "-")")
        }
        #expect(problems.isEmpty, "\(context): \(problems.count) problems: \(problems.sorted().prefix(5))")
    }
}

/// Ride-to-ticket matching (SPEC section 5.3), an as-of join, against a batch
/// computation; the result must not depend on how the two topics interleave.
@Suite struct StreamMatchOracleTests {
    static let spec = MatchSpec(key: "user_id", time: "time_utc", tickets: "tickets", rides: "rides", graceNanos: 10 * StreamFx.minute)

    @Test(arguments: [UInt64(1), 2, 3])
    func matchesOracleInEveryInterleaving(_ seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let (rides, tickets) = MatchData.generate(rides: 1500, tickets: 800, bound: Self.spec.graceNanos, rng: &rng)
        #expect(MatchData.late(rides, grace: Self.spec.graceNanos).isEmpty && MatchData.late(tickets, grace: Self.spec.graceNanos).isEmpty)
        let oracle = MatchData.oracle(rides: rides, tickets: tickets)
        // The data must exercise ties and unmatched tickets.
        #expect(oracle.values.filter { $0.rideId == nil }.count > 30, "seed \(seed)")
        #expect(oracle.values.filter { $0.rideTime == $0.ticketTime }.count > 100, "seed \(seed)")
        let tiedRides = Dictionary(grouping: rides, by: { "\($0.user) \($0.time)" }).values.filter { $0.count > 1 }.count
        #expect(tiedRides > 20, "seed \(seed)")

        var reference: [MatchResult]? = nil
        for how in MatchData.Interleaving.allCases {
            let m = DirectMatcher(spec: Self.spec)
            let run = MatchData.run(m, rides: rides, tickets: tickets, how, rng: &rng)
            let context = "seed \(seed) \(how)"
            #expect(run.rideOnTime.values.allSatisfy { $0 } && run.ticketOnTime.values.allSatisfy { $0 }, "\(context)")
            #expect(m.lateRides == 0 && m.lateTickets == 0, "\(context)")
            MatchData.check(run.emitted, against: oracle, context: context)
            #expect(m.openResults().isEmpty && m.stateSize.pendingTickets == 0, "\(context)")
            // Bounded state: a few rides per user survive, not the log.
            #expect(m.stateSize.rides <= 60, "\(context): \(m.stateSize.rides) of \(rides.count) rides kept")
            let sorted = run.emitted.sorted { $0.ticketOffset < $1.ticketOffset }
            if let reference { #expect(sorted == reference, "\(context): differs from \(MatchData.Interleaving.allCases[0])") } else { reference = sorted }
        }
    }

    /// Hand-made: ticket before any ride → unmatched; at a ride's exact time → that ride;
    /// two rides at the same time → the later in the log; a ride after the ticket → not it.
    @Test func asOfRules() {
        let m = DirectMatcher(spec: Self.spec)
        let b = StreamFx.base, mi = StreamFx.minute
        var out: [MatchResult] = []
        #expect(m.addTicket(user: "a", id: "t0", time: b, offset: 0))  // before any ride
        #expect(m.addRide(user: "a", id: "r0", time: b + mi, offset: 0))
        #expect(m.addRide(user: "a", id: "r1", time: b + 5 * mi, offset: 1))
        #expect(m.addRide(user: "a", id: "r2", time: b + 5 * mi, offset: 2))  // tie: later offset
        #expect(m.addRide(user: "b", id: "rb", time: b + 4 * mi, offset: 3))
        #expect(m.addTicket(user: "a", id: "t1", time: b + 5 * mi, offset: 1))
        #expect(m.addTicket(user: "a", id: "t2", time: b + 5 * mi - 1, offset: 2))
        #expect(m.addRide(user: "a", id: "r3", time: b + 6 * mi, offset: 4))
        m.closeReady { out.append($0) }
        #expect(out.isEmpty, "nothing final before the rides reach ticket time + grace")
        let open = Dictionary(uniqueKeysWithValues: m.openResults().map { ($0.ticketId, $0) })
        #expect(open["t1"]?.rideId == "r2" && open["t1"]?.final == false)
        #expect(m.addRide(user: "c", id: "rc", time: b + 16 * mi, offset: 5))
        m.closeReady { out.append($0) }
        let got = Dictionary(uniqueKeysWithValues: out.map { ($0.ticketId, $0) })
        #expect(got.count == 3)
        #expect(got["t0"]?.rideId == nil && got["t0"]?.rideTime == nil)
        #expect(got["t1"]?.rideId == "r2" && got["t1"]?.rideTime == TimestampNanos(b + 5 * mi) && got["t1"]?.rideOffset == 2)
        #expect(got["t2"]?.rideId == "r0")
        #expect(out.map(\.ticketId) == ["t0", "t2", "t1"], "ordered by ticket time")
        if let t0 = got["t0"] {
            #expect(String(decoding: t0.json(), as: UTF8.self)
                    == "{\"ticket_id\":\"t0\",\"user_id\":\"a\",\"ticket_time\":\"1457740800\",\"ride_id\":null,\"ride_time\":null}")
        }
        if let t1 = got["t1"] {
            #expect(String(decoding: t1.json(), as: UTF8.self)
                    == "{\"ticket_id\":\"t1\",\"user_id\":\"a\",\"ticket_time\":\"1457741100\",\"ride_id\":\"r2\",\"ride_time\":\"1457741100\"}")
        }
    }

    /// A ride exactly `grace` behind the rides' stream time is on time (addRide returns
    /// true), and a ticket at that same time must see it. Whether it does must not depend
    /// on whether the ticket was read (and closed) before or after that ride.
    @Test(arguments: [10 * StreamFx.minute, 0])
    func rideAtTheGraceBoundaryIsNotMissed(_ grace: Int64) {
        let spec = MatchSpec(key: "user_id", time: "time_utc", tickets: "tickets", rides: "rides", graceNanos: grace)
        let b = StreamFx.base, T = b + StreamFx.hour
        // The rides topic in log order: an old ride of u, another user's ride at T + grace,
        // then u's ride at T (exactly grace behind: on time).
        let rides = [MatchEvent(user: "u", id: "old", time: b, offset: 0),
                     MatchEvent(user: "v", id: "other", time: T + grace, offset: 1),
                     MatchEvent(user: "u", id: "atT", time: T, offset: 2)]
        let ticket = MatchEvent(user: "u", id: "t", time: T, offset: 0)
        var results: [String: MatchResult] = [:]
        for ticketAfter in 0...3 {  // the ticket is read after this many rides
            let m = DirectMatcher(spec: spec)
            var out: [MatchResult] = []
            var accepted: [Bool] = []
            for (i, r) in rides.enumerated() {
                if i == ticketAfter {
                    _ = m.addTicket(user: ticket.user, id: ticket.id, time: ticket.time, offset: ticket.offset)
                    m.closeReady { out.append($0) }
                }
                accepted.append(m.addRide(user: r.user, id: r.id, time: r.time, offset: r.offset))
                m.closeReady { out.append($0) }
            }
            if ticketAfter == 3 {
                _ = m.addTicket(user: ticket.user, id: ticket.id, time: ticket.time, offset: ticket.offset)
                m.closeReady { out.append($0) }
            }
            _ = m.addRide(user: StreamFx.sentinelKey, id: "s", time: StreamFx.farFuture, offset: 3)
            m.closeReady { out.append($0) }
            #expect(accepted == [true, true, true], "grace \(grace): the ride at T is on time (not more than grace behind)")
            #expect(out.count == 1)
            results["ticket after \(ticketAfter) rides"] = out.first
        }
        let byRide = Dictionary(grouping: results, by: { $0.value.rideId ?? "nil" }).mapValues { $0.map(\.key).sorted() }
        #expect(byRide.count == 1, "grace \(grace): the match depends on the interleaving: \(byRide)")
        #expect(results.values.allSatisfy { $0.rideId == "atT" }, "grace \(grace): \(byRide)")
    }

    /// Late rides and tickets (more than grace behind their own topic) are refused and
    /// counted; matches equal the oracle over the rest, in every interleaving.
    @Test(arguments: [UInt64(7), 8])
    func lateEventsGoNowhere(_ seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let (rides, tickets) = MatchData.generate(rides: 1200, tickets: 700, bound: Self.spec.graceNanos, lateRides: 80, lateTickets: 40,
                                                  lateDelay: Self.spec.graceNanos + 3 * StreamFx.hour, rng: &rng)
        let lateR = MatchData.late(rides, grace: Self.spec.graceNanos), lateT = MatchData.late(tickets, grace: Self.spec.graceNanos)
        #expect(lateR.count > 20 && lateT.count > 10, "seed \(seed): \(lateR.count) late rides, \(lateT.count) late tickets")
        let oracle = MatchData.oracle(rides: rides.filter { !lateR.contains($0.id) }, tickets: tickets.filter { !lateT.contains($0.id) })
        for how in MatchData.Interleaving.allCases {
            let m = DirectMatcher(spec: Self.spec)
            let run = MatchData.run(m, rides: rides, tickets: tickets, how, rng: &rng)
            let context = "seed \(seed) \(how)"
            #expect(run.rideOnTime.filter { $0.value == lateR.contains($0.key) }.isEmpty, "\(context): rides misjudged")
            #expect(run.ticketOnTime.filter { $0.value == lateT.contains($0.key) }.isEmpty, "\(context): tickets misjudged")
            #expect(m.lateRides == Int64(lateR.count) && m.lateTickets == Int64(lateT.count), "\(context)")
            MatchData.check(run.emitted, against: oracle, context: context)
        }
    }

    /// Replay: the same input in the same interleaving gives the same output sequence.
    @Test func deterministicReplay() {
        let seed: UInt64 = 5
        var rng = SeededRandom(seed: seed)
        let (rides, tickets) = MatchData.generate(rides: 1000, tickets: 500, bound: Self.spec.graceNanos, rng: &rng)
        var a = rng, b = rng
        let x = MatchData.run(DirectMatcher(spec: Self.spec), rides: rides, tickets: tickets, .random, rng: &a)
        let y = MatchData.run(DirectMatcher(spec: Self.spec), rides: rides, tickets: tickets, .random, rng: &b)
        #expect(x.emitted == y.emitted, "seed \(seed)")
    }
}
