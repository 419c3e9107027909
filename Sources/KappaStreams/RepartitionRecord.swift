import KappaCore
import KappaFormat

/// What a task sends through its job version's repartition topic, `JOB.vN.repartition`
/// (internal, binary, N partitions; partition `t` is read by task `t`). The value starts
/// with a kind byte, then the sending source's global id (`JobPlan.sourceId`):
///
/// ```
/// 1 contribution  source seq windowStart state lineage      a window's partial; key = group key
/// 2 watermark     source streamTime idle                     the source's stream time; no key
/// 3 events        source kind count firstOffset firstTime    on-time events of one source, in
///                 (offsetDelta timeDelta key text)…           offset order; no record key
/// ```
/// Integers are zigzag varints. In an events record, `kind` says what the events are
/// (`Event`: a session's events, whose `text` is the type with a presence byte before
/// it; a match's rides or tickets, whose `text` is the id); each event's offset and time
/// are deltas from the one before (the first from `firstOffset`/`firstTime`, so the first
/// deltas are 0), `key` and `text` length-prefixed. Many events share one record: the
/// per-record framing of a Kafka batch (eight varints and a CRC'd length) would cost
/// more than the event. A source numbers what it sends in increasing order — a counter
/// for window partials, the input offset for forwarded events, deterministic whatever a
/// restarted task reads first — so an owner drops the copies a restarted sender sends
/// again. Decoding checks every length and the source id's range: a damaged record is an
/// error, never a crash.
enum RepartitionRecord {
    enum Kind: UInt8, CustomStringConvertible {
        case contribution = 1
        case watermark = 2
        case events = 3

        var description: String {
            switch self {
            case .contribution: "window partial"
            case .watermark: "watermark"
            case .events: "events"
            }
        }
    }

    /// What the events of an events record are.
    enum Event: UInt8, CustomStringConvertible {
        case session = 1
        case ride = 2
        case ticket = 3

        var description: String {
            switch self {
            case .session: "session event"
            case .ride: "ride"
            case .ticket: "ticket"
            }
        }
    }

    // MARK: encoding (into a reusable writer, emptied first)

    static func encodeContribution(_ c: PartialRef, into w: ByteWriter) {
        w.removeAll()
        w.append(Kind.contribution.rawValue)
        w.put(Int64(c.source))
        w.put(c.sequence)
        w.put(c.windowStart.rawValue)
        c.state.encode(into: w)
        c.lineage.encode(into: w)
    }

    static func encodeWatermark(source: Int32, streamTime: TimestampNanos, idle: Bool, into w: ByteWriter) {
        w.removeAll()
        w.append(Kind.watermark.rawValue)
        w.put(Int64(source))
        w.put(streamTime.rawValue)
        w.put(idle)
    }

    // MARK: decoding

    /// A decoded record; byte fields point into the record and are valid while it is.
    /// Plain values only (no references to count).
    struct Decoded {
        var kind: Kind
        var source: Int32
        /// Contributions: the sequence. Watermarks: the stream time.
        var sequence: Int64 = 0
        var idle = false
        /// Contributions: the rest of the value (window start, state, lineage), for
        /// `contribution(key:_:fields:)`. Events: the events, for `EventReader`.
        var body: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Decodes one record's value up to its body. `sources`: how many source ids the
    /// plan has.
    @inline(__always)
    static func decode(value: UnsafeRawBufferPointer, sources: Int32) throws(Failure) -> Decoded {
        guard let first = value.first, let kind = Kind(rawValue: first) else {
            throw Failure(description: value.isEmpty ? "empty record" : "unknown kind \(value[0])")
        }
        var r = StateReader(value)
        r.position = 1
        do throws(StateReader.Failure) {
            let source = try r.int64()
            guard source >= 0 && source < Int64(sources) else {
                throw StateReader.Failure(description: "source \(source) out of range 0..<\(sources)")
            }
            var d = Decoded(kind: kind, source: Int32(source))
            switch kind {
            case .contribution:
                d.sequence = try r.int64()
                d.body = UnsafeRawBufferPointer(rebasing: value[r.position...])
            case .watermark:
                d.sequence = try r.int64()
                d.idle = try r.bool()
                guard r.isAtEnd else { throw StateReader.Failure(description: "\(value.count - r.position) unexpected bytes") }
            case .events:
                d.body = UnsafeRawBufferPointer(rebasing: value[r.position...])
            }
            return d
        } catch {
            throw Failure(description: error.description)
        }
    }

    /// The window partial of a decoded contribution record.
    static func contribution(key: UnsafeRawBufferPointer?, _ d: Decoded, fields: Int) throws(Failure) -> PartialRef {
        precondition(d.kind == .contribution)
        var r = StateReader(d.body)
        do throws(StateReader.Failure) {
            let start = TimestampNanos(try r.int64())
            let state = try AggregateState.decode(&r, fields: fields)
            let lineage = try Lineage.decode(&r)
            guard r.isAtEnd else { throw StateReader.Failure(description: "\(d.body.count - r.position) unexpected bytes") }
            return PartialRef(key: key ?? UnsafeRawBufferPointer(start: nil, count: 0), windowStart: start, state: state, lineage: lineage,
                              source: d.source, sequence: d.sequence)
        } catch {
            throw Failure(description: error.description)
        }
    }
}

/// Builds one events record (see `RepartitionRecord`) for one source and destination.
/// Not thread-safe; reused after `reset`.
final class EventBundle {
    let bytes = ByteWriter(capacity: 1024)
    private(set) var source: Int32 = -1
    private(set) var event: RepartitionRecord.Event = .session
    private(set) var count = 0
    private(set) var firstTime = TimestampNanos(0)
    private var countPosition = 0
    private var lastOffset: Int64 = 0
    private var lastTime: Int64 = 0

    /// A record of this many bytes is sent and a new one begun.
    static let bytesMax = 32 << 10
    /// The count is a fixed 4-byte field so it can be written last.
    private static let countBytes = 4

    var isEmpty: Bool { count == 0 }

    /// Starts a record of `event`s from `source`.
    func begin(source: Int32, event: RepartitionRecord.Event, offset: Int64, time: TimestampNanos) {
        precondition(isEmpty)
        self.source = source
        self.event = event
        bytes.removeAll()
        bytes.append(RepartitionRecord.Kind.events.rawValue)
        bytes.put(Int64(source))
        bytes.append(event.rawValue)
        countPosition = bytes.count
        bytes.appendBigEndian(UInt32(0))
        bytes.put(offset)
        bytes.put(time.rawValue)
        firstTime = time
        lastOffset = offset
        lastTime = time.rawValue
    }

    /// Appends one event; `offset` must be above the previous one's.
    @inline(__always)
    func add(key: UnsafeRawBufferPointer, offset: Int64, time: TimestampNanos, text: UnsafeRawBufferPointer?) {
        precondition(count == 0 || offset > lastOffset, "events go in offset order")
        bytes.reserve(key.count + (text?.count ?? 0) + 40)
        bytes.put(offset &- lastOffset)
        bytes.put(time.rawValue &- lastTime)
        bytes.put(key.count)
        bytes.append(key)
        if event == .session { bytes.put(text != nil) }
        if let text {
            bytes.put(text.count)
            bytes.append(text)
        } else {
            precondition(event == .session, "rides and tickets always carry their id")
        }
        lastOffset = offset
        lastTime = time.rawValue
        count += 1
    }

    /// The finished record's value; the bundle is empty again after `reset`.
    func finish() -> UnsafeRawBufferPointer {
        precondition(!isEmpty)
        bytes.setBigEndian(UInt32(count), at: countPosition)
        return bytes.bytes
    }

    func reset() { count = 0 }
}

/// Reads the events of an events record in order. Keys and texts point into the record.
struct EventReader {
    struct Item {
        var key: UnsafeRawBufferPointer
        var offset: Int64
        var time: TimestampNanos
        var text: UnsafeRawBufferPointer?
    }

    let event: RepartitionRecord.Event
    private var r: StateReader
    private var left: Int
    private var offset: Int64
    private var time: Int64

    init(_ body: UnsafeRawBufferPointer) throws(RepartitionRecord.Failure) {
        do throws(StateReader.Failure) {
            guard body.count >= 5, let e = RepartitionRecord.Event(rawValue: body[0]) else {
                throw StateReader.Failure(description: "events record without a valid event kind")
            }
            event = e
            left = Int(body.loadBigEndian(at: 1, as: UInt32.self))
            r = StateReader(body)
            r.position = 5
            offset = try r.int64()
            time = try r.int64()
            guard left > 0 else { throw StateReader.Failure(description: "an events record of no events") }
        } catch {
            throw RepartitionRecord.Failure(description: error.description)
        }
    }

    /// The next event, nil after the last (checked to end the record exactly).
    @inline(__always)
    mutating func next() throws(RepartitionRecord.Failure) -> Item? {
        do throws(StateReader.Failure) {
            guard left > 0 else {
                guard r.isAtEnd else { throw StateReader.Failure(description: "\(r.bytes.count - r.position) bytes after the last event") }
                return nil
            }
            left -= 1
            let dOffset = try r.int64()
            guard dOffset > 0 || (dOffset == 0 && !started) else { throw StateReader.Failure(description: "event offsets out of order") }
            started = true
            // Deltas come from disk: one that passes Int64's range is damage (a wrapped
            // offset would go backwards, found by fuzz-repartition), not an event.
            let (o, oOverflow) = offset.addingReportingOverflow(dOffset)
            let (t, tOverflow) = time.addingReportingOverflow(try r.int64())
            guard !oOverflow, !tOverflow else { throw StateReader.Failure(description: "event offset or time out of range") }
            offset = o
            time = t
            let key = try r.byteString()
            var text: UnsafeRawBufferPointer?
            let hasText = event != .session ? true : try r.bool()
            if hasText { text = try r.byteString() }
            return Item(key: key, offset: offset, time: TimestampNanos(time), text: text)
        } catch {
            throw RepartitionRecord.Failure(description: error.description)
        }
    }

    private var started = false
}

extension StateReader {
    /// A length-prefixed byte string, in place.
    mutating func byteString() throws(Failure) -> UnsafeRawBufferPointer {
        let n = try count(max: 1 << 24)
        guard position + n <= bytes.count else { throw Failure(description: "truncated bytes") }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }
}
