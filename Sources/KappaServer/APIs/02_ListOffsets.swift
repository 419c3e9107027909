import KappaCore
import KappaLog
import NIOCore

// ListOffsets (key 2), versions 1-5.
//
// Request:
//   replica_id int32, isolation_level int8 (v2+),
//   topics [name string, partitions [partition_index int32, current_leader_epoch int32 (v4+),
//           timestamp int64]]
// Response:
//   throttle_time_ms int32 (v2+),
//   topics [name string, partitions [partition_index int32, error_code int16,
//           timestamp int64, offset int64, leader_epoch int32 (v4+)]]
//
// timestamp -2: the log start (earliest); -1: the end, the offset the next record gets
// (latest; for a job's output its committed marker); otherwise the first record, in
// offset order, whose timestamp is at or after it (Kafka milliseconds), with that
// record's timestamp — or offset -1 and timestamp -1 when no record is that late.
// v3-v5 change nothing on the wire this server uses (v5 allows errors it never sends).

struct ListOffsetsRequest {
    struct Partition {
        var index: Int32
        var timestamp: Int64
    }

    var isolationLevel: Int8
    var topics: [(String, [Partition])]

    static let earliest: Int64 = -2
    static let latest: Int64 = -1

    static func decode(_ r: inout KafkaReader, version v: Int16) throws(RequestDecodeError) -> ListOffsetsRequest {
        _ = try r.int32()  // replica_id
        let isolation = v >= 2 ? try r.int8() : 0
        let topics = try r.array(elementBytesMin: 6) { (r: inout KafkaReader) throws(RequestDecodeError) in
            (try r.string(), try r.array(elementBytesMin: v >= 4 ? 16 : 12) { (r: inout KafkaReader) throws(RequestDecodeError) in
                let index = try r.int32()
                if v >= 4 { _ = try r.int32() }
                return Partition(index: index, timestamp: try r.int64())
            })
        }
        try r.expectEnd("ListOffsets v\(v)")
        return ListOffsetsRequest(isolationLevel: isolation, topics: topics)
    }
}

struct ListedOffset {
    var index: Int32
    var errorCode: ErrorCode
    var timestamp: Int64 = -1
    var offset: Int64 = -1
}

extension Broker {
    func listOffsets(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let request = try ListOffsetsRequest.decode(&r, version: h.apiVersion)
        let results = request.topics.map { topic in
            (topic.0, topic.1.map { listOffset(TopicPartition(topic.0, $0.index), timestamp: $0.timestamp) })
        }
        let v = h.apiVersion
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if v >= 2 { b.buffer.writeInteger(Int32(0)) }
        b.buffer.writeKafkaArray(results) { b, topic in
            b.writeKafkaString(topic.0)
            b.writeKafkaArray(topic.1) { b, p in
                b.writeInteger(p.index)
                b.writeInteger(p.errorCode.rawValue)
                b.writeInteger(p.timestamp)
                b.writeInteger(p.offset)
                if v >= 4 { b.writeInteger(Broker.leaderEpoch) }
            }
        }
        out.send(b.finish())
    }

    private func listOffset(_ tp: TopicPartition, timestamp: Int64) -> ListedOffset {
        var result = ListedOffset(index: tp.partition, errorCode: .none)
        do {
            guard let served = try servedPartition(tp) else {
                result.errorCode = .unknownTopicOrPartition
                return result
            }
            let bounds = try served.bounds()
            switch timestamp {
            case ListOffsetsRequest.earliest: result.offset = bounds.start.rawValue
            case ListOffsetsRequest.latest: result.offset = bounds.end.rawValue
            case ..<0:
                result.errorCode = .invalidRequest  // -3 (max timestamp, v7) and others are not served
            default:
                let reader = try PartitionReader(directory: directory, topicPartition: tp)
                if let match = try reader.firstRecord(atOrAfterMillis: timestamp, codec: codec, scratch: scratch), match.offset < bounds.end {
                    result.offset = match.offset.rawValue
                    result.timestamp = match.timestampMillis
                }
            }
        } catch {
            result.errorCode = storageError(error, "listing offsets of \(tp)")
        }
        return result
    }
}
