#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaFormat
import KappaJSON
import KappaLog

/// Per record: extract what the operator needs, judge lateness where the record is read,
/// and either fold it in here or send it to the key's owner. Results, late events and
/// dead letters are written from here too.
extension JobTask {
    /// A view of `value` with 64 readable bytes after it, as the JSON parser needs.
    @inline(__always)
    private func paddedValue(_ value: UnsafeRawBufferPointer, compressed: Bool) -> UnsafeRawBufferPointer {
        if compressed { return value }  // inside the inflated batch, which keeps slack after it
        padded.removeAll()
        padded.reserve(value.count + JSONFieldExtractor.padding)
        padded.append(value)
        return padded.bytes
    }

    /// Extracts what every operator needs — the event time (field 0) and the key's UTF-8
    /// bytes (field 1), valid until the next parse — or sends the record to the
    /// dead-letter topic with the reason: not JSON, no usable time, no key (a missing or
    /// null key field: a keyless record cannot be grouped), or, for a direct input, a
    /// record in a partition that does not hold its key (see `misrouted`). `keyIsStored`:
    /// a direct input's record whose stored key is exactly its job key.
    @inline(__always)
    private func event(_ record: RecordView, source i: Int, compressed: Bool, _ extractor: JSONFieldExtractor)
        -> (time: TimestampNanos, key: UnsafeRawBufferPointer, keyIsStored: Bool)? {
        do {
            // Records `kappa produce` wrote were validated then: read only the fields the
            // job uses. A Kafka client's may be anything: validate them in full.
            if batchFromKafkaClient {
                try extractor.parse(paddedValue(record.value, compressed: compressed))
            } else {
                try extractor.parseLazily(paddedValue(record.value, compressed: compressed))
            }
        } catch {
            sendToDeadLetter(record, source: i, reason: "invalid JSON: \(error.message)")
            return nil
        }
        let time: TimestampNanos
        switch EventFields.time(of: extractor.field(0), name: definition.timeField) {
        case .success(let t): time = t
        case .failure(let bad):
            sendToDeadLetter(record, source: i, reason: bad.description)
            return nil
        }
        let key: UnsafeRawBufferPointer
        switch extractor.field(1) {
        case .string(let bytes): key = bytes
        case .number(_, let raw): key = raw
        case .integer(let v):
            var digits: [UInt8] = []
            appendInteger(v, to: &digits)
            numericKey.removeAll()
            numericKey.append(digits)
            key = numericKey.bytes
        case .null:
            sendToDeadLetter(record, source: i, reason: "keyless record: key field '\(definition.keyField)' is null")
            return nil
        case .absent:
            sendToDeadLetter(record, source: i, reason: "missing key field '\(definition.keyField)'")
            return nil
        case let other:
            sendToDeadLetter(record, source: i, reason: "key field '\(definition.keyField)' is \(other.kindName), expected a string or a number")
            return nil
        }
        // For a direct input: is the stored key the job key (see `misrouted`)?
        let keyIsStored = !state.sources[i].rekeyed && Self.sameBytes(record.key, key)
        if !state.sources[i].rekeyed, !keyIsStored, let reason = misrouted(record, key: key, source: i) {
            sendToDeadLetter(record, source: i, reason: reason)
            return nil
        }
        return (time, key, keyIsStored)
    }

    /// A direct input's partition `task` must hold only keys this task owns: `kappa
    /// produce` routes by the topic's key field with murmur2, as the plan assumes. A
    /// record whose stored key is its job key is placed right by construction (the caller
    /// compares them, once); any other (produced with another `--key-field`, keyless, or by a
    /// client with another partitioner) is checked, and one that belongs to another task
    /// is refused — counting it here would split its key's results between two tasks.
    @inline(__always)
    private func misrouted(_ record: RecordView, key: UnsafeRawBufferPointer, source i: Int) -> String? {
        let owner = plan.owner(of: key)
        guard owner != task else { return nil }
        let input = plan.inputs[state.sources[i].input]
        return "misrouted: key field '\(definition.keyField)' = \(JSONEscape.quoted(String(decoding: key, as: UTF8.self))) belongs in partition \(owner), not \(task): topic '\(input.topic)' is declared partitioned by '\(input.keyField)' (topics create --key-field) but this record was routed otherwise"
    }

    func windowEvent(_ record: RecordView, source i: Int, compressed: Bool, _ pre: WindowPreAggregator, _ merger: WindowMerger) {
        guard let (time, key, _) = event(record, source: i, compressed: compressed, extractor) else { return }
        for f in 0..<fieldCount {
            switch extractor.field(2 + f) {
            case .integer(let v): values[f] = Decimal9(integer: v)
            case .number(let d, _): values[f] = Decimal9(double: d)
            default: values[f] = nil
            }
        }
        let onTime = pre.add(key: key, time: time, values: UnsafeBufferPointer(values), partition: state.sources[i].partition, offset: record.offset.rawValue) { c in
            route(c, source: i, merger: merger)
        }
        if !onTime { sendToLate(record, source: i, time: time, streamTime: pre.streamTime) }
    }

    func sessionEvent(_ record: RecordView, source i: Int, compressed: Bool, _ s: Sessionizer) {
        guard let (time, key, _) = event(record, source: i, compressed: compressed, extractor) else { return }
        guard state.sources[i].clock.admit(time) else {
            sendToLate(record, source: i, time: time, streamTime: state.sources[i].clock.streamTime)
            return
        }
        let type = extractor.field(2)
        if state.sources[i].rekeyed, let owner = remoteOwner(key) {
            sender!.forward(.session, source: state.sources[i].id, to: owner, key: key, offset: record.offset.rawValue, time: time, text: textBytes(type))
            return
        }
        s.add(key: key, time: time, type: textBytes(type), partition: state.sources[i].partition, offset: record.offset.rawValue)
    }

    /// `knownUser`: the matcher's id for the user named by the record's key, if it has
    /// one (looked up ahead by `drain`); used when the key is the record's user.
    func matchEvent(_ record: RecordView, source i: Int, compressed: Bool, _ m: TicketRideMatcher, _ isTicket: Bool,
                    _ extractor: JSONFieldExtractor, knownUser: Int32?) {
        guard let (time, user, keyIsUser) = event(record, source: i, compressed: compressed, extractor) else { return }
        guard let id = textBytes(extractor.field(2)) else {
            sendToDeadLetter(record, source: i, reason: "missing field '\(isTicket ? m.spec.ticketIdField : m.spec.rideIdField)'")
            return
        }
        guard state.sources[i].clock.admit(time) else {
            sendToLate(record, source: i, time: time, streamTime: state.sources[i].clock.streamTime)
            return
        }
        let offset = record.offset.rawValue
        guard isTicket || TicketRideMatcher.Ride.fits(partition: state.sources[i].partition, offset: offset) else {
            sendToDeadLetter(record, source: i, reason: "ride at offset \(offset): the matcher keeps rides at offsets below 2^\(TicketRideMatcher.Ride.offsetBits)")
            return
        }
        if state.sources[i].rekeyed, let owner = remoteOwner(user) {
            sender!.forward(isTicket ? .ticket : .ride, source: state.sources[i].id, to: owner, key: user, offset: offset, time: time, text: id)
            return
        }
        let known = keyIsUser ? knownUser : nil
        if isTicket {
            m.addTicket(user: user, known: known, id: id, time: time, partition: state.sources[i].partition, offset: offset)
        } else {
            m.addRide(user: user, known: known, id: id, time: time, partition: state.sources[i].partition, offset: offset)
        }
    }

    @inline(__always)
    static func sameBytes(_ a: UnsafeRawBufferPointer?, _ b: UnsafeRawBufferPointer) -> Bool {
        guard let a, a.count == b.count else { return false }
        return b.isEmpty || memcmp(a.baseAddress!, b.baseAddress!, b.count) == 0
    }

    /// A field's text as bytes — a string's content, a number's digits — valid until the
    /// next call; nil for anything else.
    @inline(__always)
    private func textBytes(_ f: JSONField) -> UnsafeRawBufferPointer? {
        switch f {
        case .string(let b): return b
        case .number(_, let raw): return raw
        case .integer(let v):
            var digits: [UInt8] = []
            appendInteger(v, to: &digits)
            textScratch.removeAll()
            textScratch.append(digits)
            return textScratch.bytes
        default: return nil
        }
    }

    /// The owner of `key` when it is another task (nil: this one).
    @inline(__always)
    private func remoteOwner(_ key: UnsafeRawBufferPointer) -> Int32? {
        let owner = plan.owner(of: key)
        return owner == task ? nil : owner
    }

    /// Merges a window partial here, or sends it to the task that owns its key.
    func route(_ c: PartialRef, source i: Int, merger: WindowMerger) {
        if state.sources[i].rekeyed, let sender {
            let owner = plan.owner(of: c.key)
            if owner != task {
                RepartitionRecord.encodeContribution(c, into: encoded)
                sender.send(to: owner, key: c.key, value: encoded.bytes, timestamp: TimestampNanos(millis: c.windowStart.millis))
                return
            }
        }
        merger.apply(c) { writeWindow($0) }
    }

    // MARK: writing results

    /// Writes the result built in `resultValue`, keyed by `key`, with the lineage header
    /// that `lineage` writes. No String and no array is made per result.
    private func writeResult(key: UnsafeRawBufferPointer, timestamp: TimestampNanos, lineage: (ByteWriter) -> Void) {
        resultHeaders.truncate(to: resultHeadersFixed)
        resultHeaders.append(key: "kappa.input", lineage)
        output.append(key: key, value: resultValue.bytes, timestamp: timestamp, headers: resultHeaders)
    }

    private func writeResult(key: String, timestamp: TimestampNanos, lineage: (ByteWriter) -> Void) {
        var k = key
        k.withUTF8 { writeResult(key: UnsafeRawBufferPointer($0), timestamp: timestamp, lineage: lineage) }
    }

    func writeWindow(_ r: ResultRef) {
        resultValue.removeAll()
        r.appendJSON(aggregateLayout!, to: resultValue)
        writeResult(key: r.key, timestamp: r.windowEnd) { r.lineage.appendHeader(topic: lineageTopic, to: $0) }
    }

    func writeSession(key: UnsafeRawBufferPointer, _ s: Session) {
        resultValue.removeAll()
        s.appendJSON(key: key, to: resultValue)
        writeResult(key: key, timestamp: s.end) { s.lineage.appendHeader(topic: lineageTopic, to: $0) }
    }

    func writeMatch(_ m: MatchRef) {
        guard case .match(let op) = op else { return }
        resultValue.removeAll()
        m.appendJSON(to: resultValue)
        m.ticket.id.withBytes { ticketId in
            writeResult(key: ticketId, timestamp: m.ticket.time) { w in
                w.append(op.spec.tickets)
                w.append(UInt8(ascii: "/"))
                w.appendInteger(Int64(m.ticket.partition))
                w.append(UInt8(ascii: ":"))
                w.appendInteger(m.ticket.offset)
                if let ride = m.ride {
                    w.append(UInt8(ascii: ","))
                    w.append(op.spec.rides)
                    w.append(UInt8(ascii: "/"))
                    w.appendInteger(Int64(ride.partition))
                    w.append(UInt8(ascii: ":"))
                    w.appendInteger(ride.offset)
                }
            }
        }
    }

    func sendToLate(_ record: RecordView, source i: Int, time: TimestampNanos, streamTime: TimestampNanos?) {
        state.lateWritten += 1
        late.append(key: record.key.map { Array($0) }, value: record.value, timestamp: time, headers: [
            headerJob, headerVersion,
            RecordHeader(key: "kappa.input", value: Array("\(state.sources[i].topic)/\(state.sources[i].partition):\(record.offset)".utf8)),
            RecordHeader(key: "kappa.stream-time", value: Array((streamTime?.decimalSeconds ?? "").utf8)),
        ])
    }

    func sendToDeadLetter(_ record: RecordView, source i: Int, reason: String) {
        state.deadLetters += 1
        deadLetter.append(key: record.key.map { Array($0) }, value: record.value, timestamp: record.timestamp, headers: [
            headerJob, headerVersion,
            RecordHeader(key: "kappa.input", value: Array("\(state.sources[i].topic)/\(state.sources[i].partition):\(record.offset)".utf8)),
            RecordHeader(key: "kappa.error", value: Array(reason.utf8)),
        ])
    }
}
