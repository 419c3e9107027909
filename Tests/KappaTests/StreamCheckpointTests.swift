import Testing
@testable import KappaCore
@testable import KappaStreams
import KappaTesting

/// Checkpoint round trips (SPEC section 6): each operator's state is encoded mid-stream,
/// decoded into a fresh operator, and both continue with the same remaining input; their
/// outputs must be equal, and re-encoding the decoded state gives the same bytes. A
/// truncated or damaged checkpoint must fail to decode with a reason, never crash.
@Suite struct StreamCheckpointTests {
    static func roundTrip(_ pipeline: WindowPipeline) -> WindowPipeline {
        let copy = WindowPipeline(spec: pipeline.spec, sources: pipeline.pres.count, mergers: pipeline.mergers.count)
        copy.applyTwice = pipeline.applyTwice
        for (i, pre) in pipeline.pres.enumerated() {
            let bytes = StreamCodec.bytes { pre.encode(into: $0) }
            let r = StreamCodec.decode(bytes) { (r: inout StateReader) throws(StateReader.Failure) in try copy.pres[i].decode(&r) }
            #expect(r.ok && r.atEnd, "pre \(i): \(r.error ?? "bytes left over")")
            #expect(StreamCodec.bytes { copy.pres[i].encode(into: $0) } == bytes, "pre \(i): re-encoding differs")
            #expect(copy.pres[i].streamTime == pre.streamTime && copy.pres[i].sequence == pre.sequence
                    && copy.pres[i].lateEvents == pre.lateEvents && copy.pres[i].openWindows == pre.openWindows)
        }
        for (i, m) in pipeline.mergers.enumerated() {
            let bytes = StreamCodec.bytes { m.encode(into: $0) }
            let r = StreamCodec.decode(bytes) { (r: inout StateReader) throws(StateReader.Failure) in try copy.mergers[i].decode(&r) }
            #expect(r.ok && r.atEnd, "merger \(i): \(r.error ?? "bytes left over")")
            #expect(StreamCodec.bytes { copy.mergers[i].encode(into: $0) } == bytes, "merger \(i): re-encoding differs")
            #expect(copy.mergers[i].openWindows == m.openWindows)
            let pb = StreamCodec.bytes { pipeline.progress[i].encode(into: $0) }
            let pr = StreamCodec.decode(pb) { (r: inout StateReader) throws(StateReader.Failure) in try copy.progress[i].decode(&r) }
            #expect(pr.ok && pr.atEnd, "progress \(i): \(pr.error ?? "bytes left over")")
            #expect(copy.progress[i] == pipeline.progress[i], "progress \(i) differs after decoding")
            let a = m.openResults().sorted { $0.sortKey < $1.sortKey }, b = copy.mergers[i].openResults().sorted { $0.sortKey < $1.sortKey }
            #expect(a == b, "merger \(i): open results differ after decoding")
        }
        return copy
    }

    @Test(arguments: [(false, EmitMode.final), (true, .final), (true, .updates), (false, .updates)] as [(Bool, EmitMode)])
    func windowsContinueIdentically(_ hopping: Bool, _ emit: EmitMode) {
        let seed: UInt64 = 900 &+ (hopping ? 2 : 0) &+ (emit == .final ? 0 : 1)
        var rng = SeededRandom(seed: seed)
        let spec = WindowData.spec(hopping: hopping, emit: emit)
        let events = WindowData.generate(count: 1200, sources: 4, bound: spec.graceNanos, rng: &rng)
        let (oracle, _) = WindowData.oracle(events, spec: spec, sources: 4)
        let steps = SourceSchedule.random.steps(events.bySource(4), batch: 1...40, rng: &rng)
        for cut in [steps.count / 3, 2 * steps.count / 3] {
            let original = WindowPipeline(spec: spec, sources: 4, mergers: 3)
            for (s, slice) in steps[..<cut] { original.feed(source: s, slice) }
            let finalsBefore = original.finals, updatesBefore = original.updates
            let copy = Self.roundTrip(original)
            original.finals = []
            original.updates = []
            original.sent = []
            for (s, slice) in steps[cut...] {
                original.feed(source: s, slice)
                copy.feed(source: s, slice)
            }
            original.finish()
            copy.finish()
            let context = "seed \(seed) cut \(cut)/\(steps.count)"
            #expect(copy.finals == original.finals, "\(context): finals differ after restore")
            #expect(copy.updates == original.updates, "\(context): updates differ after restore")
            #expect(copy.sent == original.sent, "\(context): contributions differ after restore")
            // And the restored run, joined to what was emitted before the checkpoint, is right.
            if emit == .final {
                WindowData.check(finalsBefore + copy.finals, against: oracle, spec: spec, lastWins: false, context: context)
            } else {
                WindowData.check(updatesBefore + copy.updates, against: oracle, spec: spec, lastWins: true, context: context)
            }
        }
    }

    /// A restarted first stage re-sends what it sent after its checkpoint; the merger,
    /// restored from a later checkpoint, drops those copies by (source, sequence).
    @Test func restartedPreAggregatorResendsAreDropped() {
        let seed: UInt64 = 950
        var rng = SeededRandom(seed: seed)
        let spec = WindowData.spec(hopping: true, emit: .final)
        let events = WindowData.generate(count: 1500, sources: 2, bound: spec.graceNanos, rng: &rng)
        let (oracle, _) = WindowData.oracle(events, spec: spec, sources: 2)
        let steps = SourceSchedule.roundRobin.steps(events.bySource(2), batch: 5...30, rng: &rng)
        let p = WindowPipeline(spec: spec, sources: 2, mergers: 1)
        let cut = steps.count / 2
        for (s, slice) in steps[..<cut] { p.feed(source: s, slice) }
        // Source 0 checkpoints here, then runs on for a while and "crashes".
        let pre0 = StreamCodec.bytes { p.pres[0].encode(into: $0) }
        let redo = steps[cut...].prefix(12).filter { $0.0 == 0 }
        let sentBefore = p.sent.count
        for (s, slice) in steps[cut...].prefix(12) { p.feed(source: s, slice) }
        let resentExpected = p.sent[sentBefore...].filter { $0.source == 0 }
        // Restart source 0 from its checkpoint and re-read the same input.
        let restarted = WindowPreAggregator(spec: spec, source: 0)
        let r = StreamCodec.decode(pre0) { (r: inout StateReader) throws(StateReader.Failure) in try restarted.decode(&r) }
        #expect(r.ok, "\(r.error ?? "")")
        p.pres[0] = restarted
        let dupsBefore = p.totalDuplicates
        let sentMark = p.sent.count
        for (s, slice) in redo { p.feed(source: s, slice) }
        let resent = Array(p.sent[sentMark...])
        #expect(resent == Array(resentExpected), "seed \(seed): the restarted stage must re-send the same contributions")
        #expect(p.totalDuplicates - dupsBefore == Int64(resent.count), "seed \(seed)")
        for (s, slice) in steps[cut...].dropFirst(12) { p.feed(source: s, slice) }
        p.finish()
        WindowData.check(p.finals, against: oracle, spec: spec, lastWins: false, context: "seed \(seed)")
    }

    @Test(arguments: [UInt64(61), 62])
    func sessionsContinueIdentically(_ seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let gap = 30 * StreamFx.minute, grace = 5 * StreamFx.minute
        let spec = SessionSpec(key: "user_id", time: "time_utc", gapNanos: gap, graceNanos: grace)
        let events = SessionData.arrange(SessionData.generate(count: 2000, gap: gap, rng: &rng), bound: grace, rng: &rng)
        let batches = StreamFx.batches(events.count, sizes: 1...40, rng: &rng)
        let cut = batches.count / 2
        let original = DirectSessions(spec: spec)
        var before = SessionData.Run()
        for b in batches[..<cut] {
            for e in events[b] { _ = original.add(key: e.key, time: e.time, type: e.type, partition: 0, offset: e.offset) }
            SessionData.close(original, into: &before)
        }
        let bytes = StreamCodec.bytes { original.encode(into: $0) }
        let copy = DirectSessions(spec: spec)
        let r = StreamCodec.decode(bytes) { (r: inout StateReader) throws(StateReader.Failure) in try copy.decode(&r) }
        #expect(r.ok && r.atEnd, "seed \(seed): \(r.error ?? "bytes left over")")
        #expect(StreamCodec.bytes { copy.encode(into: $0) } == bytes, "seed \(seed): re-encoding differs")
        #expect(copy.openSessions == original.openSessions && copy.streamTime == original.streamTime)
        let rest = Array(events[batches[cut].lowerBound...])
        let restBatches = batches[cut...].map { ($0.lowerBound - batches[cut].lowerBound)..<($0.upperBound - batches[cut].lowerBound) }
        let a = SessionData.run(original, rest, batches: restBatches)
        let b = SessionData.run(copy, rest, batches: restBatches)
        #expect(a.emitted.map(\.0) == b.emitted.map(\.0), "seed \(seed)")
        #expect(a.emitted.map(\.1) == b.emitted.map(\.1), "seed \(seed): sessions differ after restore")
        #expect(a.onTime == b.onTime)
        SessionData.check(before.emitted + b.emitted, against: SessionData.oracle(events, gap: gap), context: "seed \(seed)")
    }

    @Test(arguments: [UInt64(71), 72])
    func matchesContinueIdentically(_ seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let spec = StreamMatchOracleTests.spec
        let (rides, tickets) = MatchData.generate(rides: 1000, tickets: 600, bound: spec.graceNanos, rng: &rng)
        let oracle = MatchData.oracle(rides: rides, tickets: tickets)
        // One interleaving, written out as steps so it can be cut anywhere.
        var steps: [(Bool, MatchEvent)] = []  // (isRide, event)
        var ri = 0, ti = 0
        while ri < rides.count || ti < tickets.count {
            if ti >= tickets.count || (ri < rides.count && rng.chance(60)) {
                steps.append((true, rides[ri])); ri += 1
            } else {
                steps.append((false, tickets[ti])); ti += 1
            }
        }
        func feed(_ m: DirectMatcher, _ part: ArraySlice<(Bool, MatchEvent)>, into out: inout [MatchResult]) {
            for (i, (isRide, e)) in zip(part.indices, part) {
                _ = isRide ? m.addRide(user: e.user, id: e.id, time: e.time, offset: e.offset) : m.addTicket(user: e.user, id: e.id, time: e.time, offset: e.offset)
                if i % 9 == 0 { m.closeReady { out.append($0) } }
            }
            m.closeReady { out.append($0) }
        }
        let cut = steps.count / 2
        let original = DirectMatcher(spec: spec)
        var before: [MatchResult] = []
        feed(original, steps[..<cut], into: &before)
        let bytes = StreamCodec.bytes { original.encode(into: $0) }
        let copy = DirectMatcher(spec: spec)
        let r = StreamCodec.decode(bytes) { (r: inout StateReader) throws(StateReader.Failure) in try copy.decode(&r) }
        #expect(r.ok && r.atEnd, "seed \(seed): \(r.error ?? "bytes left over")")
        #expect(StreamCodec.bytes { copy.encode(into: $0) } == bytes, "seed \(seed): re-encoding differs")
        #expect(copy.stateSize.rides == original.stateSize.rides && copy.stateSize.pendingTickets == original.stateSize.pendingTickets
                && copy.ridesStreamTime == original.ridesStreamTime
                && copy.ticketsStreamTime == original.ticketsStreamTime)
        #expect(copy.openResults() == original.openResults())
        var a: [MatchResult] = [], b: [MatchResult] = []
        feed(original, steps[cut...], into: &a)
        feed(copy, steps[cut...], into: &b)
        for m in [original, copy] { _ = m.addRide(user: StreamFx.sentinelKey, id: "s", time: StreamFx.farFuture, offset: 1 << 40) }
        original.closeReady { a.append($0) }
        copy.closeReady { b.append($0) }
        #expect(a == b, "seed \(seed): matches differ after restore")
        MatchData.check(before + b, against: oracle, context: "seed \(seed)")
    }

    /// Every strict prefix of a checkpoint fails to decode (with a reason), and random
    /// damage never crashes the decoder.
    @Test func damagedCheckpointsFailCleanly() {
        let seed: UInt64 = 1234
        var rng = SeededRandom(seed: seed)
        // Small states of each operator.
        let wspec = WindowData.spec(hopping: true, emit: .final)
        let p = WindowPipeline(spec: wspec, sources: 2, mergers: 1)
        let events = WindowData.generate(count: 60, sources: 2, bound: wspec.graceNanos, rng: &rng)
        for (s, slice) in SourceSchedule.roundRobin.steps(events.bySource(2), batch: 1...10, rng: &rng) { p.feed(source: s, slice) }
        let s = DirectSessions(spec: SessionSpec(key: "k", time: "t", gapNanos: StreamFx.minute * 30, graceNanos: StreamFx.minute * 5))
        for e in SessionData.arrange(SessionData.generate(count: 60, gap: StreamFx.minute * 30, rng: &rng), bound: StreamFx.minute, rng: &rng) {
            _ = s.add(key: e.key, time: e.time, type: e.type, partition: 0, offset: e.offset)
        }
        let m = DirectMatcher(spec: StreamMatchOracleTests.spec)
        let (rides, tickets) = MatchData.generate(rides: 30, tickets: 20, bound: StreamFx.minute, rng: &rng)
        for r in rides { _ = m.addRide(user: r.user, id: r.id, time: r.time, offset: r.offset) }
        for t in tickets { _ = m.addTicket(user: t.user, id: t.id, time: t.time, offset: t.offset) }

        typealias Decoder = (inout StateReader) throws(StateReader.Failure) -> Void
        let cases: [(String, [UInt8], () -> Decoder)] = [
            ("pre", StreamCodec.bytes { p.pres[0].encode(into: $0) }, { let x = WindowPreAggregator(spec: wspec, source: 0); return { (r: inout StateReader) throws(StateReader.Failure) in try x.decode(&r) } }),
            ("merger", StreamCodec.bytes { p.mergers[0].encode(into: $0) }, { let x = WindowMerger(spec: wspec); return { (r: inout StateReader) throws(StateReader.Failure) in try x.decode(&r) } }),
            ("progress", StreamCodec.bytes { p.progress[0].encode(into: $0) }, { var x = SourceProgress(sources: [0, 1]); return { (r: inout StateReader) throws(StateReader.Failure) in try x.decode(&r) } }),
            ("session", StreamCodec.bytes { s.encode(into: $0) }, { let x = DirectSessions(spec: s.spec); return { (r: inout StateReader) throws(StateReader.Failure) in try x.decode(&r) } }),
            ("match", StreamCodec.bytes { m.encode(into: $0) }, { let x = DirectMatcher(spec: m.spec); return { (r: inout StateReader) throws(StateReader.Failure) in try x.decode(&r) } }),
        ]
        for (name, bytes, make) in cases {
            #expect(bytes.count > 20, "\(name): state too small to be interesting")
            #expect(StreamCodec.decode(bytes, make()).ok, "\(name)")
            var prefixOK: [Int] = []
            for n in 0..<bytes.count where StreamCodec.decode(Array(bytes[..<n]), make()).ok { prefixOK.append(n) }
            #expect(prefixOK.isEmpty, "\(name): truncated checkpoints of \(prefixOK.prefix(5)) bytes decoded without error")
            for _ in 0..<300 {
                var damaged = bytes
                for _ in 0..<rng.int(1...4) { damaged[rng.int(0...(damaged.count - 1))] ^= UInt8(rng.int(1...255)) }
                _ = StreamCodec.decode(damaged, make())  // must return, either way
            }
        }
        // Progress checkpointed for other sources is refused.
        var other = SourceProgress(sources: [0, 1, 2])
        let r = StreamCodec.decode(StreamCodec.bytes { p.progress[0].encode(into: $0) }) { (r: inout StateReader) throws(StateReader.Failure) in try other.decode(&r) }
        #expect(!r.ok)
    }
}
