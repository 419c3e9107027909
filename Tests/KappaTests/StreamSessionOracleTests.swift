import Testing
@testable import KappaCore
@testable import KappaStreams
import KappaTesting

struct SessionEvent {
    var id: Int
    var key: String
    var time: Int64
    var type: String?
    var offset: Int64
}

/// A session as the oracle sees it.
struct OracleSession: Equatable, CustomStringConvertible {
    var start: Int64
    var end: Int64
    var events: Int64
    var types: [String: Int64]
    var description: String { "[\(TimestampNanos(start))..\(TimestampNanos(end)) n=\(events) \(types)]" }

    init(start: Int64, end: Int64, events: Int64, types: [String: Int64]) {
        self.start = start
        self.end = end
        self.events = events
        self.types = types
    }

    init(_ s: Session) {
        start = s.start.rawValue
        end = s.end.rawValue
        events = s.events
        types = Dictionary(s.types, uniquingKeysWith: +)
    }
}

enum SessionData {
    static let users = ["u1", "u2", "u3", "u4", "u5", "u6"]
    static let types = ["login", "button_pressed", "screen_view", "app_error"]

    /// Bursts of activity per user: spacings inside a burst of 0 (equal timestamps) to a
    /// bit more than the gap (so exactly-gap and just-over-gap spacings occur), long
    /// pauses between bursts; whole minutes mostly, nanoseconds sometimes.
    static func generate(count: Int, gap: Int64, rng: inout SeededRandom) -> [(String, Int64, String?)] {
        var out: [(String, Int64, String?)] = []
        var clocks = Dictionary(uniqueKeysWithValues: users.map { ($0, StreamFx.base + Int64($0.utf8.last!) * StreamFx.minute) })
        while out.count < count {
            let u = users[rng.int(0...(users.count - 1))]
            var t = clocks[u]!
            for _ in 0..<rng.int(1...15) {
                let type: String? = rng.chance(5) ? nil : types[rng.int(0...(types.count - 1))]
                out.append((u, t, type))
                switch rng.int(0...99) {
                case 0..<10: break  // equal timestamp
                case 10..<20: t += gap  // exactly the gap: same session
                case 20..<25: t += gap + 1  // just over: a new session
                case 25..<45: t += gap - StreamFx.minute * Int64(rng.int(0...6))
                case 45..<60: t += Int64.random(in: 1...(gap + 5 * StreamFx.minute), using: &rng)
                default: t += StreamFx.minute * Int64(rng.int(0...12))
                }
            }
            clocks[u] = t + gap + Int64(rng.int(1...240)) * StreamFx.minute
        }
        return out
    }

    static func arrange(_ raw: [(String, Int64, String?)], bound: Int64, extraDelay: [Int: Int64] = [:], rng: inout SeededRandom) -> [SessionEvent] {
        let times = raw.enumerated().map { $0.element.1 + (extraDelay[$0.offset] ?? 0) }
        return StreamFx.arrivalOrder(times, bound: bound, rng: &rng).enumerated().map { id, i in
            SessionEvent(id: id, key: raw[i].0, time: raw[i].1, type: raw[i].2, offset: Int64(id))
        }
    }

    /// Ids of events the spec calls late: more than grace behind the stream time.
    static func late(_ events: [SessionEvent], grace: Int64) -> Set<Int> {
        var st: Int64? = nil
        var out = Set<Int>()
        for e in events {
            let now = max(st ?? e.time, e.time)
            st = now
            if e.time < now - grace { out.insert(e.id) }
        }
        return out
    }

    /// Batch sessionisation: per user, sort by time, cut where consecutive events are
    /// more than `gap` apart.
    static func oracle(_ events: [SessionEvent], gap: Int64) -> [String: [OracleSession]] {
        var byUser: [String: [SessionEvent]] = [:]
        for e in events { byUser[e.key, default: []].append(e) }
        var out: [String: [OracleSession]] = [:]
        for (u, list) in byUser {
            var sessions: [OracleSession] = []
            for e in list.sorted(by: { $0.time < $1.time }) {
                if var last = sessions.last, e.time - last.end <= gap {
                    last.end = e.time
                    last.events += 1
                    if let t = e.type { last.types[t, default: 0] += 1 }
                    sessions[sessions.count - 1] = last
                } else {
                    sessions.append(OracleSession(start: e.time, end: e.time, events: 1, types: e.type.map { [$0: 1] } ?? [:]))
                }
            }
            out[u] = sessions
        }
        return out
    }

    struct Run {
        var emitted: [(String, Session)] = []
        var onTime: [Int: Bool] = [:]
        var bridges = 0
        /// Emitted too early: stream time had not passed end + gap + grace.
        var early: [String] = []
    }

    /// Feeds `events` in batches, closing after each, then a far-future sentinel.
    static func run(_ s: DirectSessions, _ events: [SessionEvent], batches: [Range<Int>]) -> Run {
        var run = Run()
        for b in batches {
            for e in events[b] {
                let before = s.openSessions
                run.onTime[e.id] = s.add(key: e.key, time: e.time, type: e.type, partition: 0, offset: e.offset)
                if s.openSessions == before - 1 { run.bridges += 1 }
            }
            close(s, into: &run)
        }
        _ = s.add(key: StreamFx.sentinelKey, time: StreamFx.farFuture, type: "end", partition: 0, offset: 1 << 40)
        close(s, into: &run)
        return run
    }

    static func close(_ s: DirectSessions, into run: inout Run) {
        let st = s.streamTime!
        var emitted: [(String, Session)] = []
        s.closeReady { emitted.append(($0, $1)) }
        for (k, x) in emitted where !(st > x.end.rawValue + s.spec.gapNanos + s.spec.graceNanos) {
            run.early.append("\(k) \(OracleSession(x)) at stream time \(TimestampNanos(st))")
        }
        run.emitted += emitted
    }

    static func check(_ emitted: [(String, Session)], against oracle: [String: [OracleSession]], context: String) {
        var got: [String: [OracleSession]] = [:]
        for (k, s) in emitted where k != StreamFx.sentinelKey { got[k, default: []].append(OracleSession(s)) }
        var problems: [String] = []
        for u in Set(got.keys).union(oracle.keys).sorted() {
            let g = (got[u] ?? []).sorted { $0.start < $1.start }
            let o = oracle[u] ?? []
            if g != o {
                let firstDiff = zip(g, o).first { $0 != $1 }
                problems.append("\(u): \(g.count) sessions vs oracle \(o.count); first difference \(firstDiff.map { "got \($0.0) want \($0.1)" } ?? "in length")")
            }
        }
        #expect(problems.isEmpty, "\(context): \(problems.prefix(4))")
    }
}

/// Sessionisation (SPEC section 5.2) against a batch computation over the whole input.
@Suite struct StreamSessionOracleTests {
    static let configs: [(Int64, Int64, UInt64)] = [
        (30 * StreamFx.minute, 5 * StreamFx.minute, 1),  // the SPEC's app-sessions job
        (30 * StreamFx.minute, 5 * StreamFx.minute, 2),
        (10 * StreamFx.minute, 10 * StreamFx.minute, 3),  // grace = gap: many bridges
        (10 * StreamFx.minute, 0, 4),  // grace 0: in order only
    ]

    @Test(arguments: configs)
    func matchesOracle(_ gap: Int64, _ grace: Int64, _ seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let spec = SessionSpec(key: "user_id", time: "time_utc", gapNanos: gap, graceNanos: grace)
        let raw = SessionData.generate(count: 3000, gap: gap, rng: &rng)
        // Bounded disorder below grace (grace 0: the exact time order).
        let events = SessionData.arrange(raw, bound: max(grace, 1), rng: &rng)
        let context = "gap \(gap) grace \(grace) seed \(seed)"
        #expect(SessionData.late(events, grace: grace).isEmpty, "\(context)")
        let oracle = SessionData.oracle(events, gap: gap)

        let s = DirectSessions(spec: spec)
        let run = SessionData.run(s, events, batches: StreamFx.batches(events.count, sizes: 1...50, rng: &rng))
        #expect(run.onTime.values.allSatisfy { $0 }, "\(context)")
        #expect(s.lateEvents == 0, "\(context)")
        #expect(run.early.isEmpty, "\(context): emitted early: \(run.early.prefix(3))")
        SessionData.check(run.emitted, against: oracle, context: context)
        // Each session once; only the sentinel's stays open.
        #expect(s.openSessions == 1, "\(context)")
        #expect(s.openResults().map(\.0) == [StreamFx.sentinelKey], "\(context)")
        if grace >= 5 * StreamFx.minute {
            #expect(run.bridges > 0, "\(context): no bridging event in the data")
        }
        let total = oracle.values.reduce(0) { $0 + $1.count }
        #expect(total > 200, "\(context): only \(total) sessions")
    }

    /// Exactly `gap` apart is one session, a nanosecond more is two; a late-but-in-grace
    /// event bridges two sessions into one; finality is strictly after end + gap + grace.
    @Test func edges() throws {
        let gap = 30 * StreamFx.minute, grace = 5 * StreamFx.minute, b = StreamFx.base
        let s = DirectSessions(spec: SessionSpec(key: "user_id", time: "time_utc", gapNanos: gap, graceNanos: grace))
        var out: [(String, Session)] = []
        #expect(s.add(key: "a", time: b, type: "login", partition: 0, offset: 0))
        #expect(s.add(key: "a", time: b + gap, type: "screen_view", partition: 0, offset: 1))
        #expect(s.add(key: "a", time: b + gap, type: nil, partition: 0, offset: 2))  // equal time, no type
        #expect(s.openSessions == 1)
        #expect(s.add(key: "b", time: b + 2 * gap + 1, type: "login", partition: 0, offset: 3))  // another key: separate
        #expect(s.add(key: "a", time: b + 2 * gap + 1, type: "login", partition: 0, offset: 4))  // gap + 1ns: new session
        #expect(s.openSessions == 3)
        s.closeReady { out.append(($0, $1)) }
        #expect(out.isEmpty)
        // a's first session (end b+gap) is final once stream time passes b+2gap+grace.
        #expect(s.add(key: "c", time: b + 2 * gap + grace, type: nil, partition: 0, offset: 5))
        s.closeReady { out.append(($0, $1)) }
        #expect(out.isEmpty, "final only after, not at, end + gap + grace")
        #expect(s.add(key: "c", time: b + 2 * gap + grace + 1, type: nil, partition: 0, offset: 6))
        s.closeReady { out.append(($0, $1)) }
        #expect(out.count == 1)
        let first = try #require(out.first { $0.0 == "a" && $0.1.start == TimestampNanos(b) })
        #expect(first.1.end == TimestampNanos(b + gap) && first.1.events == 3)
        #expect(OracleSession(first.1).types == ["login": 1, "screen_view": 1])
        #expect(String(decoding: first.1.json(key: "a"), as: UTF8.self)
                == "{\"key\":\"a\",\"session_start\":\"1457740800\",\"session_end\":\"1457742600\",\"events\":3,\"event_types\":{\"login\":1,\"screen_view\":1}}")
    }

    @Test func bridgeMergesTwoSessions() {
        let gap = 30 * StreamFx.minute, grace = 5 * StreamFx.minute, b = StreamFx.base, m = StreamFx.minute
        let s = DirectSessions(spec: SessionSpec(key: "user_id", time: "time_utc", gapNanos: gap, graceNanos: grace))
        #expect(s.add(key: "a", time: b, type: "login", partition: 0, offset: 0))
        #expect(s.add(key: "a", time: b + 34 * m, type: "screen_view", partition: 0, offset: 1))  // 34m > gap: second session
        #expect(s.openSessions == 2)
        // 30m after the first, 4m before the second, 4m behind stream time (< grace): bridges.
        #expect(s.add(key: "a", time: b + 30 * m, type: "button_pressed", partition: 0, offset: 2))
        #expect(s.openSessions == 1)
        // Exactly grace behind: still on time. More than grace: late, changes nothing.
        #expect(s.add(key: "a", time: b + 29 * m, type: "login", partition: 0, offset: 3))
        #expect(!s.add(key: "a", time: b + 29 * m - 1, type: "login", partition: 0, offset: 4))
        #expect(s.lateEvents == 1)
        var out: [(String, Session)] = []
        s.closeReady { out.append(($0, $1)) }
        #expect(out.isEmpty)
        // Final once stream time passes end + gap + grace = b+34m+35m.
        #expect(s.add(key: "z", time: b + 69 * m, type: nil, partition: 0, offset: 5))
        s.closeReady { out.append(($0, $1)) }
        #expect(out.isEmpty, "final only after, not at, end + gap + grace")
        #expect(s.add(key: "z", time: b + 69 * m + 1, type: nil, partition: 0, offset: 6))
        s.closeReady { out.append(($0, $1)) }
        #expect(out.count == 1)
        if let (k, x) = out.first {
            #expect(k == "a")
            #expect(OracleSession(x) == OracleSession(start: b, end: b + 34 * m, events: 4, types: ["login": 2, "screen_view": 1, "button_pressed": 1]))
            #expect(x.lineage.ranges == [0: 0...3])
        }
    }

    /// Late data: events more than grace behind stream time are refused, counted, and
    /// the sessions equal the oracle over the other events.
    @Test(arguments: [UInt64(11), 12])
    func lateEventsGoNowhere(_ seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let gap = 30 * StreamFx.minute, grace = 5 * StreamFx.minute
        let raw = SessionData.generate(count: 2500, gap: gap, rng: &rng)
        var extra: [Int: Int64] = [:]
        for i in raw.indices where rng.chance(5) { extra[i] = grace + Int64(rng.int(1...180)) * StreamFx.minute }
        let events = SessionData.arrange(raw, bound: grace, extraDelay: extra, rng: &rng)
        let late = SessionData.late(events, grace: grace)
        let context = "seed \(seed)"
        #expect(late.count > 50, "\(context): only \(late.count) late")
        let s = DirectSessions(spec: SessionSpec(key: "user_id", time: "time_utc", gapNanos: gap, graceNanos: grace))
        let run = SessionData.run(s, events, batches: StreamFx.batches(events.count, sizes: 1...30, rng: &rng))
        let wrong = events.filter { run.onTime[$0.id] != !late.contains($0.id) }
        #expect(wrong.isEmpty, "\(context): \(wrong.count) misjudged")
        #expect(s.lateEvents == Int64(late.count), "\(context)")
        #expect(run.early.isEmpty, "\(context)")
        SessionData.check(run.emitted, against: SessionData.oracle(events.filter { !late.contains($0.id) }, gap: gap), context: context)
    }

    /// Replay: the same input (in different batchings) gives the same output sequence.
    @Test func deterministicReplay() {
        let seed: UInt64 = 21
        var rng = SeededRandom(seed: seed)
        let gap = 30 * StreamFx.minute, grace = 5 * StreamFx.minute
        let spec = SessionSpec(key: "user_id", time: "time_utc", gapNanos: gap, graceNanos: grace)
        let events = SessionData.arrange(SessionData.generate(count: 2000, gap: gap, rng: &rng), bound: grace, rng: &rng)
        let batches = StreamFx.batches(events.count, sizes: 1...40, rng: &rng)
        let a = SessionData.run(DirectSessions(spec: spec), events, batches: batches)
        let b = SessionData.run(DirectSessions(spec: spec), events, batches: batches)
        #expect(a.emitted.map(\.0) == b.emitted.map(\.0), "seed \(seed)")
        #expect(a.emitted.map(\.1) == b.emitted.map(\.1), "seed \(seed)")
        // Batching changes only when sessions leave, not what they are.
        let c = SessionData.run(DirectSessions(spec: spec), events, batches: [0..<events.count])
        let key: ((String, Session)) -> String = { "\($0.0) \($0.1.start)" }
        #expect(Dictionary(uniqueKeysWithValues: a.emitted.map { (key($0), OracleSession($0.1)) })
                == Dictionary(uniqueKeysWithValues: c.emitted.map { (key($0), OracleSession($0.1)) }), "seed \(seed)")
    }
}

/// Keys come and go: the key index is compacted to the keys with open sessions, and
/// results are unchanged by it.
@Suite struct StreamSessionCompactionTests {
    @Test func manyShortLivedKeysAreForgottenAndResultsStayRight() {
        var rng = SeededRandom(seed: 808)
        let gap = 30 * StreamFx.minute
        let spec = SessionSpec(key: "user_id", time: "time_utc", gapNanos: gap, graceNanos: 0)
        // 30,000 users, each active once for a few minutes, one after the other: at any
        // time only a few are open.
        var events: [SessionEvent] = []
        var t = StreamFx.base
        for u in 0..<30_000 {
            for _ in 0..<rng.int(1...3) {
                events.append(SessionEvent(id: events.count, key: "user-\(u)", time: t, type: rng.chance(50) ? "login" : "search", offset: Int64(events.count)))
                t += StreamFx.second * Int64(rng.int(1...90))
            }
        }
        let s = DirectSessions(spec: spec)
        var emitted: [(String, Session)] = []
        var largestIndex = 0
        for (i, e) in events.enumerated() {
            #expect(s.add(key: e.key, time: e.time, type: e.type, partition: 0, offset: e.offset))
            if i % 64 == 63 {
                s.closeReady { emitted.append(($0, $1)) }
                largestIndex = max(largestIndex, s.s.indexedKeys)
            }
        }
        _ = s.add(key: StreamFx.sentinelKey, time: StreamFx.farFuture, type: nil, partition: 0, offset: 1 << 40)
        s.closeReady { emitted.append(($0, $1)) }
        #expect(largestIndex < 10_000, "the key index grew to \(largestIndex) keys for \(s.openSessions) open sessions")
        SessionData.check(emitted, against: SessionData.oracle(events, gap: gap), context: "compaction, seed 808")
    }
}
