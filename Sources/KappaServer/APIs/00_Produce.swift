import KappaCore
import KappaFormat
import KappaLog
import NIOCore

// Produce (key 0), versions 0-8, RecordBatch v2 (magic 2) only.
//
// v3 is the first version that requires RecordBatch v2, and what every client here sends
// (librdkafka 7 or 8, kafka-python 3-8, aiokafka 7). v0-2 are served because librdkafka
// 2.0 (Debian's kcat) compresses with LZ4 only when the broker advertises Produce v0 (its
// check asks for a version in 0...0); their layout is v3's without transactional_id, and
// their batches must be magic 2 as well: the older message formats (magic 0 and 1,
// clients before Kafka 0.11) are refused with INVALID_RECORD.
//
// Request:
//   transactional_id nullable string   (v3+; transactions are not supported: non-null is refused)
//   acks             int16             0: no answer; 1 and -1: answer once written
//   timeout_ms       int32
//   topic_data [name string, partition_data [index int32, records nullable bytes]]
// Response:
//   responses [name string,
//              partition_responses [index int32, error_code int16, base_offset int64,
//                                   log_append_time_ms int64 (v2+; -1: create time),
//                                   log_start_offset int64 (v5+),
//                                   record_errors [batch_index int32, message nullable string] (v8+),
//                                   error_message nullable string (v8+)]]
//   throttle_time_ms int32 (v1+)
//
// v4 adds KAFKA_STORAGE_ERROR, v5 log_start_offset, v6-v7 nothing on the wire (v7: ZStd
// may be sent, and is refused with UNSUPPORTED_COMPRESSION_TYPE), v8 the error details.
//
// A job's own topics (output, late, dead-letter, repartition) are refused with
// TOPIC_AUTHORIZATION_FAILED: the job alone writes them.
//
// Each partition's batches are validated in full (`ClientBatches`), de-duplicated by
// producer id, epoch and sequence (`ProducerTable`), stamped with their base offset and
// leader epoch 0, and appended byte for byte. acks 1 and -1 mean the same on one node:
// the answer goes out once the batches are written (they survive kill -9), and fsynced
// first when the server runs with `--fsync always` (else per its interval).

struct ProduceRequest {
    struct Partition {
        var index: Int32
        var records: ByteBuffer?
    }

    struct Topic {
        var name: String
        var partitions: [Partition]
    }

    var transactionalId: String?
    var acks: Int16
    var timeoutMillis: Int32
    var topics: [Topic]

    static func decode(_ r: inout KafkaReader, version: Int16) throws(RequestDecodeError) -> ProduceRequest {
        let txn = version >= 3 ? try r.nullableString() : nil
        let acks = try r.int16()
        let timeout = try r.int32()
        let topics = try r.array(elementBytesMin: 6) { (r: inout KafkaReader) throws(RequestDecodeError) in
            Topic(name: try r.string(), partitions: try r.array(elementBytesMin: 8) { (r: inout KafkaReader) throws(RequestDecodeError) in
                Partition(index: try r.int32(), records: try r.nullableBytes())
            })
        }
        try r.expectEnd("Produce v\(version)")
        return ProduceRequest(transactionalId: txn, acks: acks, timeoutMillis: timeout, topics: topics)
    }
}

struct ProducePartitionResult: Equatable {
    var index: Int32
    var errorCode: ErrorCode
    var baseOffset: Int64 = -1
    var logStartOffset: Int64 = -1
    var message: String? = nil
}

extension Broker {
    func produce(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let request = try ProduceRequest.decode(&r, version: h.apiVersion)
        var results: [(String, [ProducePartitionResult])] = []
        for topic in request.topics {
            var parts: [ProducePartitionResult] = []
            for p in topic.partitions {
                if request.transactionalId != nil {
                    parts.append(ProducePartitionResult(index: p.index, errorCode: .transactionalIdAuthorizationFailed, message: "transactions are not supported"))
                } else if ![-1, 0, 1].contains(request.acks) {
                    parts.append(ProducePartitionResult(index: p.index, errorCode: .invalidRequiredAcks, message: "acks must be -1, 0 or 1, not \(request.acks)"))
                } else {
                    parts.append(append(TopicPartition(topic.name, p.index), p.records))
                }
            }
            results.append((topic.name, parts))
        }
        guard request.acks != 0 else { return out.sendNothing() }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        let v = h.apiVersion
        b.buffer.writeKafkaArray(results) { b, topic in
            b.writeKafkaString(topic.0)
            b.writeKafkaArray(topic.1) { b, p in
                b.writeInteger(p.index)
                b.writeInteger(p.errorCode.rawValue)
                b.writeInteger(p.baseOffset)
                if v >= 2 { b.writeInteger(Int64(-1)) }  // log_append_time_ms: create-time topics
                if v >= 5 { b.writeInteger(p.logStartOffset) }
                if v >= 8 {
                    b.writeKafkaArrayCount(0)
                    b.writeKafkaNullableString(p.errorCode == .none ? nil : p.message)
                }
            }
        }
        if v >= 1 { b.buffer.writeInteger(Int32(0)) }  // throttle_time_ms
        out.send(b.finish())
    }

    /// Validates, de-duplicates and appends one partition's batches.
    func append(_ tp: TopicPartition, _ records: ByteBuffer?) -> ProducePartitionResult {
        func failed(_ code: ErrorCode, _ message: String) -> ProducePartitionResult {
            ProducePartitionResult(index: tp.partition, errorCode: code, message: message)
        }
        let served: ServedPartition
        do {
            guard let p = try servedPartition(tp) else { return failed(.unknownTopicOrPartition, "no partition \(tp)") }
            served = p
        } catch {
            return failed(storageError(error, "opening \(tp)"), error.description)
        }
        if let reason = served.readOnlyReason { return failed(.topicAuthorizationFailed, reason) }
        guard let records else { return failed(.invalidRecord, "records are null") }
        let validated = records.withUnsafeReadableBytes { ClientBatches.validate($0, codec: codec, scratch: scratch) }
        let batches: [ClientBatches.Batch]
        switch validated {
        case .success(let b): batches = b
        case .failure(let rejection):
            logger.debug("refused a produced batch", metadata: ["partition": "\(tp)", "reason": "\(rejection)"])
            return failed(rejection.code, rejection.message)
        }
        do {
            return try appendValidated(served, batches, records)
        } catch {
            if let closing = served.dropWriter() { logger.error("closing a failed writer failed too", metadata: ["error": "\(closing)"]) }
            return failed(storageError(error, "appending to \(tp)"), error.description)
        }
    }

    private func appendValidated(_ served: ServedPartition, _ batches: [ClientBatches.Batch], _ records: ByteBuffer) throws(KappaError) -> ProducePartitionResult {
        let tp = served.topicPartition
        var table: ProducerTable? = nil
        if let first = batches.first, first.isIdempotent {
            let t = try served.producers()
            switch t.check(producerId: first.producer.producerId, epoch: first.producer.producerEpoch,
                           firstSequence: first.producer.baseSequence, lastSequence: first.lastSequence) {
            case .append: table = t
            case .duplicate(let offset):
                return ProducePartitionResult(index: tp.partition, errorCode: .none, baseOffset: offset.rawValue, logStartOffset: served.lastKnownStart.rawValue)
            case .reject(let code, let message):
                return ProducePartitionResult(index: tp.partition, errorCode: code, message: message)
            }
        }
        let writer = try served.openWriter()
        records.withUnsafeReadableBytes { raw in
            for b in batches { served.sealed.appendRaw(UnsafeRawBufferPointer(rebasing: raw[b.range]), leaderEpoch: Broker.leaderEpoch) }
        }
        guard let range = try writer.append(served.sealed) else { preconditionFailure("validated batches hold at least one record") }
        if var t = table, let first = batches.first {
            t.record(producerId: first.producer.producerId, epoch: first.producer.producerEpoch, firstSequence: first.producer.baseSequence,
                     lastSequence: first.lastSequence, baseOffset: range.lowerBound)
            served.setProducers(t)
        }
        partitionAppended(tp)
        return ProducePartitionResult(index: tp.partition, errorCode: .none, baseOffset: range.lowerBound.rawValue, logStartOffset: served.lastKnownStart.rawValue)
    }
}
