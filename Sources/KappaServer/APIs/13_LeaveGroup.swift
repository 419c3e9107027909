import NIOCore

// LeaveGroup (key 13), versions 0-3.
//
// Request:
//   group_id string,
//   member_id string                                              (v0-2)
//   members [member_id string, group_instance_id nullable string] (v3+, batch leave)
// Response:
//   throttle_time_ms int32 (v1+), error_code int16,
//   members [member_id string, group_instance_id nullable string, error_code int16] (v3+)
//
// The group rebalances without the members that left; when the last one leaves it
// becomes Empty (its committed offsets stay).

extension Broker {
    func leaveGroup(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let v = h.apiVersion
        let group = try r.string()
        var leaving: [(String, String?)] = []
        if v >= 3 {
            leaving = try r.array(elementBytesMin: 4) { (r: inout KafkaReader) throws(RequestDecodeError) in (try r.string(), try r.nullableString()) }
        } else {
            leaving = [(try r.string(), nil)]
        }
        try r.expectEnd("LeaveGroup v\(v)")
        var codes: [ErrorCode]
        if groups.groups[group] == nil {
            codes = leaving.map { _ in .unknownMemberId }
        } else {
            codes = withGroup(group) { m, now in m.leave(memberIds: leaving.map(\.0), now: now) }
        }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if v >= 1 { b.buffer.writeInteger(Int32(0)) }
        if v >= 3 {
            b.buffer.writeInteger(ErrorCode.none.rawValue)
            b.buffer.writeKafkaArrayCount(leaving.count)
            for (i, m) in leaving.enumerated() {
                b.buffer.writeKafkaString(m.0)
                b.buffer.writeKafkaNullableString(m.1)
                b.buffer.writeInteger(codes[i].rawValue)
            }
        } else {
            b.buffer.writeInteger(codes[0].rawValue)
        }
        out.send(b.finish())
    }
}
