import KappaCore
import KappaFormat

/// The sequence state of idempotent producers on one partition (Kafka's
/// ProducerStateManager, reduced to what de-duplication needs). An idempotent producer
/// (`enable.idempotence`, kafka-python's default) numbers its batches per partition:
/// producer id, epoch and the sequence of the batch's first record, all in the batch
/// header. A retry of a batch that was written but not acknowledged carries the same
/// numbers and must not be written twice.
///
/// Per producer id: its epoch and its last `ServerLimits.producerBatchesRemembered`
/// batches (first and last sequence, base offset), oldest first. Everything it holds
/// is in the batch headers of the log, so `replay` rebuilds it after a restart.
///
/// Rules (Kafka's):
/// - a producer not known (new, or its batches were deleted by retention): append;
/// - an older epoch: INVALID_PRODUCER_EPOCH (a fenced producer);
/// - a newer epoch: append only from sequence 0;
/// - same epoch, a remembered batch's exact sequences: a duplicate, answered with the
///   offset it was written at and not written again;
/// - same epoch, the sequence right after the last batch's: append; anything else:
///   OUT_OF_ORDER_SEQUENCE_NUMBER (the client resends in order).
/// A value type; the broker's loop owns each partition's table.
struct ProducerTable: Equatable {
    struct Written: Equatable {
        var firstSequence: Int32
        var lastSequence: Int32
        var baseOffset: Offset
    }

    struct Entry: Equatable {
        var epoch: Int16
        var batches: [Written]
    }

    enum Verdict: Equatable {
        case append
        case duplicate(baseOffset: Offset)
        case reject(ErrorCode, String)
    }

    private(set) var entries: [Int64: Entry] = [:]

    /// Kafka's sequence arithmetic: sequences wrap from Int32.max to 0.
    static func sequence(_ first: Int32, plus delta: Int32) -> Int32 {
        precondition(first >= 0 && delta >= 0)
        return first > Int32.max - delta ? delta - (Int32.max - first) - 1 : first + delta
    }

    func check(producerId: Int64, epoch: Int16, firstSequence: Int32, lastSequence: Int32) -> Verdict {
        precondition(producerId >= 0)
        guard let e = entries[producerId] else { return .append }
        if epoch < e.epoch {
            return .reject(.invalidProducerEpoch, "producer \(producerId) epoch \(epoch) is older than its current epoch \(e.epoch)")
        }
        if epoch > e.epoch {
            return firstSequence == 0 ? .append
                : .reject(.outOfOrderSequenceNumber, "producer \(producerId) starts epoch \(epoch) at sequence \(firstSequence), not 0")
        }
        if let dup = e.batches.first(where: { $0.firstSequence == firstSequence && $0.lastSequence == lastSequence }) {
            return .duplicate(baseOffset: dup.baseOffset)
        }
        guard let last = e.batches.last else { return .append }
        let expected = Self.sequence(last.lastSequence, plus: 1)
        guard firstSequence == expected else {
            return .reject(.outOfOrderSequenceNumber, "producer \(producerId) epoch \(epoch) sent sequence \(firstSequence), expected \(expected)")
        }
        return .append
    }

    mutating func record(producerId: Int64, epoch: Int16, firstSequence: Int32, lastSequence: Int32, baseOffset: Offset) {
        var e = entries[producerId] ?? Entry(epoch: epoch, batches: [])
        if epoch != e.epoch { e = Entry(epoch: epoch, batches: []) }
        e.batches.append(Written(firstSequence: firstSequence, lastSequence: lastSequence, baseOffset: baseOffset))
        if e.batches.count > ServerLimits.producerBatchesRemembered { e.batches.removeFirst() }
        entries[producerId] = e
    }

    /// Feeds one stored batch header (61 bytes) back into the table, in log order.
    mutating func replay(_ header: UnsafeRawBufferPointer) {
        let id = ProducerFields(header)
        guard id.producerId >= 0, id.baseSequence >= 0 else { return }
        let h = RecordBatchHeader(header)
        record(producerId: id.producerId, epoch: id.producerEpoch, firstSequence: id.baseSequence,
               lastSequence: Self.sequence(id.baseSequence, plus: h.lastOffsetDelta), baseOffset: h.baseOffset)
    }
}

/// The idempotence fields of a batch header (`RecordBatchLayout` names their offsets).
struct ProducerFields: Equatable {
    var producerId: Int64
    var producerEpoch: Int16
    var baseSequence: Int32

    init(_ header: UnsafeRawBufferPointer) {
        producerId = header.loadBigEndian(at: RecordBatchLayout.producerIdOffset, as: Int64.self)
        producerEpoch = header.loadBigEndian(at: RecordBatchLayout.producerEpochOffset, as: Int16.self)
        baseSequence = header.loadBigEndian(at: RecordBatchLayout.baseSequenceOffset, as: Int32.self)
    }
}
