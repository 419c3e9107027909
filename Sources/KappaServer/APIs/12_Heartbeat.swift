import NIOCore

// Heartbeat (key 12), versions 0-3.
//
// Request:
//   group_id string, generation_id int32, member_id string,
//   group_instance_id nullable string (v3+)
// Response:
//   throttle_time_ms int32 (v1+), error_code int16
//
// Keeps the member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.

extension Broker {
    func heartbeat(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let v = h.apiVersion
        let group = try r.string()
        let generation = try r.int32()
        let memberId = try r.string()
        if v >= 3 { _ = try r.nullableString() }
        try r.expectEnd("Heartbeat v\(v)")
        let code: ErrorCode
        if groups.groups[group] == nil {
            code = validGroupName(group) ? .unknownMemberId : .invalidGroupId
        } else {
            code = withGroup(group) { m, now in (m.heartbeat(memberId: memberId, generation: generation, now: now), []) }
        }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if v >= 1 { b.buffer.writeInteger(Int32(0)) }
        b.buffer.writeInteger(code.rawValue)
        out.send(b.finish())
    }
}
