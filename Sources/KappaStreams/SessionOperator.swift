import HeapModule
import KappaCore
import KappaJSON

/// One session: a key's events with no gap longer than `gap` between them.
public struct Session: Equatable, Sendable {
    public var start: TimestampNanos
    public var end: TimestampNanos
    public var events: Int64
    /// Counts per event type, in first-seen order (few types; a list beats a hash map).
    public var types: [(String, Int64)]
    public var lineage: Lineage

    public static func == (a: Session, b: Session) -> Bool {
        a.start == b.start && a.end == b.end && a.events == b.events && a.lineage == b.lineage
            && a.types.map(\.0) == b.types.map(\.0) && a.types.map(\.1) == b.types.map(\.1)
    }

    /// A session of one event.
    init(time: TimestampNanos, type: String?, partition: Int32, offset: Int64) {
        self.init(start: time, end: time, events: 1, types: [], lineage: Lineage())
        if let type { count(type: type) }
        lineage.add(partition: partition, offset: offset)
    }

    public init(start: TimestampNanos, end: TimestampNanos, events: Int64, types: [(String, Int64)], lineage: Lineage) {
        self.start = start
        self.end = end
        self.events = events
        self.types = types
        self.lineage = lineage
    }

    mutating func count(type: String, by n: Int64 = 1) {
        if let i = types.firstIndex(where: { $0.0 == type }) { types[i].1 += n } else { types.append((type, n)) }
    }

    @inline(__always)
    mutating func addEvent(time: TimestampNanos, type: String?, partition: Int32, offset: Int64) {
        if time < start { start = time }
        if time > end { end = time }
        events += 1
        if let type { count(type: type) }
        lineage.add(partition: partition, offset: offset)
    }

    mutating func absorb(_ o: Session) {
        start = min(start, o.start)
        end = max(end, o.end)
        events += o.events
        for (t, n) in o.types { count(type: t, by: n) }
        lineage.merge(o.lineage)
    }

    /// `{"key","session_start","session_end","events","event_types"}`; types sorted by name.
    public func json(key: String) -> [UInt8] {
        let out = ByteWriter(capacity: 256)
        appendJSON(key: key, to: out)
        return Array(out.bytes)
    }

    /// `json(key:)` written into `out`.
    public func appendJSON(key: String, to out: ByteWriter) {
        out.append(Session.keyPrefix)
        JSONEscape.appendString(key, to: out)
        out.append(Session.startPrefix)
        out.appendDecimalSeconds(start)
        out.append(Session.endPrefix)
        out.appendDecimalSeconds(end)
        out.append(Session.eventsPrefix)
        out.appendInteger(events)
        out.append(Session.typesPrefix)
        if types.count == 1 {
            appendType(types[0], to: out)
        } else {
            for (i, t) in types.sorted(by: { $0.0 < $1.0 }).enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendType(t, to: out)
            }
        }
        out.append(UInt8(ascii: "}"))
        out.append(UInt8(ascii: "}"))
    }

    private func appendType(_ t: (String, Int64), to out: ByteWriter) {
        JSONEscape.appendString(t.0, to: out)
        out.append(UInt8(ascii: ":"))
        out.appendInteger(t.1)
    }

    static let keyPrefix = Array("{\"key\":".utf8)
    static let startPrefix = Array(",\"session_start\":\"".utf8)
    static let endPrefix = Array("\",\"session_end\":\"".utf8)
    static let eventsPrefix = Array("\",\"events\":".utf8)
    static let typesPrefix = Array(",\"event_types\":{".utf8)
}

/// Sessionisation at the task that owns a set of keys: groups each key's events into
/// sessions separated by more than `gap`; an event within `gap` of two sessions merges
/// them. Lateness is judged before an event gets here, against the stream time of the
/// source it was read from (`StreamClock`): an event more than `grace` behind it is late
/// and never added. A session is final once the *watermark* — the smallest stream time
/// among the sources that send this task events (`SourceProgress`) — passes its last
/// event + gap + grace; it is then emitted and forgotten, so memory holds only the open
/// sessions. The two rules fit: an on-time event is at most grace behind its source's
/// stream time, which is at least the watermark, so it can never touch a session already
/// emitted. (Only a source that went idle under `idle_timeout` and woke up can break
/// that; such an event is counted in `lateAtOwner` and dropped.)
public final class Sessionizer {
    public let spec: SessionSpec
    /// The highest watermark sessions were closed at.
    public private(set) var closedWatermark: TimestampNanos?
    /// Events that reached a session already emitted (idle sources only, see above).
    public private(set) var lateAtOwner: Int64 = 0
    private var sessions: [String: [Session]] = [:]  // per key, ascending by start (and end), disjoint
    private var openCount = 0
    /// When keys may have a session to close: for every open session an entry whose
    /// bound is at most that session's end (pushed when a session is created; ends only
    /// grow, and a merged session keeps its parts' entries). `closeReady` pops what is
    /// below its horizon and looks only at those keys: O(ready), not O(open), per call.
    private var due = Heap<Due>()

    private struct Due: Comparable {
        var bound: TimestampNanos
        var key: String
        static func < (a: Due, b: Due) -> Bool { (a.bound, a.key) < (b.bound, b.key) }
    }

    public init(spec: SessionSpec) { self.spec = spec }

    /// Folds one on-time event in. False (and counted) only when it could reach a
    /// session already emitted.
    @discardableResult
    public func add(key: String, time: TimestampNanos, type: String?, partition: Int32, offset: Int64) -> Bool {
        // Sessions emitted at `closed` ended before closed - gap - grace, so only an event
        // before closed - grace can reach one; an on-time event never is (see above).
        if let closed = closedWatermark, time < closed - spec.graceNanos {
            lateAtOwner += 1
            return false
        }
        // In place, without copying the key's sessions: they are ordered and disjoint,
        // so those within `gap` of the event are consecutive. One: the event joins it
        // (the common case). Several: the event bridges them into the first. None: a new
        // session, in order.
        guard let index = sessions.index(forKey: key) else {
            sessions[key] = [Session(time: time, type: type, partition: partition, offset: offset)]
            openCount += 1
            due.insert(Due(bound: time, key: key))
            return true
        }
        var first = -1, last = -1
        for i in sessions.values[index].indices {
            let start = sessions.values[index][i].start, end = sessions.values[index][i].end
            if time >= start - spec.gapNanos && time <= end + spec.gapNanos {
                if first < 0 { first = i }
                last = i
            } else if first >= 0 {
                break
            }
        }
        if first >= 0 {
            sessions.values[index][first].addEvent(time: time, type: type, partition: partition, offset: offset)
            if last > first {
                for j in (first + 1)...last {
                    let other = sessions.values[index][j]
                    sessions.values[index][first].absorb(other)
                }
                sessions.values[index].removeSubrange((first + 1)...last)
                openCount -= last - first
            }
            // The merged session keeps the `due` entry of its first part: its end only grew.
            return true
        }
        var i = sessions.values[index].count
        while i > 0 && sessions.values[index][i - 1].start > time { i -= 1 }
        sessions.values[index].insert(Session(time: time, type: type, partition: partition, offset: offset), at: i)
        openCount += 1
        due.insert(Due(bound: time, key: key))
        return true
    }

    /// Emits and forgets every session final at `watermark`, ordered by (end, key) so
    /// that the output does not depend on hashing.
    public func closeReady(watermark: TimestampNanos?, emit: (String, Session) -> Void) {
        guard let st = watermark else { return }
        closedWatermark = max(closedWatermark ?? st, st)
        let horizon = st - spec.gapNanos - spec.graceNanos  // final when end < horizon
        var ready: [(String, Session)] = []
        while let next = due.min, next.bound < horizon {
            let key = due.removeMin().key
            guard let index = sessions.index(forKey: key) else { continue }  // closed already
            // A key's sessions are ordered by end too: the final ones are a prefix.
            var k = 0
            while k < sessions.values[index].count && sessions.values[index][k].end < horizon {
                ready.append((key, sessions.values[index][k]))
                k += 1
            }
            if k == sessions.values[index].count {
                sessions.remove(at: index)
            } else {
                sessions.values[index].removeFirst(k)
                // The popped entry may have been the only one left for these sessions.
                due.insert(Due(bound: sessions.values[index][0].end, key: key))
            }
        }
        openCount -= ready.count
        ready.sort { ($0.1.end, $0.0, $0.1.start) < ($1.1.end, $1.0, $1.1.start) }
        for (k, s) in ready { emit(k, s) }
    }

    public var openSessions: Int { openCount }

    public func openResults() -> [(String, Session)] {
        sessions.flatMap { k, list in list.map { (k, $0) } }
    }

    func encode(into w: ByteWriter) {
        w.put(closedWatermark)
        w.put(lateAtOwner)
        w.put(sessions.count)
        for key in sessions.keys.sorted() {
            w.put(key)
            let list = sessions[key]!
            w.put(list.count)
            for s in list {
                w.put(s.start.rawValue)
                w.put(s.end.rawValue)
                w.put(s.events)
                w.put(s.types.count)
                for (t, n) in s.types {
                    w.put(t)
                    w.put(n)
                }
                s.lineage.encode(into: w)
            }
        }
    }

    /// Decodes the layout `encode` writes (checkpoint format 2).
    func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        let closed = try r.timestamp()
        let late = try r.int64()
        try decodeSessions(&r, closedWatermark: closed)
        lateAtOwner = late
    }

    /// Decodes the open sessions (format 1 began with the task's stream time and late
    /// count instead of the two counters; the task reads those and calls this).
    func decodeSessions(_ r: inout StateReader, closedWatermark: TimestampNanos?) throws(StateReader.Failure) {
        self.closedWatermark = closedWatermark
        lateAtOwner = 0
        sessions = [:]
        due = Heap()
        openCount = 0
        for _ in 0..<(try r.count()) {
            let key = try r.string()
            var list: [Session] = []
            for _ in 0..<(try r.count()) {
                var s = Session(start: TimestampNanos(try r.int64()), end: TimestampNanos(try r.int64()), events: try r.int64(), types: [], lineage: Lineage())
                for _ in 0..<(try r.count(max: 1 << 16)) { s.types.append((try r.string(), try r.int64())) }
                s.lineage = try Lineage.decode(&r)
                list.append(s)
            }
            openCount += list.count
            sessions[key] = list
            if let first = list.first { due.insert(Due(bound: first.end, key: key)) }
        }
    }
}
