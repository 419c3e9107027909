import NIOCore

// SyncGroup (key 14), versions 0-3.
//
// Request:
//   group_id string, generation_id int32, member_id string,
//   group_instance_id nullable string (v3+),
//   assignments [member_id string, assignment bytes]   (the leader's; empty from followers)
// Response:
//   throttle_time_ms int32 (v1+), error_code int16, assignment bytes
//
// The leader's assignment moves the group to Stable and answers every member's waiting
// sync with its share; a follower's sync waits for the leader's.

extension Broker {
    func syncGroup(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let v = h.apiVersion
        let group = try r.string()
        let generation = try r.int32()
        let memberId = try r.string()
        if v >= 3 { _ = try r.nullableString() }
        let assignments = try r.array(elementBytesMin: 6) { (r: inout KafkaReader) throws(RequestDecodeError) in
            (try r.string(), Array(buffer: try r.bytes()))
        }
        try r.expectEnd("SyncGroup v\(v)")
        var byMember: [String: [UInt8]] = [:]
        for (id, a) in assignments { byMember[id] = a }
        let waiter = GroupWaiter(header: h, responder: out)
        guard groups.groups[group] != nil else {
            return out.send(encodeSyncGroup(h, .init(errorCode: validGroupName(group) ? .unknownMemberId : .invalidGroupId)))
        }
        withGroup(group) { m, now in ((), m.sync(memberId: memberId, generation: generation, assignments: byMember, waiter: waiter, now: now)) }
    }

    func encodeSyncGroup(_ h: RequestHeader, _ result: GroupCoordinator.Machine.SyncResult) -> ByteBuffer {
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if h.apiVersion >= 1 { b.buffer.writeInteger(Int32(0)) }
        b.buffer.writeInteger(result.errorCode.rawValue)
        b.buffer.writeKafkaBytes(result.assignment)
        return b.finish()
    }
}
