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

/// A window partial inside a process: a `Contribution` whose key is its bytes, valid
/// during the call it is passed to (no String per partial).
struct PartialRef {
    var key: UnsafeRawBufferPointer
    var windowStart: TimestampNanos
    var state: AggregateState
    var lineage: Lineage
    var source: Int32
    var sequence: Int64
}

extension Contribution {
    init(_ p: PartialRef) {
        self.init(key: String(decoding: p.key, as: UTF8.self), windowStart: p.windowStart, state: p.state, lineage: p.lineage,
                  source: p.source, sequence: p.sequence)
    }

    /// Calls `body` with this contribution as a `PartialRef`.
    func withRef<R>(_ body: (PartialRef) -> R) -> R {
        var k = key
        return k.withUTF8 { body(PartialRef(key: UnsafeRawBufferPointer($0), windowStart: windowStart, state: state, lineage: lineage,
                                            source: source, sequence: sequence)) }
    }
}

/// The per-key aggregates of one window, keys interned by their bytes. Ids follow first
/// appearance; `idsByKey` orders them by key bytes, and skips the sort when the keys
/// came in that order (a window's partials from one source do).
final class KeyedWindow {
    let keys = KeyIndex()
    var states: [AggregateState] = []
    var lineages: [Lineage] = []
    private var inKeyOrder = true

    var count: Int { states.count }

    /// The id of `key`, with an empty aggregate if it is new.
    @inline(__always)
    func id(of key: UnsafeRawBufferPointer, fields: Int) -> Int {
        let id = Int(keys.id(of: key))
        if id == states.count {
            states.append(AggregateState(fields: fields))
            lineages.append(Lineage())
            if inKeyOrder && id > 0 && !keys.precedes(id - 1, id) { inKeyOrder = false }
        }
        return id
    }

    /// Ids in the order of their keys' bytes: output and checkpoints that do not depend
    /// on hashing.
    var idsByKey: [Int] { inKeyOrder ? Array(states.indices) : keys.sortedByKey(Array(states.indices)) }

    /// Restores a key read from a checkpoint; false if it is there already.
    func restore(key: String, state: AggregateState, lineage: Lineage) -> Bool {
        let fields = state.fields.count, before = states.count
        var k = key
        let id: Int = k.withUTF8 { self.id(of: UnsafeRawBufferPointer($0), fields: fields) }
        guard id == before else { return false }
        states[id] = state
        lineages[id] = lineage
        return true
    }

    func encode(into w: ByteWriter) {
        w.put(states.count)
        for id in idsByKey {
            keys.withKey(id) { w.put($0) }
            states[id].encode(into: w)
            lineages[id].encode(into: w)
        }
    }

    static func decode(_ r: inout StateReader, fields: Int, start: TimestampNanos) throws(StateReader.Failure) -> KeyedWindow {
        let window = KeyedWindow()
        for _ in 0..<(try r.count()) {
            let key = try r.string()
            let state = try AggregateState.decode(&r, fields: fields)
            let lineage = try Lineage.decode(&r)
            guard window.restore(key: key, state: state, lineage: lineage) else {
                throw StateReader.Failure(description: "key '\(key)' twice in window \(start)")
            }
        }
        return window
    }
}

/// Open windows by start, oldest first: the state both stages keep.
struct OpenWindows {
    private(set) var byStart: [TimestampNanos: KeyedWindow] = [:]
    private(set) var starts: [TimestampNanos] = []  // ascending

    var oldest: TimestampNanos? { starts.first }
    var isEmpty: Bool { starts.isEmpty }
    var partials: Int { byStart.values.reduce(0) { $0 + $1.count } }

    subscript(start: TimestampNanos) -> KeyedWindow? { byStart[start] }

    /// The window starting at `start`, opened if new.
    mutating func window(_ start: TimestampNanos) -> KeyedWindow {
        if let found = byStart[start] { return found }
        let w = KeyedWindow()
        byStart[start] = w
        var i = starts.count
        while i > 0 && starts[i - 1] > start { i -= 1 }
        starts.insert(start, at: i)
        return w
    }

    /// Removes the oldest window.
    mutating func removeOldest() -> (TimestampNanos, KeyedWindow) {
        let start = starts.removeFirst()
        return (start, byStart.removeValue(forKey: start)!)
    }

    func encode(into w: ByteWriter) {
        w.put(starts.count)
        for start in starts {
            w.put(start.rawValue)
            byStart[start]!.encode(into: w)
        }
    }

    static func decode(_ r: inout StateReader, fields: Int) throws(StateReader.Failure) -> OpenWindows {
        var out = OpenWindows()
        for _ in 0..<(try r.count()) {
            let start = TimestampNanos(try r.int64())
            guard out.starts.last.map({ $0 < start }) ?? true else {
                throw StateReader.Failure(description: "window starts out of order at \(start)")
            }
            out.byStart[start] = try KeyedWindow.decode(&r, fields: fields, start: start)
            out.starts.append(start)
        }
        return out
    }
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
    private var windows = OpenWindows()
    // Consecutive events mostly share a window. Unretained: `windows` owns it, and the
    // cache is cleared whenever a window leaves `windows`.
    private var recentStart = TimestampNanos(.min)
    private var recentWindow: Unmanaged<KeyedWindow>?
    private let fieldCount: Int

    public init(spec: WindowSpec, source: Int32) {
        self.spec = spec
        self.source = source
        fieldCount = spec.fields.count
    }

    /// `add` with the key as a String, emitting Contributions (tests, tools).
    public func add(key: String, time: TimestampNanos, values: UnsafeBufferPointer<Decimal9?>, partition: Int32, offset: Int64,
                    emit: (Contribution) -> Void) -> Bool {
        var k = key
        return k.withUTF8 {
            add(key: UnsafeRawBufferPointer($0), time: time, values: values, partition: partition, offset: offset) { emit(Contribution($0)) }
        }
    }

    /// Folds one event in, its key's UTF-8 bytes as they lie in the record: the hot path.
    /// Returns false when it is late: at least one of its windows had already closed (it
    /// still counts toward the windows that are open).
    func add(key: UnsafeRawBufferPointer, time: TimestampNanos, values: UnsafeBufferPointer<Decimal9?>, partition: Int32, offset: Int64,
             emit: (PartialRef) -> Void) -> Bool {
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
                emit(PartialRef(key: key, windowStart: start, state: s, lineage: l, source: source, sequence: sequence))
                continue
            }
            // `windows` keeps the window alive: borrow it rather than retain it per event.
            window(start)._withUnsafeGuaranteedRef { w in
                let id = w.id(of: key, fields: fieldCount)
                w.states[id].add(values)
                w.lineages[id].add(partition: partition, offset: offset)
            }
        }
        if late { lateEvents += 1 }
        return !late
    }

    @inline(__always)
    private func window(_ start: TimestampNanos) -> Unmanaged<KeyedWindow> {
        if recentStart == start, let r = recentWindow { return r }
        recentStart = start
        recentWindow = Unmanaged.passUnretained(windows.window(start))
        return recentWindow!
    }

    /// `closeReady` emitting Contributions (tests, tools).
    public func closeReady(emit: (Contribution) -> Void) {
        closeReady { (p: PartialRef) in emit(Contribution(p)) }
    }

    /// Sends the partials of every window closed by stream time, oldest window first,
    /// keys in byte order (so the output does not depend on hashing).
    func closeReady(emit: (PartialRef) -> Void) {
        guard let st = streamTime else { return }
        while let start = windows.oldest, start + spec.sizeNanos + spec.graceNanos <= st {
            let (_, w) = windows.removeOldest()
            if recentStart == start { recentWindow = nil }
            for id in w.idsByKey {
                sequence += 1
                w.keys.withKey(id) {
                    emit(PartialRef(key: $0, windowStart: start, state: w.states[id], lineage: w.lineages[id], source: source, sequence: sequence))
                }
            }
        }
    }

    public var openWindows: Int { windows.partials }

    /// Partials not yet sent (windows still open at this source), for queries.
    public func openPartials() -> [Contribution] {
        var out: [Contribution] = []
        for start in windows.starts {
            let w = windows[start]!
            for id in w.states.indices {
                out.append(Contribution(key: w.keys.key(id), windowStart: start, state: w.states[id], lineage: w.lineages[id],
                                        source: source, sequence: 0))
            }
        }
        return out
    }

    func encode(into w: ByteWriter) {
        w.put(streamTime)
        w.put(sequence)
        w.put(lateEvents)
        windows.encode(into: w)
    }

    func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        streamTime = try r.timestamp()
        sequence = try r.int64()
        lateEvents = try r.int64()
        recentWindow = nil
        recentStart = TimestampNanos(.min)
        windows = try OpenWindows.decode(&r, fields: fieldCount)
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

    public init(key: String, windowStart: TimestampNanos, windowEnd: TimestampNanos, state: AggregateState, lineage: Lineage, final: Bool) {
        self.key = key
        self.windowStart = windowStart
        self.windowEnd = windowEnd
        self.state = state
        self.lineage = lineage
        self.final = final
    }

    init(_ r: ResultRef) {
        self.init(key: String(decoding: r.key, as: UTF8.self), windowStart: r.windowStart, windowEnd: r.windowEnd, state: r.state,
                  lineage: r.lineage, final: r.final)
    }

    /// The output record's JSON: key, window_start, window_end and one field per aggregate.
    public func json(_ spec: WindowSpec, fields: [String]) -> [UInt8] {
        let out = ByteWriter(capacity: 256)
        appendJSON(AggregateLayout(spec), to: out)
        return Array(out.bytes)
    }

    /// `json` written into `out`, with the job's aggregate layout worked out once.
    public func appendJSON(_ layout: AggregateLayout, to out: ByteWriter) {
        var k = key
        k.withUTF8 {
            ResultRef(key: UnsafeRawBufferPointer($0), windowStart: windowStart, windowEnd: windowEnd, state: state, lineage: lineage, final: final)
                .appendJSON(layout, to: out)
        }
    }
}

/// A window result inside a process: a `WindowResult` whose key is its bytes, valid
/// during the call it is passed to.
struct ResultRef {
    var key: UnsafeRawBufferPointer
    var windowStart: TimestampNanos
    var windowEnd: TimestampNanos
    var state: AggregateState
    var lineage: Lineage
    var final: Bool

    /// The output record's JSON (see `WindowResult.json`).
    func appendJSON(_ layout: AggregateLayout, to out: ByteWriter) {
        out.append(Self.keyPrefix)
        JSONEscape.appendString(key, to: out)
        out.append(Self.startPrefix)
        out.appendDecimalSeconds(windowStart)
        out.append(Self.endPrefix)
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
    private var windows = OpenWindows()
    /// Contributions that arrived for a window already final (idle sources only).
    public private(set) var lateContributions: Int64 = 0
    /// The highest watermark windows were closed at.
    private var closedWatermark: TimestampNanos?
    private let fieldCount: Int

    public init(spec: WindowSpec) {
        self.spec = spec
        fieldCount = spec.fields.count
    }

    /// `apply` for a Contribution, returning the update (tests, tools).
    public func apply(_ c: Contribution) -> WindowResult? {
        var update: WindowResult?
        c.withRef { apply($0) { update = WindowResult($0) } }
        return update
    }

    /// Merges one partial (not a copy: the caller drops those). With `emit: updates`,
    /// emits the updated result; nothing in final mode or for a window already final.
    func apply(_ c: PartialRef, emit: (ResultRef) -> Void) {
        if let closed = closedWatermark, c.windowStart + spec.sizeNanos + spec.graceNanos <= closed {
            // The window was already final: only possible when an idle source woke up
            // (idle_timeout). One final result per window: count it, change nothing.
            lateContributions += 1
            return
        }
        let w = windows.window(c.windowStart)
        let id = w.id(of: c.key, fields: fieldCount)
        w.states[id].merge(c.state)
        w.lineages[id].merge(c.lineage)
        guard spec.emit == .updates else { return }
        emit(ResultRef(key: c.key, windowStart: c.windowStart, windowEnd: c.windowStart + spec.sizeNanos,
                       state: w.states[id], lineage: w.lineages[id], final: false))
    }

    /// `closeReady` emitting WindowResults (tests, tools).
    public func closeReady(watermark: TimestampNanos?, emit: (WindowResult) -> Void) {
        closeReady(watermark: watermark) { (r: ResultRef) in emit(WindowResult(r)) }
    }

    /// Emits (final mode) and forgets every window `watermark` has closed, oldest first,
    /// keys in byte order.
    func closeReady(watermark: TimestampNanos?, emit: (ResultRef) -> Void) {
        guard let wm = watermark else { return }
        closedWatermark = max(closedWatermark ?? wm, wm)
        while let start = windows.oldest, start + spec.sizeNanos + spec.graceNanos <= wm {
            let (_, w) = windows.removeOldest()
            guard spec.emit == .final else { continue }
            for id in w.idsByKey {
                w.keys.withKey(id) {
                    emit(ResultRef(key: $0, windowStart: start, windowEnd: start + spec.sizeNanos, state: w.states[id],
                                   lineage: w.lineages[id], final: true))
                }
            }
        }
    }

    /// Open (not yet final) results, for queries.
    public func openResults() -> [WindowResult] {
        var out: [WindowResult] = []
        for start in windows.starts {
            let w = windows[start]!
            for id in w.states.indices {
                out.append(WindowResult(key: w.keys.key(id), windowStart: start, windowEnd: start + spec.sizeNanos, state: w.states[id],
                                        lineage: w.lineages[id], final: false))
            }
        }
        return out
    }

    public var openWindows: Int { windows.partials }

    /// Checkpoint format 2: counters, then the open windows by start, keys in order.
    func encode(into w: ByteWriter) {
        w.put(lateContributions)
        w.put(closedWatermark)
        windows.encode(into: w)
    }

    func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        lateContributions = try r.int64()
        closedWatermark = try r.timestamp()
        windows = try OpenWindows.decode(&r, fields: fieldCount)
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
        windows = try OpenWindows.decode(&r, fields: fieldCount)
        return out
    }
}
