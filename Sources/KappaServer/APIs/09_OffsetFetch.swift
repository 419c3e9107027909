import KappaCore
import KappaGroups
import NIOCore

// OffsetFetch (key 9), versions 1-5.
//
// Request:
//   group_id string, topics [name string, partition_indexes [int32]] (nullable v2+: null = all)
// Response:
//   throttle_time_ms int32 (v3+),
//   topics [name string, partitions [partition_index int32, committed_offset int64,
//           committed_leader_epoch int32 (v5+), metadata nullable string, error_code int16]],
//   error_code int16 (v2+)
//
// Reads Kappa's group store: what Kafka clients and `kappa consume --group` committed.
// No committed offset is -1 (the client then applies its auto.offset.reset).

extension Broker {
    func offsetFetch(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let v = h.apiVersion
        let group = try r.string()
        let requested = try r.nullableArray(elementBytesMin: 6) { (r: inout KafkaReader) throws(RequestDecodeError) in
            (try r.string(), try r.int32Array())
        }
        try r.expectEnd("OffsetFetch v\(v)")
        var topCode = ErrorCode.none
        var results: [(String, [(Int32, Int64, ErrorCode)])] = []
        do {
            let store = try GroupStore(directory: directory, group: group)
            var wanted = requested ?? []
            if requested == nil {
                for topic in try store.topics() {
                    guard let config = topicConfig(topic) else { continue }
                    wanted.append((topic, (0..<config.partitions).filter { (try? store.committed(TopicPartition(topic, $0))) != nil }))
                }
            }
            for (topic, parts) in wanted {
                results.append((topic, parts.map { p in committedOffset(store, TopicPartition(topic, p)) }))
            }
        } catch {
            topCode = .invalidGroupId
            results = (requested ?? []).map { t in (t.0, t.1.map { ($0, -1, ErrorCode.invalidGroupId) }) }
        }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if v >= 3 { b.buffer.writeInteger(Int32(0)) }
        b.buffer.writeKafkaArray(results) { b, topic in
            b.writeKafkaString(topic.0)
            b.writeKafkaArray(topic.1) { b, p in
                b.writeInteger(p.0)
                b.writeInteger(p.1)
                if v >= 5 { b.writeInteger(Int32(-1)) }
                b.writeKafkaNullableString("")
                b.writeInteger(p.2.rawValue)
            }
        }
        if v >= 2 { b.buffer.writeInteger(topCode.rawValue) }
        out.send(b.finish())
    }

    private func committedOffset(_ store: GroupStore, _ tp: TopicPartition) -> (Int32, Int64, ErrorCode) {
        // Topic names and partitions become file names in the group store: only real ones.
        guard tp.partition >= 0, (try? validateName(tp.topic, what: "topic")) != nil else {
            return (tp.partition, -1, .unknownTopicOrPartition)
        }
        do {
            return (tp.partition, try store.committed(tp)?.rawValue ?? -1, .none)
        } catch {
            return (tp.partition, -1, storageError(error, "reading the committed offset of \(tp) for group \(store.group)"))
        }
    }
}
