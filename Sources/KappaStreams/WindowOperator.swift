import KappaCore
import KappaJSON

/// A partial aggregate of one (key, window) from one source partition: what the first
/// stage of a windowed job sends to the second (through the repartition topic, or
/// directly when no repartition is needed). `sequence` numbers a source's
/// contributions, so the second stage drops the copies a restarted first stage re-sends.
public struct Contribution: Equatable, Sendable {
    public var key: String
    public var windowStart: TimestampNanos
    public var state: AggregateState
    public var lineage: Lineage
    public var source: Int32
    public var sequence: Int64
}

/// First stage of a windowed aggregation, one per task: assigns each event to its
/// windows, judges lateness against this task's stream time (the largest event time it
/// has read — from the data, never the clock), and pre-aggregates per (key, window).
/// With `emit: final` a window's partials leave when the task's stream time passes the
/// window's end + grace; with `emit: updates` every event leaves at once.
/// Deterministic: its output is a function of the input sequence alone.
public final class WindowPreAggregator {
    public let spec: WindowSpec
    public let source: Int32
    public private(set) var streamTime: TimestampNanos?
    public private(set) var sequence: Int64 = 0
    public private(set) var lateEvents: Int64 = 0
    /// The partials of one window start at this source, by interned key.
    final class OpenWindow {
        let keys = KeyIndex()
        var states: [AggregateState] = []
        var lineages: [Lineage] = []
    }
    private var windows: [TimestampNanos: OpenWindow] = [:]
    private var openStarts: [TimestampNanos] = []  // ascending
    // Consecutive events mostly share a window. Unretained: `windows` owns it, and the
    // cache is cleared whenever a window leaves `windows`.
    private var recentStart = TimestampNanos(.min)
    private var recentWindow: Unmanaged<OpenWindow>?
    private let fieldCount: Int

    public init(spec: WindowSpec, source: Int32) {
        self.spec = spec
        self.source = source
        fieldCount = spec.fields.count
    }

    /// Folds one event in. Returns false when it is late: at least one of its windows
    /// had already closed (it still counts toward the windows that are open).
    public func add(key: String, time: TimestampNanos, values: UnsafeBufferPointer<Decimal9?>, partition: Int32, offset: Int64,
                    emit: (Contribution) -> Void) -> Bool {
        var k = key
        return k.withUTF8 { add(key: UnsafeRawBufferPointer($0), time: time, values: values, partition: partition, offset: offset, emit: emit) }
    }

    /// `add` with the key's UTF-8 bytes as they lie in the record: the hot path.
    public func add(key: UnsafeRawBufferPointer, time: TimestampNanos, values: UnsafeBufferPointer<Decimal9?>, partition: Int32, offset: Int64,
                    emit: (Contribution) -> Void) -> Bool {
        let st = max(streamTime ?? time, time)
        streamTime = st
        var late = false
        // Every window containing `time`, newest first, without building a list.
        var start = TimestampNanos(WindowMath.lastStart(containing: time.rawValue, advance: spec.advanceNanos))
        while start > time - spec.sizeNanos {
            defer { start = start - spec.advanceNanos }
            if start + spec.sizeNanos + spec.graceNanos <= st {
                late = true
                continue
            }
            if spec.emit == .updates {
                var s = AggregateState(fields: fieldCount)
                s.add(values)
                var l = Lineage()
                l.add(partition: partition, offset: offset)
                sequence += 1
                emit(Contribution(key: String(decoding: key, as: UTF8.self), windowStart: start, state: s, lineage: l,
                                  source: source, sequence: sequence))
                continue
            }
            // `windows` keeps the window alive: borrow it rather than retain it per event.
            window(start)._withUnsafeGuaranteedRef { w in
                let id = Int(w.keys.id(of: key))
                if id == w.states.count {
                    w.states.append(AggregateState(fields: fieldCount))
                    w.lineages.append(Lineage())
                }
                w.states[id].add(values)
                w.lineages[id].add(partition: partition, offset: offset)
            }
        }
        if late { lateEvents += 1 }
        return !late
    }

    @inline(__always)
    private func window(_ start: TimestampNanos) -> Unmanaged<OpenWindow> {
        if recentStart == start, let r = recentWindow { return r }
        let w: OpenWindow
        if let found = windows[start] {
            w = found
        } else {
            w = OpenWindow()
            windows[start] = w
            var i = openStarts.count
            while i > 0 && openStarts[i - 1] > start { i -= 1 }
            openStarts.insert(start, at: i)
        }
        recentStart = start
        recentWindow = Unmanaged.passUnretained(w)
        return recentWindow!
    }

    /// Sends the partials of every window closed by stream time, oldest window first,
    /// keys in order (so the output does not depend on hashing).
    public func closeReady(emit: (Contribution) -> Void) {
        guard let st = streamTime else { return }
        while let start = openStarts.first, start + spec.sizeNanos + spec.graceNanos <= st {
            openStarts.removeFirst()
            let w = windows.removeValue(forKey: start)!
            if recentStart == start { recentWindow = nil }
            for id in Self.idsByKey(w) {
                sequence += 1
                emit(Contribution(key: w.keys.keys[id], windowStart: start, state: w.states[id], lineage: w.lineages[id],
                                  source: source, sequence: sequence))
            }
        }
    }

    private static func idsByKey(_ w: OpenWindow) -> [Int] { w.keys.sortedByKey(Array(w.states.indices)) }

    public var openWindows: Int { windows.values.reduce(0) { $0 + $1.states.count } }

    /// Partials not yet sent (windows still open at this source), for queries.
    public func openPartials() -> [Contribution] {
        var out: [Contribution] = []
        for start in openStarts {
            let w = windows[start]!
            for id in w.states.indices {
                out.append(Contribution(key: w.keys.keys[id], windowStart: start, state: w.states[id], lineage: w.lineages[id],
                                        source: source, sequence: 0))
            }
        }
        return out
    }

    func encode(into w: ByteWriter) {
        w.put(streamTime)
        w.put(sequence)
        w.put(lateEvents)
        w.put(openStarts.count)
        for start in openStarts {
            let window = windows[start]!
            w.put(start.rawValue)
            w.put(window.states.count)
            for id in Self.idsByKey(window) {
                w.put(window.keys.keys[id])
                window.states[id].encode(into: w)
                window.lineages[id].encode(into: w)
            }
        }
    }

    func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        streamTime = try r.timestamp()
        sequence = try r.int64()
        lateEvents = try r.int64()
        windows = [:]
        openStarts = []
        recentWindow = nil
        for _ in 0..<(try r.count()) {
            let start = TimestampNanos(try r.int64())
            guard windows[start] == nil, openStarts.last.map({ $0 < start }) ?? true else {
                throw StateReader.Failure(description: "window starts out of order at \(start)")
            }
            let window = OpenWindow()
            for _ in 0..<(try r.count()) {
                let key = try r.string()
                guard Int(window.keys.id(of: key)) == window.states.count else {
                    throw StateReader.Failure(description: "key '\(key)' twice in window \(start)")
                }
                window.states.append(try AggregateState.decode(&r, fields: fieldCount))
                window.lineages.append(try Lineage.decode(&r))
            }
            windows[start] = window
            openStarts.append(start)
        }
    }
}

/// A final (or, with `emit: updates`, current) window result.
public struct WindowResult: Equatable, Sendable {
    public var key: String
    public var windowStart: TimestampNanos
    public var windowEnd: TimestampNanos
    public var state: AggregateState
    public var lineage: Lineage
    public var final: Bool

    /// The output record's JSON: key, window_start, window_end and one field per aggregate.
    public func json(_ spec: WindowSpec, fields: [String]) -> [UInt8] {
        let out = ByteWriter(capacity: 256)
        appendJSON(AggregateLayout(spec), to: out)
        return Array(out.bytes)
    }

    /// `json` written into `out`, with the job's aggregate layout worked out once.
    public func appendJSON(_ layout: AggregateLayout, to out: ByteWriter) {
        out.append(WindowResult.keyPrefix)
        JSONEscape.appendString(key, to: out)
        out.append(WindowResult.startPrefix)
        out.appendDecimalSeconds(windowStart)
        out.append(WindowResult.endPrefix)
        out.appendDecimalSeconds(windowEnd)
        out.append(UInt8(ascii: "\""))
        state.appendJSON(layout, to: out)
        out.append(UInt8(ascii: "}"))
    }

    static let keyPrefix = Array("{\"key\":".utf8)
    static let startPrefix = Array(",\"window_start\":\"".utf8)
    static let endPrefix = Array("\",\"window_end\":\"".utf8)
}

/// Second stage of a windowed aggregation, one per task: merges the partials of every
/// source for the keys this task owns and finalises a window when the task's *watermark*
/// — the smallest stream time among the sources that send it partials, tracked with the
/// copies a restarted sender sends again by `SourceProgress` — passes its end + grace.
/// Using the smallest, not the largest, makes the result independent of how fast each
/// source partition was read, so a replay equals the live run.
public final class WindowMerger {
    public let spec: WindowSpec
    private var windows: [TimestampNanos: [String: (AggregateState, Lineage)]] = [:]
    private var starts: [TimestampNanos] = []
    /// Contributions that arrived for a window already final (idle sources only).
    public private(set) var lateContributions: Int64 = 0
    /// The highest watermark windows were closed at.
    private var closedWatermark: TimestampNanos?
    private let fieldCount: Int

    public init(spec: WindowSpec) {
        self.spec = spec
        fieldCount = spec.fields.count
    }

    /// Merges one contribution (not a copy: the caller drops those). Returns the updated
    /// result for `emit: updates`, nil in final mode or for a window already final.
    public func apply(_ c: Contribution) -> WindowResult? {
        if let closed = closedWatermark, c.windowStart + spec.sizeNanos + spec.graceNanos <= closed {
            // The window was already final: only possible when an idle source woke up
            // (idle_timeout). One final result per window: count it, change nothing.
            lateContributions += 1
            return nil
        }
        if windows[c.windowStart] == nil {
            windows[c.windowStart] = [:]
            var i = starts.count
            while i > 0 && starts[i - 1] > c.windowStart { i -= 1 }
            starts.insert(c.windowStart, at: i)
        }
        var entry = windows[c.windowStart]![c.key] ?? (AggregateState(fields: fieldCount), Lineage())
        entry.0.merge(c.state)
        entry.1.merge(c.lineage)
        windows[c.windowStart]![c.key] = entry
        guard spec.emit == .updates else { return nil }
        return WindowResult(key: c.key, windowStart: c.windowStart, windowEnd: c.windowStart + spec.sizeNanos,
                            state: entry.0, lineage: entry.1, final: false)
    }

    /// Emits (final mode) and forgets every window `watermark` has closed.
    public func closeReady(watermark: TimestampNanos?, emit: (WindowResult) -> Void) {
        guard let w = watermark else { return }
        closedWatermark = max(closedWatermark ?? w, w)
        while let start = starts.first, start + spec.sizeNanos + spec.graceNanos <= w {
            starts.removeFirst()
            let keys = windows.removeValue(forKey: start) ?? [:]
            guard spec.emit == .final else { continue }
            for key in keys.keys.sorted() {
                emit(WindowResult(key: key, windowStart: start, windowEnd: start + spec.sizeNanos, state: keys[key]!.0,
                                  lineage: keys[key]!.1, final: true))
            }
        }
    }

    /// Open (not yet final) results, for queries.
    public func openResults() -> [WindowResult] {
        var out: [WindowResult] = []
        for start in starts {
            for (key, v) in windows[start]! {
                out.append(WindowResult(key: key, windowStart: start, windowEnd: start + spec.sizeNanos, state: v.0, lineage: v.1, final: false))
            }
        }
        return out
    }

    public var openWindows: Int { windows.values.reduce(0) { $0 + $1.count } }

    /// Checkpoint format 2: counters, then the open windows by start, keys in order.
    func encode(into w: ByteWriter) {
        w.put(lateContributions)
        w.put(closedWatermark)
        encodeWindows(into: w)
    }

    private func encodeWindows(into w: ByteWriter) {
        w.put(starts.count)
        for start in starts {
            let keys = windows[start]!
            w.put(start.rawValue)
            w.put(keys.count)
            for key in keys.keys.sorted() {
                w.put(key)
                keys[key]!.0.encode(into: w)
                keys[key]!.1.encode(into: w)
            }
        }
    }

    func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        lateContributions = try r.int64()
        closedWatermark = try r.timestamp()
        try decodeWindows(&r)
    }

    /// Format 1 kept the sources' stream times and sequences here; they now live in the
    /// task's `SourceProgress`, filled from what this returns.
    struct LegacySources {
        var streamTimes: [TimestampNanos?]
        var lastSequence: [Int64]
        var duplicates: Int64
    }

    func decodeLegacy(_ r: inout StateReader) throws(StateReader.Failure) -> LegacySources {
        let n = try r.count(max: 1 << 20)
        var out = LegacySources(streamTimes: [], lastSequence: [], duplicates: 0)
        for _ in 0..<n { out.streamTimes.append(try r.timestamp()) }
        for _ in 0..<n { out.lastSequence.append(try r.int64()) }
        out.duplicates = try r.int64()
        lateContributions = try r.int64()
        closedWatermark = try r.timestamp()
        try decodeWindows(&r)
        return out
    }

    private func decodeWindows(_ r: inout StateReader) throws(StateReader.Failure) {
        windows = [:]
        starts = []
        for _ in 0..<(try r.count()) {
            let start = TimestampNanos(try r.int64())
            guard windows[start] == nil, starts.last.map({ $0 < start }) ?? true else {
                throw StateReader.Failure(description: "window starts out of order at \(start)")
            }
            var keys: [String: (AggregateState, Lineage)] = [:]
            for _ in 0..<(try r.count()) {
                let key = try r.string()
                keys[key] = (try AggregateState.decode(&r, fields: fieldCount), try Lineage.decode(&r))
            }
            windows[start] = keys
            starts.append(start)
        }
    }
}
