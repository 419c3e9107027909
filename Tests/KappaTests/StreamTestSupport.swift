import Testing
@testable import KappaCore
@testable import KappaStreams
import KappaTesting

/// Shared fixtures for the Stream* operator tests: time units, bounded-disorder arrival
/// orders, a key hash for routing, the window pipeline driver (pre-aggregators +
/// mergers wired as a repartitioned job would be), and the plain batch oracles the
/// operators are compared against.
enum StreamFx {
    static let second: Int64 = 1_000_000_000
    static let minute: Int64 = 60 * second
    static let hour: Int64 = 60 * minute
    static let day: Int64 = 24 * hour
    /// 2016-03-12T00:00:00Z: on a day (and so hour and 15-minute) boundary.
    static let base: Int64 = 1_457_740_800 * second
    /// A time far past every generated event: closes everything.
    static let farFuture: Int64 = base + 400 * day
    static let sentinelKey = "~sentinel"

    /// Indices of `times` in arrival order: each event arrives at its time plus a random
    /// delay in [0, bound); ties keep index order. The arrival order then has bounded
    /// disorder: an event arrives when the stream time is < its time + bound.
    static func arrivalOrder(_ times: [Int64], bound: Int64, rng: inout SeededRandom) -> [Int] {
        precondition(bound > 0)
        let keys = times.map { $0 + Int64.random(in: 0..<bound, using: &rng) }
        return times.indices.sorted { (keys[$0], $0) < (keys[$1], $1) }
    }

    /// FNV-1a over UTF-8, for routing keys to mergers (any stable hash will do).
    static func hash(_ s: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return Int(h % 1_000_003)
    }

    /// Splits `0..<count` into consecutive batches of random sizes in `sizes`.
    static func batches(_ count: Int, sizes: ClosedRange<Int>, rng: inout SeededRandom) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < count {
            let n = min(rng.int(sizes), count - i)
            out.append(i..<(i + n))
            i += n
        }
        return out
    }

    /// Round half to even of `sum / n` (n > 0), written independently of Decimal9
    /// (floor division, then look at twice the remainder).
    static func halfEvenDivide(_ sum: Int128, _ n: Int128) -> Int128 {
        var q = sum / n
        var r = sum % n
        if r < 0 {
            q -= 1
            r += n
        }
        if 2 * r > n || (2 * r == n && q % 2 != 0) { q += 1 }
        return q
    }

    /// Every window start (epoch-aligned, half-open) containing `t`, computed plainly.
    static func windowStarts(_ t: Int64, size: Int64, advance: Int64) -> [Int64] {
        var m = t % advance
        if m < 0 { m += advance }
        var s = t - m
        var out: [Int64] = []
        while s + size > t {
            out.append(s)
            s -= advance
        }
        return out.reversed()
    }
}

// MARK: - Windows

struct WindowEvent {
    var id: Int  // global arrival index
    var key: String
    var time: Int64
    var values: [Decimal9?]
    var source: Int
    var offset: Int64
}

struct WinKey: Hashable, Comparable, CustomStringConvertible {
    var key: String
    var start: Int64
    static func < (a: WinKey, b: WinKey) -> Bool { (a.start, a.key) < (b.start, b.key) }
    var description: String { "(\(key), \(TimestampNanos(start)))" }
}

/// The oracle's aggregate of one (key, window): exact integers, nothing clever.
struct OracleAgg: Equatable, CustomStringConvertible {
    var count: Int64 = 0
    var n: [Int64]
    var sum: [Int128]
    var min: [Int128?]
    var max: [Int128?]
    var lineage: [Int32: ClosedRange<Int64>] = [:]

    init(fields: Int) {
        n = Array(repeating: 0, count: fields)
        sum = Array(repeating: 0, count: fields)
        min = Array(repeating: nil, count: fields)
        max = Array(repeating: nil, count: fields)
    }

    mutating func add(_ e: WindowEvent) {
        count += 1
        for (i, v) in e.values.enumerated() {
            guard let v else { continue }
            n[i] += 1
            sum[i] += v.raw
            min[i] = Swift.min(min[i] ?? v.raw, v.raw)
            max[i] = Swift.max(max[i] ?? v.raw, v.raw)
        }
        let p = Int32(e.source)
        if let r = lineage[p] {
            lineage[p] = Swift.min(r.lowerBound, e.offset)...Swift.max(r.upperBound, e.offset)
        } else {
            lineage[p] = e.offset...e.offset
        }
    }

    var description: String { "count \(count) n \(n) sum \(sum) min \(min) max \(max)" }
}

enum WindowData {
    static let keys = ["amsterdam", "berlin", "cairo", "delhi", "lima", "zürich"]

    /// `count` events over three days, in arrival order (bounded disorder < `bound`),
    /// spread over `sources` partitions. Times are mostly whole minutes (so many events
    /// share a timestamp and many sit exactly on 15-minute boundaries), some carry
    /// nanoseconds, some sit one nanosecond before a boundary.
    static func generate(count: Int, sources: Int, bound: Int64, rng: inout SeededRandom) -> [WindowEvent] {
        var raw: [(String, Int64, [Decimal9?])] = []
        for _ in 0..<count {
            let key = keys[rng.int(0...(keys.count - 1))]
            var t: Int64
            switch rng.int(0...99) {
            case 0..<12: t = StreamFx.base + 15 * StreamFx.minute * Int64(rng.int(0...(3 * 96 - 1)))  // on a boundary
            case 12..<17: t = StreamFx.base + 15 * StreamFx.minute * Int64(rng.int(1...(3 * 96 - 1))) - 1  // just before one
            case 17..<22 where !raw.isEmpty: t = raw[rng.int(0...(raw.count - 1))].1  // an equal timestamp
            case 22..<50: t = StreamFx.base + Int64(rng.int(0...(3 * 1440 - 1))) * StreamFx.minute + Int64(rng.int(0...59_999_999_999))
            default: t = StreamFx.base + Int64(rng.int(0...(3 * 1440 - 1))) * StreamFx.minute
            }
            let fare: Decimal9? = rng.chance(10) ? nil : Decimal9(raw: Int128(rng.int(-500...8000)) * 10_000_000)  // cents
            let tip: Decimal9? = rng.chance(30) ? nil : Decimal9(raw: Int128(rng.int(0...10_000_000_000)))  // nanos
            raw.append((key, t, [fare, tip]))
        }
        return arrange(raw, sources: sources, bound: bound, rng: &rng)
    }

    /// Orders raw events by arrival and assigns sources and per-source offsets.
    static func arrange(_ raw: [(String, Int64, [Decimal9?])], sources: Int, bound: Int64, extraDelay: [Int: Int64] = [:],
                        rng: inout SeededRandom) -> [WindowEvent] {
        let times = raw.enumerated().map { $0.element.1 + (extraDelay[$0.offset] ?? 0) }
        let order = StreamFx.arrivalOrder(times, bound: bound, rng: &rng)
        var nextOffset = Array(repeating: Int64(0), count: sources)
        var out: [WindowEvent] = []
        for (id, i) in order.enumerated() {
            let s = rng.int(0...(sources - 1))
            out.append(WindowEvent(id: id, key: raw[i].0, time: raw[i].1, values: raw[i].2, source: s, offset: nextOffset[s]))
            nextOffset[s] += 1
        }
        return out
    }

    static func spec(hopping: Bool, emit: EmitMode, grace: Int64 = 10 * StreamFx.minute) -> WindowSpec {
        WindowSpec(key: "city", time: "time_utc", sizeNanos: StreamFx.hour, advanceNanos: hopping ? 15 * StreamFx.minute : nil,
                   graceNanos: grace,
                   aggregates: [AggregateSpec(kind: .count, field: nil), AggregateSpec(kind: .sum, field: "fare"),
                                AggregateSpec(kind: .min, field: "fare"), AggregateSpec(kind: .max, field: "fare"),
                                AggregateSpec(kind: .avg, field: "fare"), AggregateSpec(kind: .sum, field: "tip"),
                                AggregateSpec(kind: .avg, field: "tip"), AggregateSpec(kind: .max, field: "tip")],
                   emit: emit)
    }

    /// Which (event, window) pairs count: per source, an event counts toward a window
    /// unless that window's end + grace is at or before the source's stream time
    /// (including the event itself). Returns the oracle and the ids of late events.
    static func oracle(_ events: [WindowEvent], spec: WindowSpec, sources: Int) -> (results: [WinKey: OracleAgg], late: Set<Int>) {
        var st = Array(repeating: Int64?.none, count: sources)
        var results: [WinKey: OracleAgg] = [:]
        var late = Set<Int>()
        for e in events {
            let now = max(st[e.source] ?? e.time, e.time)
            st[e.source] = now
            for start in StreamFx.windowStarts(e.time, size: spec.sizeNanos, advance: spec.advanceNanos) {
                if start + spec.sizeNanos + spec.graceNanos <= now {
                    late.insert(e.id)
                    continue
                }
                results[WinKey(key: e.key, start: start), default: OracleAgg(fields: spec.fields.count)].add(e)
            }
        }
        return (results, late)
    }

    /// The JSON a result should print, built from the oracle.
    static func expectedJSON(_ k: WinKey, _ o: OracleAgg, spec: WindowSpec) -> String {
        var s = "{\"key\":\"\(k.key)\",\"window_start\":\"\(TimestampNanos(k.start).decimalSeconds)\",\"window_end\":\"\(TimestampNanos(k.start + spec.sizeNanos).decimalSeconds)\""
        let fields = spec.fields
        for a in spec.aggregates {
            s += ",\"\(a.outputName)\":"
            guard let f = a.field else {
                s += "\(o.count)"
                continue
            }
            let i = fields.firstIndex(of: f)!
            if o.n[i] == 0 {
                s += a.kind == .sum ? "0" : "null"
                continue
            }
            switch a.kind {
            case .sum: s += Decimal9(raw: o.sum[i]).description
            case .min: s += Decimal9(raw: o.min[i]!).description
            case .max: s += Decimal9(raw: o.max[i]!).description
            case .avg: s += Decimal9(raw: StreamFx.halfEvenDivide(o.sum[i], Int128(o.n[i]))).description
            case .count: s += "\(o.count)"
            }
        }
        return s + "}"
    }

    /// Differences between one result and the oracle (empty when equal).
    static func diff(_ r: WindowResult, _ o: OracleAgg, spec: WindowSpec) -> [String] {
        var out: [String] = []
        let k = WinKey(key: r.key, start: r.windowStart.rawValue)
        if r.windowEnd != r.windowStart + spec.sizeNanos { out.append("\(k): window_end \(r.windowEnd)") }
        if r.state.count != o.count { out.append("\(k): count \(r.state.count) != \(o.count)") }
        for i in 0..<spec.fields.count {
            if r.state.fieldCounts[i] != o.n[i] { out.append("\(k): field \(i) n \(r.state.fieldCounts[i]) != \(o.n[i])") }
            if r.state.sums[i].raw != o.sum[i] { out.append("\(k): field \(i) sum \(r.state.sums[i]) != \(Decimal9(raw: o.sum[i]))") }
            guard o.n[i] > 0 else { continue }
            if r.state.mins[i].raw != o.min[i]! { out.append("\(k): field \(i) min \(r.state.mins[i]) != \(Decimal9(raw: o.min[i]!))") }
            if r.state.maxs[i].raw != o.max[i]! { out.append("\(k): field \(i) max \(r.state.maxs[i]) != \(Decimal9(raw: o.max[i]!))") }
            let avg = r.state.sums[i].divided(by: r.state.fieldCounts[i]).raw
            let want = StreamFx.halfEvenDivide(o.sum[i], Int128(o.n[i]))
            if avg != want { out.append("\(k): field \(i) avg \(Decimal9(raw: avg)) != \(Decimal9(raw: want))") }
        }
        if r.lineage.ranges != o.lineage { out.append("\(k): lineage \(r.lineage.ranges) != \(o.lineage)") }
        let json = String(decoding: r.json(spec, fields: spec.fields), as: UTF8.self)
        let want = expectedJSON(k, o, spec: spec)
        if json != want { out.append("\(k): json \(json) != \(want)") }
        return out
    }

    /// Checks that `results` hold each oracle (key, window) exactly once (final mode) or
    /// that the last update of each equals the oracle (updates mode).
    static func check(_ results: [WindowResult], against oracle: [WinKey: OracleAgg], spec: WindowSpec, lastWins: Bool,
                      context: String) {
        var seen: [WinKey: WindowResult] = [:]
        var problems: [String] = []
        for r in results where r.key != StreamFx.sentinelKey {
            let k = WinKey(key: r.key, start: r.windowStart.rawValue)
            if !lastWins && seen[k] != nil { problems.append("\(k) emitted twice") }
            if r.final == lastWins { problems.append("\(k) final=\(r.final) in \(lastWins ? "updates" : "final") mode") }
            seen[k] = r
        }
        for k in Set(seen.keys).subtracting(oracle.keys).sorted() { problems.append("\(k) emitted, not in the oracle") }
        for k in Set(oracle.keys).subtracting(seen.keys).sorted() { problems.append("\(k) missing (oracle \(oracle[k]!))") }
        for (k, r) in seen { if let o = oracle[k] { problems += diff(r, o, spec: spec) } }
        #expect(problems.isEmpty, "\(context): \(problems.count) problems, first: \(problems.sorted().prefix(6))")
    }
}

/// N pre-aggregators (one per source partition) feeding M owners, wired as a
/// repartitioned job's tasks are: each contribution goes to owner hash(key) % M, which
/// drops copies by (source, sequence) with its `SourceProgress` and merges the rest; after
/// each batch of a source, its pre-aggregator closes what it can, every owner observes
/// the source's stream time, and every owner closes what its watermark allows.
final class WindowPipeline {
    let spec: WindowSpec
    var pres: [WindowPreAggregator]
    var mergers: [WindowMerger]
    var progress: [SourceProgress]
    var finals: [WindowResult] = []
    var updates: [WindowResult] = []
    var sent: [Contribution] = []
    /// Applies every contribution twice in a row (the second must be a duplicate).
    var applyTwice = false
    var secondApplyResults: [WindowResult?] = []
    var onTime: [Int: Bool] = [:]

    init(spec: WindowSpec, sources: Int, mergers m: Int) {
        self.spec = spec
        pres = (0..<sources).map { WindowPreAggregator(spec: spec, source: Int32($0)) }
        mergers = (0..<m).map { _ in WindowMerger(spec: spec) }
        progress = (0..<m).map { _ in SourceProgress(sources: (0..<Int32(sources)).map { $0 }) }
    }

    func mergerIndex(_ key: String) -> Int { StreamFx.hash(key) % mergers.count }

    /// What an owner task does with a contribution from the repartition topic.
    func deliver(_ c: Contribution, to i: Int) -> WindowResult? {
        guard progress[i].accept(slot: Int(c.source), sequence: c.sequence) else { return nil }
        return mergers[i].apply(c)
    }

    func route(_ c: Contribution) {
        sent.append(c)
        let i = mergerIndex(c.key)
        if let u = deliver(c, to: i) { updates.append(u) }
        if applyTwice { secondApplyResults.append(deliver(c, to: i)) }
    }

    func feed(source: Int, _ events: some Collection<WindowEvent>) {
        let pre = pres[source]
        for e in events {
            let ok = e.values.withUnsafeBufferPointer { vals in
                pre.add(key: e.key, time: TimestampNanos(e.time), values: vals, partition: Int32(source), offset: e.offset) { route($0) }
            }
            onTime[e.id] = ok
        }
        pre.closeReady { route($0) }
        if let st = pre.streamTime {
            for i in progress.indices { progress[i].observe(slot: source, streamTime: st, idle: false) }
        }
        for i in mergers.indices { mergers[i].closeReady(watermark: progress[i].watermark) { finals.append($0) } }
    }

    /// One far-future event per source: closes every real window.
    func finish() {
        for s in pres.indices {
            let e = WindowEvent(id: -1 - s, key: StreamFx.sentinelKey, time: StreamFx.farFuture, values: Array(repeating: nil, count: spec.fields.count),
                                source: s, offset: 1 << 40)
            feed(source: s, [e])
        }
    }

    var totalLate: Int64 { pres.reduce(0) { $0 + $1.lateEvents } }
    var totalDuplicates: Int64 { progress.reduce(0) { $0 + $1.duplicates } }
}

/// A session task reading one partition directly, wired as `JobTask` wires it: the
/// source's `StreamClock` judges lateness, and the watermark the `Sessionizer` closes at
/// is that clock's stream time.
final class DirectSessions {
    let s: Sessionizer
    var clock: StreamClock

    init(spec: SessionSpec) {
        s = Sessionizer(spec: spec)
        clock = StreamClock(graceNanos: spec.graceNanos)
    }

    var spec: SessionSpec { s.spec }
    var streamTime: Int64? { clock.streamTime?.rawValue }
    var lateEvents: Int64 { clock.lateEvents }
    var openSessions: Int { s.openSessions }

    /// False (and nothing added) when the event is late.
    func add(key: String, time: Int64, type: String?, partition: Int32, offset: Int64) -> Bool {
        guard clock.admit(TimestampNanos(time)) else { return false }
        #expect(s.add(key: key, time: TimestampNanos(time), type: type, partition: partition, offset: offset), "an on-time event of a direct source never reaches an emitted session")
        return true
    }

    func closeReady(emit: (String, Session) -> Void) { s.closeReady(watermark: clock.streamTime, emit: emit) }

    func openResults() -> [(String, Session)] { s.openResults() }

    func encode(into w: ByteWriter) {
        w.put(clock.streamTime)
        w.put(clock.lateEvents)
        s.encode(into: w)
    }

    func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        clock = StreamClock(graceNanos: clock.graceNanos, streamTime: try r.timestamp(), lateEvents: try r.int64())
        try s.decode(&r)
    }
}

/// A match task reading a tickets and a rides partition directly, wired as `JobTask`
/// wires it: each topic's clock judges lateness, and its stream time is the matcher's
/// watermark for that topic, refreshed after every ride or ticket.
final class DirectMatcher {
    let m: TicketRideMatcher
    var rides: StreamClock
    var tickets: StreamClock

    init(spec: MatchSpec) {
        m = TicketRideMatcher(spec: spec)
        rides = StreamClock(graceNanos: spec.graceNanos)
        tickets = StreamClock(graceNanos: spec.graceNanos)
    }

    var spec: MatchSpec { m.spec }
    var ridesStreamTime: Int64? { rides.streamTime?.rawValue }
    var ticketsStreamTime: Int64? { tickets.streamTime?.rawValue }
    var lateRides: Int64 { rides.lateEvents }
    var lateTickets: Int64 { tickets.lateEvents }
    var stateSize: (rides: Int, pendingTickets: Int) { m.stateSize }

    private func refresh() {
        m.ridesWatermark = rides.streamTime
        m.ticketsWatermark = tickets.streamTime
    }

    func addRide(user: String, id: String, time: Int64, offset: Int64) -> Bool {
        guard rides.admit(TimestampNanos(time)) else { return false }
        refresh()
        m.addRide(user: user, id: id, time: TimestampNanos(time), offset: offset)
        return true
    }

    func addTicket(user: String, id: String, time: Int64, offset: Int64) -> Bool {
        guard tickets.admit(TimestampNanos(time)) else { return false }
        refresh()
        m.addTicket(user: user, id: id, time: TimestampNanos(time), offset: offset)
        return true
    }

    func closeReady(emit: (MatchResult) -> Void) {
        refresh()
        m.closeReady(emit: emit)
    }

    func openResults() -> [MatchResult] { m.openResults() }

    func encode(into w: ByteWriter) {
        for c in [rides, tickets] {
            w.put(c.streamTime)
            w.put(c.lateEvents)
        }
        m.encode(into: w)
    }

    func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        rides = StreamClock(graceNanos: rides.graceNanos, streamTime: try r.timestamp(), lateEvents: try r.int64())
        tickets = StreamClock(graceNanos: tickets.graceNanos, streamTime: try r.timestamp(), lateEvents: try r.int64())
        try m.decode(&r)
    }
}

/// The order in which the sources' batches are fed.
enum SourceSchedule: CustomStringConvertible, Sendable {
    case roundRobin
    case sourceFirst(Int)
    case random
    case reverse  // last source entirely first, down to source 0

    var description: String {
        switch self {
        case .roundRobin: "round-robin"
        case .sourceFirst(let s): "source \(s) first"
        case .random: "random"
        case .reverse: "reverse"
        }
    }

    /// Steps (source, slice of that source's events) covering every event once, each
    /// source's events in their own order.
    func steps(_ perSource: [[WindowEvent]], batch: ClosedRange<Int>, rng: inout SeededRandom) -> [(Int, ArraySlice<WindowEvent>)] {
        var cursors = Array(repeating: 0, count: perSource.count)
        var out: [(Int, ArraySlice<WindowEvent>)] = []
        func take(_ s: Int, rng: inout SeededRandom) {
            let n = min(rng.int(batch), perSource[s].count - cursors[s])
            out.append((s, perSource[s][cursors[s]..<(cursors[s] + n)]))
            cursors[s] += n
        }
        func left(_ s: Int) -> Bool { cursors[s] < perSource[s].count }
        switch self {
        case .sourceFirst(let first):
            while left(first) { take(first, rng: &rng) }
            fallthrough
        case .roundRobin:
            while perSource.indices.contains(where: left) {
                for s in perSource.indices where left(s) { take(s, rng: &rng) }
            }
        case .reverse:
            for s in perSource.indices.reversed() { while left(s) { take(s, rng: &rng) } }
        case .random:
            while true {
                let open = perSource.indices.filter(left)
                guard !open.isEmpty else { break }
                take(open[rng.int(0...(open.count - 1))], rng: &rng)
            }
        }
        return out
    }
}

extension Array where Element == WindowEvent {
    func bySource(_ sources: Int) -> [[WindowEvent]] {
        var out = Array<[WindowEvent]>(repeating: [], count: sources)
        for e in self { out[e.source].append(e) }
        return out
    }
}

extension WindowResult {
    var sortKey: WinKey { WinKey(key: key, start: windowStart.rawValue) }
}

// MARK: - Checkpoint helpers

enum StreamCodec {
    static func bytes(_ encode: (ByteWriter) -> Void) -> [UInt8] {
        let w = ByteWriter(capacity: 256)
        encode(w)
        return Array(w.bytes)
    }

    /// Decodes `bytes` with `decode`; returns nil (and the reason) on failure. Also
    /// reports whether every byte was consumed.
    static func decode(_ bytes: [UInt8], _ decode: (inout StateReader) throws(StateReader.Failure) -> Void) -> (ok: Bool, atEnd: Bool, error: String?) {
        bytes.withUnsafeBytes { buf in
            var r = StateReader(buf)
            do {
                try decode(&r)
                return (true, r.isAtEnd, nil)
            } catch {
                return (false, false, "\(error)")
            }
        }
    }
}
