import KappaCore
import NIOCore

// JoinGroup (key 11), versions 0-5.
//
// Request:
//   group_id string, session_timeout_ms int32,
//   rebalance_timeout_ms int32 (v1+; v0: the session timeout),
//   member_id string, group_instance_id nullable string (v5+),
//   protocol_type string, protocols [name string, metadata bytes]
// Response:
//   throttle_time_ms int32 (v2+), error_code int16, generation_id int32,
//   protocol_name string, leader string, member_id string,
//   members [member_id string, group_instance_id nullable string (v5+), metadata bytes]
//
// v4+: a join with an empty member id is answered MEMBER_ID_REQUIRED with an id to join
// with (KIP-394); before v4 the id is made and the member joins at once. The answer
// waits until the join phase ends (`GroupStateMachine`); the leader's lists every member.

extension Broker {
    func joinGroup(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let v = h.apiVersion
        let group = try r.string()
        let session = try r.int32()
        let rebalance = v >= 1 ? try r.int32() : session
        let memberId = try r.string()
        let instanceId = v >= 5 ? try r.nullableString() : nil
        let protocolType = try r.string()
        let protocols = try r.array(elementBytesMin: 6) { (r: inout KafkaReader) throws(RequestDecodeError) in
            GroupCoordinator.Machine.MemberProtocol(name: try r.string(), metadata: Array(buffer: try r.bytes()))
        }
        try r.expectEnd("JoinGroup v\(v)")
        let waiter = GroupWaiter(header: h, responder: out)
        guard validGroupName(group) else {
            return out.send(encodeJoinGroup(h, .init(errorCode: .invalidGroupId, memberId: memberId)))
        }
        let request = GroupCoordinator.Machine.JoinRequest(
            memberId: memberId, groupInstanceId: instanceId, clientId: h.clientId ?? "", clientHost: out.clientHost,
            sessionTimeoutNanos: Int64(session) * 1_000_000, rebalanceTimeoutNanos: Int64(max(rebalance, session)) * 1_000_000,
            protocolType: protocolType, protocols: protocols, requireKnownMemberId: v >= 4)
        withGroup(group) { m, now in ((), m.join(request, waiter: waiter, now: now)) }
    }

    func encodeJoinGroup(_ h: RequestHeader, _ result: GroupCoordinator.Machine.JoinResult) -> ByteBuffer {
        let v = h.apiVersion
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if v >= 2 { b.buffer.writeInteger(Int32(0)) }
        b.buffer.writeInteger(result.errorCode.rawValue)
        b.buffer.writeInteger(result.generation)
        b.buffer.writeKafkaString(result.protocolName)
        b.buffer.writeKafkaString(result.leader)
        b.buffer.writeKafkaString(result.memberId)
        b.buffer.writeKafkaArray(result.members) { b, m in
            b.writeKafkaString(m.memberId)
            if v >= 5 { b.writeKafkaNullableString(m.groupInstanceId) }
            b.writeKafkaBytes(m.metadata)
        }
        return b.finish()
    }

    /// Group ids name directories (`DATA/groups/G`): Kafka's topic alphabet.
    func validGroupName(_ group: String) -> Bool {
        (try? validateName(group, what: "group")) != nil
    }
}
