import KappaCore
import KappaGroups
import NIOCore

// OffsetCommit (key 8), versions 2-7.
//
// Request:
//   group_id string, generation_id int32, member_id string,
//   group_instance_id nullable string (v7+), retention_time_ms int64 (v2-4),
//   topics [name string, partitions [partition_index int32, committed_offset int64,
//           committed_leader_epoch int32 (v6+), committed_metadata nullable string]]
// Response:
//   throttle_time_ms int32 (v3+),
//   topics [name string, partitions [partition_index int32, error_code int16]]
//
// Offsets go to Kappa's group store (`DATA/groups/G/offsets/TOPIC/P`, replaced
// atomically and durably), the same ones `kappa groups describe` shows with their lag
// and `kappa consume --group` starts from. Who may commit follows Kafka
// (`GroupStateMachine.commitAllowed`); a member of a group this server does not know
// (it restarted) gets UNKNOWN_MEMBER_ID and rejoins. Metadata strings and retention
// are not kept: committed offsets stay until `kappa groups reset` moves them.

extension Broker {
    func offsetCommit(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let v = h.apiVersion
        let group = try r.string()
        let generation = try r.int32()
        let memberId = try r.string()
        if v >= 7 { _ = try r.nullableString() }
        if v <= 4 { _ = try r.int64() }
        let topics = try r.array(elementBytesMin: 6) { (r: inout KafkaReader) throws(RequestDecodeError) in
            (try r.string(), try r.array(elementBytesMin: 14) { (r: inout KafkaReader) throws(RequestDecodeError) in
                let index = try r.int32()
                let offset = try r.int64()
                if v >= 6 { _ = try r.int32() }
                _ = try r.nullableString()
                return (index, offset)
            })
        }
        try r.expectEnd("OffsetCommit v\(v)")
        var groupCode = ErrorCode.none
        var store: GroupStore? = nil
        do {
            store = try GroupStore(directory: directory, group: group)
        } catch {
            groupCode = .invalidGroupId
        }
        if groupCode == .none {
            if groups.groups[group] != nil {
                groupCode = withGroup(group) { m, now in (m.commitAllowed(memberId: memberId, generation: generation, now: now), []) }
            } else if generation >= 0 {
                groupCode = .unknownMemberId
            }
        }
        let results = topics.map { topic in
            (topic.0, topic.1.map { p -> (Int32, ErrorCode) in
                guard groupCode == .none, let store else { return (p.0, groupCode) }
                return (p.0, commit(store, TopicPartition(topic.0, p.0), p.1))
            })
        }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if v >= 3 { b.buffer.writeInteger(Int32(0)) }
        b.buffer.writeKafkaArray(results) { b, topic in
            b.writeKafkaString(topic.0)
            b.writeKafkaArray(topic.1) { b, p in
                b.writeInteger(p.0)
                b.writeInteger(p.1.rawValue)
            }
        }
        out.send(b.finish())
    }

    private func commit(_ store: GroupStore, _ tp: TopicPartition, _ offset: Int64) -> ErrorCode {
        guard let config = topicConfig(tp.topic), tp.partition >= 0, tp.partition < config.partitions else { return .unknownTopicOrPartition }
        guard offset >= 0 else { return .invalidCommitOffsetSize }
        do {
            try store.writeCommitted(tp, Offset(offset))
            return .none
        } catch {
            return storageError(error, "committing \(tp) for group \(store.group)")
        }
    }
}
