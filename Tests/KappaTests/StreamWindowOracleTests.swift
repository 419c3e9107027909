import Testing
@testable import KappaCore
@testable import KappaStreams
import KappaTesting

/// Windowed aggregation (SPEC section 5.1) against a plain batch computation over the
/// whole input: random events with bounded disorder (< grace), fed through one or more
/// pre-aggregators and mergers, every window closed at the end, results compared per
/// (key, window): count, sum, min, max, avg, lineage and the JSON they print.
@Suite struct StreamWindowOracleTests {
    struct Config: CustomTestStringConvertible, Sendable {
        var hopping: Bool
        var sources: Int
        var mergers: Int
        var emit: EmitMode
        var seed: UInt64
        var testDescription: String {
            "\(hopping ? "hopping" : "tumbling") \(sources)x\(mergers) \(emit.rawValue) seed \(seed)"
        }
    }

    static let configs: [Config] = {
        var out: [Config] = []
        for hopping in [false, true] {
            for (n, m) in [(1, 1), (4, 3)] {
                for emit in [EmitMode.final, .updates] {
                    out.append(Config(hopping: hopping, sources: n, mergers: m, emit: emit, seed: UInt64(out.count) &* 7919 &+ 17))
                }
            }
        }
        return out
    }()

    @Test(arguments: configs)
    func matchesOracle(_ c: Config) {
        var rng = SeededRandom(seed: c.seed)
        let spec = WindowData.spec(hopping: c.hopping, emit: c.emit)
        let events = WindowData.generate(count: 3000, sources: c.sources, bound: spec.graceNanos, rng: &rng)
        let (oracle, late) = WindowData.oracle(events, spec: spec, sources: c.sources)
        let context = "\(c.testDescription)"
        #expect(late.isEmpty, "\(context): generator made late events")
        // The data must exercise boundaries and ties.
        let onBoundary = events.filter { ($0.time - StreamFx.base) % (15 * StreamFx.minute) == 0 }.count
        #expect(onBoundary > 100, "\(context)")
        #expect(Set(events.map(\.time)).count < events.count - 100, "\(context): want many equal timestamps")

        let p = WindowPipeline(spec: spec, sources: c.sources, mergers: c.mergers)
        for (s, slice) in SourceSchedule.random.steps(events.bySource(c.sources), batch: 1...60, rng: &rng) {
            p.feed(source: s, slice)
        }
        #expect(p.onTime.values.allSatisfy { $0 }, "\(context): an on-time event was judged late")
        p.finish()
        #expect(p.totalLate == 0, "\(context)")
        #expect(p.totalDuplicates == 0, "\(context)")

        if c.emit == .final {
            #expect(p.updates.isEmpty, "\(context): final mode emitted updates")
            WindowData.check(p.finals, against: oracle, spec: spec, lastWins: false, context: context)
        } else {
            #expect(p.finals.isEmpty, "\(context): updates mode emitted finals")
            WindowData.check(p.updates, against: oracle, spec: spec, lastWins: true, context: context)
            // One update per (event, window), each one event more than the last.
            var counts: [WinKey: Int64] = [:]
            var problems: [String] = []
            for u in p.updates where u.key != StreamFx.sentinelKey {
                let k = u.sortKey
                let before = counts[k] ?? 0
                if u.state.count != before + 1 { problems.append("\(k): update count \(u.state.count) after \(before)") }
                counts[k] = u.state.count
            }
            #expect(problems.isEmpty, "\(context): \(problems.prefix(5))")
        }
        // State stays bounded: only the sentinel's windows are left open.
        let sentinelWindows = spec.sizeNanos / spec.advanceNanos
        // Final mode: the sentinel's partials wait in each pre-aggregator; updates mode:
        // they went straight to the merger that owns the sentinel key.
        let openInMergers = p.mergers.reduce(0) { $0 + $1.openWindows }
        let openInPres = p.pres.reduce(0) { $0 + $1.openWindows }
        if c.emit == .final {
            #expect(openInMergers == 0, "\(context): \(openInMergers) windows left open in mergers")
            #expect(openInPres == c.sources * Int(sentinelWindows), "\(context): \(openInPres) windows left open in pre-aggregators")
        } else {
            #expect(openInMergers == Int(sentinelWindows), "\(context): \(openInMergers) windows left open in mergers")
            #expect(openInPres == 0, "\(context)")
        }
        for m in p.mergers {
            #expect(m.openResults().allSatisfy { $0.key == StreamFx.sentinelKey && !$0.final }, "\(context)")
        }
    }

    /// Hand-made edges: half-open windows, an event one nanosecond before the end, the
    /// exact moment of finality (end + grace), and lateness at that moment.
    @Test func boundariesAndFinality() throws {
        let spec = WindowData.spec(hopping: false, emit: .final)
        let p = WindowPipeline(spec: spec, sources: 1, mergers: 1)
        let h = StreamFx.hour, b = StreamFx.base
        func ev(_ id: Int, _ key: String, _ t: Int64, _ fare: Int64?) -> WindowEvent {
            WindowEvent(id: id, key: key, time: t, values: [fare.map { Decimal9(integer: $0) }, nil], source: 0, offset: Int64(id))
        }
        p.feed(source: 0, [ev(0, "a", b, 10), ev(1, "a", b + h - 1, 20), ev(2, "a", b + h, 40), ev(3, "a", b + h, nil)])
        #expect(p.finals.isEmpty)
        // Stream time one nanosecond short of end + grace: still open, still accepting.
        p.feed(source: 0, [ev(4, "b", b + h + spec.graceNanos - 1, 1), ev(5, "a", b + 30 * StreamFx.minute, 30)])
        #expect(p.finals.isEmpty)
        #expect(p.onTime[5] == true)
        // Reaching end + grace finalises [b, b+h) exactly once.
        p.feed(source: 0, [ev(6, "b", b + h + spec.graceNanos, 1)])
        try #require(p.finals.count == 1)
        let r = p.finals[0]
        #expect(r.key == "a" && r.windowStart == TimestampNanos(b) && r.windowEnd == TimestampNanos(b + h) && r.final)
        #expect(r.state.count == 3)
        #expect(r.state.sums[0] == Decimal9(integer: 60))
        #expect(r.state.mins[0] == Decimal9(integer: 10) && r.state.maxs[0] == Decimal9(integer: 30))
        #expect(r.lineage.ranges == [0: 0...5])
        // Now an event for that window is late and changes nothing.
        p.feed(source: 0, [ev(7, "a", b + h - 1, 1000)])
        #expect(p.onTime[7] == false)
        #expect(p.totalLate == 1)
        p.finish()
        let a2 = p.finals.filter { $0.key == "a" && $0.windowStart == TimestampNanos(b + h) }
        #expect(a2.count == 1)
        #expect(a2.first?.state.count == 2)
        #expect(a2.first?.state.fieldCounts[0] == 1)  // one null fare
        #expect(p.finals.filter { $0.key == "a" && $0.windowStart == TimestampNanos(b) }.count == 1)
        let json = String(decoding: p.finals.first { $0.key == "b" }!.json(spec, fields: spec.fields), as: UTF8.self)
        #expect(json == "{\"key\":\"b\",\"window_start\":\"1457744400\",\"window_end\":\"1457748000\",\"count\":2,\"sum_fare\":2,\"min_fare\":1,\"max_fare\":1,\"avg_fare\":1,\"sum_tip\":0,\"avg_tip\":null,\"max_tip\":null}")
    }

    /// Keys are JSON-escaped in results.
    @Test func keysAreEscapedInJSON() {
        let spec = WindowSpec(key: "city", time: "time_utc", sizeNanos: StreamFx.hour, graceNanos: 0,
                              aggregates: [AggregateSpec(kind: .count, field: nil)], emit: .final)
        let r = WindowResult(key: "a\"b\\c\nd\u{1}é", windowStart: TimestampNanos(-StreamFx.hour), windowEnd: TimestampNanos(0), state: AggregateState(fields: 0),
                             lineage: Lineage(), final: true)
        #expect(String(decoding: r.json(spec, fields: []), as: UTF8.self)
                == #"{"key":"a\"b\\c\nd\u0001é","window_start":"-3600","window_end":"0","count":0}"#)
    }

    /// Windows before the epoch are aligned by floor division, not truncation.
    @Test func negativeTimesAlignToTheEpoch() {
        #expect(WindowMath.starts(containing: -1, size: StreamFx.hour, advance: StreamFx.hour) == [-StreamFx.hour])
        #expect(WindowMath.starts(containing: 0, size: StreamFx.hour, advance: StreamFx.hour) == [0])
        let q = 15 * StreamFx.minute
        #expect(WindowMath.starts(containing: -1, size: StreamFx.hour, advance: q) == [-4 * q, -3 * q, -2 * q, -q])
        #expect(WindowMath.starts(containing: q, size: StreamFx.hour, advance: q) == [-2 * q, -q, 0, q])
        var rng = SeededRandom(seed: 99)
        for _ in 0..<2000 {
            let t = Int64.random(in: -3 * StreamFx.day...3 * StreamFx.day, using: &rng)
            let size = [StreamFx.hour, 2 * StreamFx.hour, StreamFx.day][rng.int(0...2)]
            let adv = [size, size / 2, size / 4][rng.int(0...2)]
            #expect(WindowMath.starts(containing: t, size: size, advance: adv) == StreamFx.windowStarts(t, size: size, advance: adv),
                    "seed 99 t \(t) size \(size) advance \(adv)")
        }
    }

    /// Late data (SPEC 5.1): events more than grace behind their source's stream time
    /// are refused (`add` returns false), counted, and absent from the results, which
    /// equal the oracle over the remaining events. With hopping windows, lateness is per
    /// window: a partly late event still counts toward its windows that are open.
    @Test(arguments: [(false, 1, 1), (false, 4, 3), (true, 1, 1), (true, 4, 3)] as [(Bool, Int, Int)])
    func lateEventsGoNowhere(_ hopping: Bool, _ sources: Int, _ mergers: Int) {
        let seed: UInt64 = 4242 &+ (hopping ? 1 : 0) &+ UInt64(sources)
        var rng = SeededRandom(seed: seed)
        let spec = WindowData.spec(hopping: hopping, emit: .final)
        var raw: [(String, Int64, [Decimal9?])] = []
        var extra: [Int: Int64] = [:]
        for i in 0..<2500 {
            let t = StreamFx.base + Int64(rng.int(0...(3 * 1440 - 1))) * StreamFx.minute + (rng.chance(30) ? Int64(rng.int(0...59_999_999_999)) : 0)
            raw.append((WindowData.keys[rng.int(0...3)], t, [Decimal9(raw: Int128(rng.int(0...9000)) * 10_000_000), nil]))
            if rng.chance(6) { extra[i] = spec.sizeNanos + spec.graceNanos + Int64(rng.int(0...120)) * StreamFx.minute }
        }
        let events = WindowData.arrange(raw, sources: sources, bound: spec.graceNanos, extraDelay: extra, rng: &rng)
        let (oracle, late) = WindowData.oracle(events, spec: spec, sources: sources)
        let context = "hopping \(hopping) \(sources)x\(mergers) seed \(seed)"
        #expect(late.count > 50, "\(context): only \(late.count) late events")

        let p = WindowPipeline(spec: spec, sources: sources, mergers: mergers)
        for (s, slice) in SourceSchedule.roundRobin.steps(events.bySource(sources), batch: 1...40, rng: &rng) {
            p.feed(source: s, slice)
        }
        p.finish()
        let wrong = events.filter { p.onTime[$0.id] != !late.contains($0.id) }
        #expect(wrong.isEmpty, "\(context): add() misjudged \(wrong.count) events, e.g. \(wrong.prefix(3).map { "\($0.key)@\($0.time)" })")
        #expect(p.totalLate == Int64(late.count), "\(context)")
        WindowData.check(p.finals, against: oracle, spec: spec, lastWins: false, context: context)
        if !hopping {
            // Tumbling: each late event's only window closed, so it is simply absent.
            let (without, lateAgain) = WindowData.oracle(events.filter { !late.contains($0.id) }, spec: spec, sources: sources)
            #expect(lateAgain.isEmpty)
            let withoutNoLineage = without.mapValues { $0.count }
            let got = Dictionary(p.finals.filter { $0.key != StreamFx.sentinelKey }.map { ($0.sortKey, $0.state.count) }, uniquingKeysWith: +)
            #expect(got == withoutNoLineage, "\(context)")
        }
    }

    /// The same contribution applied twice (a restarted first stage re-sending) is dropped
    /// by (source, sequence); so is an old one re-sent much later.
    @Test(arguments: [EmitMode.final, .updates])
    func duplicateContributionsAreDropped(_ emit: EmitMode) {
        let seed: UInt64 = emit == .final ? 31 : 32
        var rng = SeededRandom(seed: seed)
        let spec = WindowData.spec(hopping: true, emit: emit)
        let events = WindowData.generate(count: 1500, sources: 4, bound: spec.graceNanos, rng: &rng)
        let (oracle, _) = WindowData.oracle(events, spec: spec, sources: 4)
        let p = WindowPipeline(spec: spec, sources: 4, mergers: 3)
        p.applyTwice = true
        let steps = SourceSchedule.random.steps(events.bySource(4), batch: 1...50, rng: &rng)
        var resent = 0
        for (i, (s, slice)) in steps.enumerated() {
            p.feed(source: s, slice)
            if i % 7 == 6 && !p.sent.isEmpty {
                // Re-send a few older contributions to the merger that owns them.
                for _ in 0..<3 {
                    let c = p.sent[rng.int(0...(p.sent.count - 1))]
                    #expect(p.deliver(c, to: p.mergerIndex(c.key)) == nil, "seed \(seed)")
                    resent += 1
                }
            }
        }
        p.finish()
        let context = "\(emit.rawValue) seed \(seed)"
        #expect(p.secondApplyResults.allSatisfy { $0 == nil }, "\(context): a second apply returned an update")
        #expect(p.totalDuplicates == Int64(p.sent.count + resent), "\(context)")
        if emit == .final {
            WindowData.check(p.finals, against: oracle, spec: spec, lastWins: false, context: context)
        } else {
            WindowData.check(p.updates, against: oracle, spec: spec, lastWins: true, context: context)
        }
    }

    /// Replay: the same input into fresh operators gives the same output sequence, bit
    /// for bit; feeding the sources at different relative speeds gives the same set of
    /// final results (the watermark is the slowest source's stream time).
    @Test(arguments: [false, true])
    func deterministicAndSpeedIndependent(_ hopping: Bool) {
        let seed: UInt64 = hopping ? 77 : 78
        var rng = SeededRandom(seed: seed)
        let spec = WindowData.spec(hopping: hopping, emit: .final)
        let events = WindowData.generate(count: 1200, sources: 4, bound: spec.graceNanos, rng: &rng)
        let perSource = events.bySource(4)
        let (oracle, _) = WindowData.oracle(events, spec: spec, sources: 4)
        var stepRng = rng
        let steps = SourceSchedule.random.steps(perSource, batch: 1...30, rng: &stepRng)

        func run(_ steps: [(Int, ArraySlice<WindowEvent>)]) -> WindowPipeline {
            let p = WindowPipeline(spec: spec, sources: 4, mergers: 3)
            for (s, slice) in steps { p.feed(source: s, slice) }
            p.finish()
            return p
        }
        let a = run(steps), b = run(steps)
        #expect(a.finals == b.finals, "seed \(seed): replay differs")
        #expect(a.sent == b.sent, "seed \(seed): replay sends different contributions")

        WindowData.check(a.finals, against: oracle, spec: spec, lastWins: false, context: "seed \(seed)")
        let reference = a.finals.sorted { $0.sortKey < $1.sortKey }
        for schedule in [SourceSchedule.sourceFirst(0), .reverse, .sourceFirst(3)] {
            var r = SeededRandom(seed: seed &+ 1000)
            let p = run(schedule.steps(perSource, batch: 1...25, rng: &r))
            let got = p.finals.sorted { $0.sortKey < $1.sortKey }
            #expect(got == reference, "seed \(seed) schedule \(schedule): \(got.count) vs \(reference.count) finals")
            // Each source sends the same numbered contributions whatever the batching and
            // speed: what lets a restarted source's re-sends be recognised as copies.
            for src in 0..<4 {
                #expect(p.sent.filter { $0.source == Int32(src) } == a.sent.filter { $0.source == Int32(src) },
                        "seed \(seed) schedule \(schedule): source \(src) sent other contributions")
            }
        }
    }

    /// `emit: updates` with a slow source: updates leave at once, in any speed, and the
    /// last one per (key, window) is the same whatever the relative speeds.
    @Test func updatesLastValueIsSpeedIndependent() {
        let seed: UInt64 = 555
        var rng = SeededRandom(seed: seed)
        let spec = WindowData.spec(hopping: true, emit: .updates)
        let events = WindowData.generate(count: 1000, sources: 4, bound: spec.graceNanos, rng: &rng)
        let (oracle, _) = WindowData.oracle(events, spec: spec, sources: 4)
        for schedule in [SourceSchedule.sourceFirst(2), .reverse, .roundRobin] {
            let p = WindowPipeline(spec: spec, sources: 4, mergers: 3)
            for (s, slice) in schedule.steps(events.bySource(4), batch: 1...40, rng: &rng) { p.feed(source: s, slice) }
            p.finish()
            WindowData.check(p.updates, against: oracle, spec: spec, lastWins: true, context: "seed \(seed) \(schedule)")
        }
    }

    /// SPEC 5: every (key, window) has exactly one final result. With the opt-in idle
    /// timeout a source can be left out of the watermark, the merger finalises a window
    /// without it, and then the source wakes up and sends its partial for that window.
    /// That partial must not come out as a second "final" result holding only part of
    /// the data (it should be refused as late, or at least not contradict the first).
    @Test func idleSourceWakingUpDoesNotEmitASecondFinal() {
        let spec = WindowData.spec(hopping: false, emit: .final)
        let b = StreamFx.base, h = StreamFx.hour
        func partial(_ source: Int32, _ seq: Int64, count: Int) -> Contribution {
            var st = AggregateState(fields: spec.fields.count)
            let vals: [Decimal9?] = [Decimal9(integer: 10), nil]
            for _ in 0..<count { vals.withUnsafeBufferPointer { st.add($0) } }
            var l = Lineage()
            l.add(partition: source, offset: seq)
            return Contribution(key: "a", windowStart: TimestampNanos(b), state: st, lineage: l, source: source, sequence: seq)
        }
        let m = WindowMerger(spec: spec)
        var progress = SourceProgress(sources: [0, 1])
        var finals: [WindowResult] = []
        progress.observe(slot: 1, streamTime: TimestampNanos(b), idle: true)
        #expect(m.apply(partial(0, 1, count: 2)) == nil)
        progress.observe(slot: 0, streamTime: TimestampNanos(b + h + spec.graceNanos), idle: false)
        m.closeReady(watermark: progress.watermark) { finals.append($0) }
        #expect(finals.count == 1 && finals.first?.state.count == 2)
        // Source 1 wakes up, behind, with its partial of the same window.
        progress.observe(slot: 1, streamTime: TimestampNanos(b + 40 * StreamFx.minute), idle: false)
        _ = m.apply(partial(1, 1, count: 1))
        #expect(m.lateContributions == 1)
        progress.observe(slot: 1, streamTime: TimestampNanos(b + 2 * h + spec.graceNanos), idle: false)
        progress.observe(slot: 0, streamTime: TimestampNanos(b + 2 * h + spec.graceNanos), idle: false)
        m.closeReady(watermark: progress.watermark) { finals.append($0) }
        let forWindow = finals.filter { $0.key == "a" && $0.windowStart == TimestampNanos(b) }
        #expect(forWindow.count == 1, "(a, \(b)) finalised \(forWindow.count) times, counts \(forWindow.map(\.state.count))")
    }
}
