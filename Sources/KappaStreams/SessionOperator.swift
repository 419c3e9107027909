import HeapModule
import KappaCore
import KappaJSON

/// One session: a key's events with no gap longer than `gap` between them, as it is
/// emitted (event types by name).
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

    public init(start: TimestampNanos, end: TimestampNanos, events: Int64, types: [(String, Int64)], lineage: Lineage) {
        self.start = start
        self.end = end
        self.events = events
        self.types = types
        self.lineage = lineage
    }

    /// `{"key","session_start","session_end","events","event_types"}`; types sorted by name.
    public func json(key: String) -> [UInt8] {
        let out = ByteWriter(capacity: 256)
        appendJSON(key: key, to: out)
        return Array(out.bytes)
    }

    /// `json(key:)` written into `out`.
    public func appendJSON(key: String, to out: ByteWriter) {
        var k = key
        k.withUTF8 { appendJSON(key: UnsafeRawBufferPointer($0), to: out) }
    }

    /// `json(key:)` written into `out`, the key given as its UTF-8 bytes.
    public func appendJSON(key: UnsafeRawBufferPointer, to out: ByteWriter) {
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
            for (i, t) in types.sorted(by: { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }).enumerated() {
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
///
/// Keys and event types are looked up by their bytes (`KeyIndex`): no String is made per
/// event. The key index only grows, so it is rebuilt with the keys that still have open
/// sessions once it holds twice as many as that (`compact`): memory follows the open
/// sessions, not the keys ever seen. Not thread-safe.
public final class Sessionizer {
    public let spec: SessionSpec
    /// The highest watermark sessions were closed at.
    public private(set) var closedWatermark: TimestampNanos?
    /// Events that reached a session already emitted (idle sources only, see above).
    public private(set) var lateAtOwner: Int64 = 0

    /// A session being built: event types by id in `types`.
    struct Open {
        var start: TimestampNanos
        var end: TimestampNanos
        var events: Int64
        var types: [(type: Int32, count: Int64)]
        var lineage: Lineage

        init(time: TimestampNanos, type: Int32?, partition: Int32, offset: Int64) {
            start = time
            end = time
            events = 1
            types = type.map { [(type: $0, count: Int64(1))] } ?? []
            lineage = Lineage()
            lineage.add(partition: partition, offset: offset)
        }

        @inline(__always)
        mutating func count(type: Int32, by n: Int64 = 1) {
            for i in types.indices where types[i].type == type {
                types[i].count += n
                return
            }
            types.append((type, n))
        }

        @inline(__always)
        mutating func addEvent(time: TimestampNanos, type: Int32?, partition: Int32, offset: Int64) {
            if time < start { start = time }
            if time > end { end = time }
            events += 1
            if let type { count(type: type) }
            lineage.add(partition: partition, offset: offset)
        }

        mutating func absorb(_ o: Open) {
            start = min(start, o.start)
            end = max(end, o.end)
            events += o.events
            for t in o.types { count(type: t.type, by: t.count) }
            lineage.merge(o.lineage)
        }
    }

    private var keys = KeyIndex(capacity: 1024)
    /// By key id: the key's open sessions, ascending by start (and so by end), disjoint.
    private var sessions: [[Open]] = []
    /// Key ids with open sessions.
    private var liveKeys = 0
    /// Event types interned (a handful per job), and their names by id for results.
    private var eventTypes = KeyIndex(capacity: 16)
    private var typeNames: [String] = []
    private var openCount = 0
    /// When keys may have a session to close: for every open session an entry whose
    /// bound is at most that session's end (pushed when a session is created; ends only
    /// grow, and a merged session keeps its parts' entries). `closeReady` pops what is
    /// below its horizon and looks only at those keys: O(ready), not O(open), per call.
    private var due = Heap<Due>()

    private struct Due: Comparable {
        var bound: TimestampNanos
        var key: Int32
        static func < (a: Due, b: Due) -> Bool { (a.bound, a.key) < (b.bound, b.key) }
    }

    public init(spec: SessionSpec) { self.spec = spec }

    /// `add` with the key and type as Strings (tests, tools).
    @discardableResult
    public func add(key: String, time: TimestampNanos, type: String?, partition: Int32, offset: Int64) -> Bool {
        var k = key
        return k.withUTF8 { kb in
            guard var t = type else { return add(key: UnsafeRawBufferPointer(kb), time: time, type: nil, partition: partition, offset: offset) }
            return t.withUTF8 { add(key: UnsafeRawBufferPointer(kb), time: time, type: UnsafeRawBufferPointer($0), partition: partition, offset: offset) }
        }
    }

    /// Folds one on-time event in, its key and type as UTF-8 bytes where they lie: the
    /// hot path. False (and counted) only when it could reach a session already emitted.
    @discardableResult
    public func add(key: UnsafeRawBufferPointer, time: TimestampNanos, type: UnsafeRawBufferPointer?, partition: Int32, offset: Int64) -> Bool {
        // Sessions emitted at `closed` ended before closed - gap - grace, so only an event
        // before closed - grace can reach one; an on-time event never is (see above).
        if let closed = closedWatermark, time < closed - spec.graceNanos {
            lateAtOwner += 1
            return false
        }
        let k = Int(keys.id(of: key))
        if k == sessions.count { sessions.append([]) }
        let typeId = type.map { typeID($0) }
        // In place, without copying the key's sessions: they are ordered and disjoint,
        // so those within `gap` of the event are consecutive. One: the event joins it
        // (the common case). Several: the event bridges them into the first. None: a new
        // session, in order.
        var first = -1, last = -1
        for i in sessions[k].indices {
            let start = sessions[k][i].start, end = sessions[k][i].end
            if time >= start - spec.gapNanos && time <= end + spec.gapNanos {
                if first < 0 { first = i }
                last = i
            } else if first >= 0 {
                break
            }
        }
        if first >= 0 {
            sessions[k][first].addEvent(time: time, type: typeId, partition: partition, offset: offset)
            if last > first {
                for j in (first + 1)...last {
                    let other = sessions[k][j]
                    sessions[k][first].absorb(other)
                }
                sessions[k].removeSubrange((first + 1)...last)
                openCount -= last - first
            }
            // The merged session keeps the `due` entry of its first part: its end only grew.
            return true
        }
        if sessions[k].isEmpty { liveKeys += 1 }
        var i = sessions[k].count
        while i > 0 && sessions[k][i - 1].start > time { i -= 1 }
        sessions[k].insert(Open(time: time, type: typeId, partition: partition, offset: offset), at: i)
        openCount += 1
        due.insert(Due(bound: time, key: Int32(k)))
        return true
    }

    @inline(__always)
    private func typeID(_ name: UnsafeRawBufferPointer) -> Int32 {
        let id = eventTypes.id(of: name)
        if Int(id) == typeNames.count { typeNames.append(String(decoding: name, as: UTF8.self)) }
        return id
    }

    private func typeID(_ name: String) -> Int32 {
        var n = name
        return n.withUTF8 { typeID(UnsafeRawBufferPointer($0)) }
    }

    /// `closeReady` with keys as Strings (tests, tools).
    public func closeReady(watermark: TimestampNanos?, emit: (String, Session) -> Void) {
        closeReadyRaw(watermark: watermark) { emit(String(decoding: $0, as: UTF8.self), $1) }
    }

    /// Emits and forgets every session final at `watermark`, ordered by (end, key bytes,
    /// start) so that the output does not depend on hashing; each key as its bytes, valid
    /// during the call.
    func closeReadyRaw(watermark: TimestampNanos?, emit: (UnsafeRawBufferPointer, Session) -> Void) {
        guard let st = watermark else { return }
        closedWatermark = max(closedWatermark ?? st, st)
        let horizon = st - spec.gapNanos - spec.graceNanos  // final when end < horizon
        var ready: [(key: Int32, session: Open)] = []
        while let next = due.min, next.bound < horizon {
            let k = Int(due.removeMin().key)
            guard !sessions[k].isEmpty else { continue }  // closed already
            // A key's sessions are ordered by end too: the final ones are a prefix.
            var n = 0
            while n < sessions[k].count && sessions[k][n].end < horizon {
                ready.append((Int32(k), sessions[k][n]))
                n += 1
            }
            if n == sessions[k].count {
                sessions[k] = []
                liveKeys -= 1
            } else {
                sessions[k].removeFirst(n)
                // The popped entry may have been the only one left for these sessions.
                due.insert(Due(bound: sessions[k][0].end, key: Int32(k)))
            }
        }
        guard !ready.isEmpty else { return }
        openCount -= ready.count
        ready.sort { a, b in
            if a.session.end != b.session.end { return a.session.end < b.session.end }
            if a.key != b.key { return keys.precedes(Int(a.key), Int(b.key)) }
            return a.session.start < b.session.start
        }
        for r in ready { keys.withKey(Int(r.key)) { emit($0, session(r.session)) } }
        if keys.count >= 2 * max(liveKeys, 4096) { compact() }
    }

    /// The emitted form of an open session: event types by name.
    private func session(_ o: Open) -> Session {
        Session(start: o.start, end: o.end, events: o.events, types: o.types.map { (typeNames[Int($0.type)], $0.count) }, lineage: o.lineage)
    }

    /// Rebuilds the key index with the keys that have open sessions.
    private func compact() {
        let fresh = KeyIndex(capacity: max(1024, liveKeys * 2))
        var kept: [[Open]] = []
        kept.reserveCapacity(liveKeys)
        var entries: [Due] = []
        entries.reserveCapacity(liveKeys)
        for k in sessions.indices where !sessions[k].isEmpty {
            let id = keys.withKey(k) { fresh.id(of: $0) }
            precondition(Int(id) == kept.count)
            kept.append(sessions[k])
            entries.append(Due(bound: sessions[k][0].end, key: id))
        }
        keys = fresh
        sessions = kept
        due = Heap(entries)
    }

    public var openSessions: Int { openCount }
    /// Keys in the index (open ones, and closed ones not yet compacted away).
    var indexedKeys: Int { keys.count }

    public func openResults() -> [(String, Session)] {
        sessions.indices.flatMap { k in sessions[k].map { (keys.key(k), session($0)) } }
    }

    /// Keys with open sessions, in byte order (deterministic checkpoints).
    private var liveKeyIDs: [Int] { keys.sortedByKey(sessions.indices.filter { !sessions[$0].isEmpty }) }

    func encode(into w: ByteWriter) {
        w.put(closedWatermark)
        w.put(lateAtOwner)
        let live = liveKeyIDs
        w.put(live.count)
        for k in live {
            keys.withKey(k) { w.put($0) }
            w.put(sessions[k].count)
            for s in sessions[k] {
                w.put(s.start.rawValue)
                w.put(s.end.rawValue)
                w.put(s.events)
                w.put(s.types.count)
                for t in s.types {
                    w.put(typeNames[Int(t.type)])
                    w.put(t.count)
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
        keys = KeyIndex(capacity: 1024)
        sessions = []
        eventTypes = KeyIndex(capacity: 16)
        typeNames = []
        liveKeys = 0
        openCount = 0
        var entries: [Due] = []
        for _ in 0..<(try r.count()) {
            let key = try r.string()
            let k = Int(keys.id(of: key))
            guard k == sessions.count else { throw StateReader.Failure(description: "key '\(key)' twice") }
            var list: [Open] = []
            for _ in 0..<(try r.count()) {
                var s = Open(time: TimestampNanos(try r.int64()), type: nil, partition: 0, offset: 0)
                s.end = TimestampNanos(try r.int64())
                s.events = try r.int64()
                for _ in 0..<(try r.count(max: 1 << 16)) { s.types.append((typeID(try r.string()), try r.int64())) }
                s.lineage = try Lineage.decode(&r)
                guard s.start <= s.end, list.last.map({ $0.end < s.start }) ?? true else {
                    throw StateReader.Failure(description: "sessions of key '\(key)' overlap or are out of order")
                }
                list.append(s)
            }
            sessions.append(list)
            if let first = list.first {
                liveKeys += 1
                entries.append(Due(bound: first.end, key: Int32(k)))
            }
            openCount += list.count
        }
        due = Heap(entries)
    }
}
