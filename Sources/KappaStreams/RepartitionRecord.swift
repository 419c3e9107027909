import KappaCore
import KappaFormat

/// What a task sends through its job version's repartition topic, `JOB.vN.repartition`
/// (internal, binary, N partitions; partition `t` is read by task `t`). The record key is
/// the group key (none for watermarks); the value starts with a kind byte, then the
/// sending source's global id (`JobPlan.sourceId`) and, for everything but watermarks, a
/// sequence number that increases per source in the order the source sends:
///
/// ```
/// 1 contribution  source seq windowStart state lineage       a window's partial (windows)
/// 2 watermark     source streamTime idle                      the source's stream time
/// 3 event         source offset time [type]                   one on-time event (sessions)
/// 4 ride          source offset time rideId                   one on-time ride (matches)
/// 5 ticket        source offset time ticketId                 one on-time ticket (matches)
/// ```
/// Integers are zigzag varints; `[type]` is a presence byte then a length-prefixed
/// string; ids are length-prefixed. Forwarded events use their input offset as the
/// sequence: deterministic whatever a restarted task reads first. Decoding checks every
/// length and the source id's range, so a damaged record is an error, never a crash.
enum RepartitionRecord {
    enum Kind: UInt8 {
        case contribution = 1
        case watermark = 2
        case event = 3
        case ride = 4
        case ticket = 5
    }

    // MARK: encoding (into a reusable writer, emptied first)

    static func encodeContribution(_ c: Contribution, into w: ByteWriter) {
        w.removeAll()
        w.append(Kind.contribution.rawValue)
        w.put(Int64(c.source))
        w.put(c.sequence)
        w.put(c.windowStart)
        c.state.encode(into: w)
        c.lineage.encode(into: w)
    }

    static func encodeWatermark(source: Int32, streamTime: Int64, idle: Bool, into w: ByteWriter) {
        w.removeAll()
        w.append(Kind.watermark.rawValue)
        w.put(Int64(source))
        w.put(streamTime)
        w.put(idle)
    }

    /// A forwarded event: `text` is the event type (sessions; nil when absent) or the
    /// ride or ticket id.
    @inline(__always)
    static func encodeEvent(_ kind: Kind, source: Int32, offset: Int64, time: Int64, text: UnsafeRawBufferPointer?, into w: ByteWriter) {
        precondition(kind == .event || kind == .ride || kind == .ticket)
        w.removeAll()
        w.append(kind.rawValue)
        w.put(Int64(source))
        w.put(offset)
        w.put(time)
        if kind == .event { w.put(text != nil) }
        if let text {
            w.put(text.count)
            w.append(text)
        } else {
            precondition(kind == .event, "rides and tickets always carry their id")
        }
    }

    // MARK: decoding

    /// A decoded record; byte fields point into the record and are valid while it is.
    struct Decoded {
        var kind: Kind
        var source: Int32
        /// The sequence (contributions) or the input offset (forwarded events).
        var sequence: Int64 = 0
        var time: Int64 = 0
        var idle = false
        var text: UnsafeRawBufferPointer?
        var contribution: Contribution?
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Decodes one record's value. `sources`: the number of source ids the plan has.
    static func decode(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, sources: Int32, fields: Int) throws(Failure) -> Decoded {
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
                let seq = try r.int64()
                let start = try r.int64()
                let state = try AggregateState.decode(&r, fields: fields)
                let lineage = try Lineage.decode(&r)
                d.sequence = seq
                d.contribution = Contribution(key: key.map { String(decoding: $0, as: UTF8.self) } ?? "", windowStart: start, state: state,
                                              lineage: lineage, source: d.source, sequence: seq)
            case .watermark:
                d.time = try r.int64()
                d.idle = try r.bool()
            case .event, .ride, .ticket:
                d.sequence = try r.int64()
                d.time = try r.int64()
                let hasText = kind != .event ? true : try r.bool()
                if hasText { d.text = try r.byteString() }
                guard key != nil else { throw StateReader.Failure(description: "a forwarded event without a key") }
            }
            guard r.isAtEnd else { throw StateReader.Failure(description: "\(value.count - r.position) unexpected bytes") }
            return d
        } catch {
            throw Failure(description: error.description)
        }
    }
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
