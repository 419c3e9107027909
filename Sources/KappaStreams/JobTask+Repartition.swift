import KappaCore
import KappaFormat
import KappaLog

/// The owner's side of the repartition topic: what other tasks sent this one.
extension JobTask {
    /// Reads up to `budget` records of partition `task` of the repartition topic: drops
    /// copies (by source and sequence), records watermarks, and folds the rest into the
    /// operator. A record that does not decode, names a source out of range or one this
    /// task does not hear from, or does not fit the operator is corruption: an error
    /// naming the topic, partition and offset, never a crash or a guess.
    func drainRepartition(budget: Int) throws(KappaError) -> Int {
        // The operator is bound once, not once per record.
        switch op {
        case .window(let merger):
            let fields = fieldCount
            return try forEachRecord(budget: budget) { (d, key, from) throws(RepartitionRecord.Failure) in
                guard d.kind == .contribution else { throw unexpected(d, from) }
                guard state.progress[from.stream].accept(slot: from.slot, sequence: d.sequence) else { return }
                merger.apply(try RepartitionRecord.contribution(key: key, d, fields: fields)) { writeWindow($0) }
            }
        case .session(let s):
            return try forEachRecord(budget: budget) { (d, _, from) throws(RepartitionRecord.Failure) in
                try forEachEvent(d, from, expecting: .session) { e in
                    s.add(key: e.key, time: e.time, type: e.text, partition: from.partition, offset: e.offset)
                }
            }
        case .match(let m):
            return try forEachRecord(budget: budget) { (d, _, from) throws(RepartitionRecord.Failure) in
                let rides = from.stream == 0
                try forEachEvent(d, from, expecting: rides ? .ride : .ticket) { e in
                    let id = e.text!
                    if rides {
                        m.addRide(user: e.key, id: id, time: e.time, partition: from.partition, offset: e.offset)
                    } else {
                        m.addTicket(user: e.key, id: id, time: e.time, partition: from.partition, offset: e.offset)
                    }
                }
            }
        }
    }

    private func unexpected(_ d: RepartitionRecord.Decoded, _ from: TaskState.SourceSlot) -> RepartitionRecord.Failure {
        RepartitionRecord.Failure(description: "a \(d.kind) record from source \(d.source) does not belong to a \(definition.kind) job's stream \(from.stream)")
    }

    /// Calls `body` with each event of an events record that is new (not a copy).
    @inline(__always)
    private func forEachEvent(_ d: RepartitionRecord.Decoded, _ from: TaskState.SourceSlot, expecting: RepartitionRecord.Event,
                              _ body: (EventReader.Item) -> Void) throws(RepartitionRecord.Failure) {
        guard d.kind == .events else { throw unexpected(d, from) }
        var events = try EventReader(d.body)
        guard events.event == expecting else {
            throw RepartitionRecord.Failure(description: "\(events.event)s from source \(d.source) where \(expecting)s belong")
        }
        while let e = try events.next() {
            if state.progress[from.stream].accept(slot: from.slot, sequence: e.offset) { body(e) }
        }
    }

    /// The loop under `drainRepartition`: watermarks are recorded here; every other
    /// record goes to `body` with its key and where its source's records go.
    @inline(__always)
    private func forEachRecord(budget: Int, _ body: (RepartitionRecord.Decoded, UnsafeRawBufferPointer?, TaskState.SourceSlot) throws(RepartitionRecord.Failure) -> Void) throws(KappaError) -> Int {
        guard let reader = repartitionReader, var position = state.repartitionPosition else { return 0 }
        defer { state.repartitionPosition = position }
        var n = 0
        let sourceCount = plan.sourceCount
        let state = self.state
        while n < budget, var records = try reader.nextRecords(from: position, codec: codec, scratch: scratch) {
            while let record = try records.next() {
                do throws(RepartitionRecord.Failure) {
                    let d = try RepartitionRecord.decode(value: record.value, sources: sourceCount)
                    guard let from = state.sourceSlots[Int(d.source)] else {
                        throw RepartitionRecord.Failure(description: "source \(d.source) does not send to task \(task)")
                    }
                    if d.kind == .watermark {
                        state.progress[from.stream].observe(slot: from.slot, streamTime: TimestampNanos(d.sequence), idle: d.idle)
                    } else {
                        try body(d, record.key, from)
                    }
                } catch {
                    throw records.failure("repartition record at offset \(record.offset): \(error.description)", offset: record.offset)
                }
                position = record.offset + 1
                n += 1
            }
        }
        return n
    }
}
