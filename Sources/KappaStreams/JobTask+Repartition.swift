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
        guard let reader = repartitionReader, var position = state.repartitionPosition else { return 0 }
        defer { state.repartitionPosition = position }
        var n = 0
        let sourceCount = plan.sourceCount
        while n < budget, let batch = try reader.nextBatch() {
            if batch.header.nextOffset <= position { continue }
            do throws(BatchDecodeError) {
                var records = try RecordBatchDecoder.records(of: batch.bytes, header: batch.header, codec: codec, scratch: scratch)
                while let record = try records.next() {
                    guard record.offset >= position else { continue }
                    let d: RepartitionRecord.Decoded
                    do throws(RepartitionRecord.Failure) {
                        d = try RepartitionRecord.decode(key: record.key, value: record.value, sources: sourceCount, fields: fieldCount)
                    } catch {
                        throw BatchDecodeError("repartition record at offset \(record.offset): \(error.description)")
                    }
                    guard let (p, slot) = state.sourceSlots[Int(d.source)] else {
                        throw BatchDecodeError("repartition record at offset \(record.offset): source \(d.source) does not send to task \(task)")
                    }
                    if let problem = receive(d, key: record.key, progress: p, slot: slot) {
                        throw BatchDecodeError("repartition record at offset \(record.offset): \(problem)")
                    }
                    position = record.offset + 1
                    n += 1
                }
            } catch {
                throw KappaError(.corruptData, error.message, topicPartition: reader.topicPartition, offset: batch.header.baseOffset)
            }
        }
        return n
    }

    /// Applies one decoded record; returns what is wrong with it, if anything.
    private func receive(_ d: RepartitionRecord.Decoded, key: UnsafeRawBufferPointer?, progress p: Int, slot: Int) -> String? {
        if d.kind == .watermark {
            state.progress[p].observe(slot: slot, streamTime: d.time, idle: d.idle)
            return nil
        }
        let partition = plan.source(d.source)!.partition
        switch (op, d.kind) {
        case (.window(let merger), .contribution):
            guard state.progress[p].accept(slot: slot, sequence: d.sequence) else { return nil }
            if let update = merger.apply(d.contribution!) { writeWindow(update) }
        case (.session(let s), .event):
            guard state.progress[p].accept(slot: slot, sequence: d.sequence) else { return nil }
            s.add(key: String(decoding: key!, as: UTF8.self), time: d.time, type: d.text.map { String(decoding: $0, as: UTF8.self) },
                  partition: partition, offset: d.sequence)
        case (.match(let m), .ride) where p == 0, (.match(let m), .ticket) where p == 1:
            guard state.progress[p].accept(slot: slot, sequence: d.sequence) else { return nil }
            let id = String(decoding: d.text!, as: UTF8.self)
            if d.kind == .ride {
                m.addRide(user: key!, id: id, time: d.time, partition: partition, offset: d.sequence)
            } else {
                m.addTicket(user: key!, id: id, time: d.time, partition: partition, offset: d.sequence)
            }
        default:
            return "a \(d.kind) record from source \(d.source) does not belong to a \(definition.kind) job's \(p == 0 ? "first" : "second") stream"
        }
        return nil
    }
}
