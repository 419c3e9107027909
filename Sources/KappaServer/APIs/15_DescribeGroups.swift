import KappaGroups
import NIOCore

// DescribeGroups (key 15), versions 0-4.
//
// Request:
//   groups [string], include_authorized_operations bool (v3+)
// Response:
//   throttle_time_ms int32 (v1+),
//   groups [error_code int16, group_id string, group_state string, protocol_type string,
//           protocol_data string,
//           members [member_id string, group_instance_id nullable string (v4+),
//                    client_id string, client_host string,
//                    member_metadata bytes, member_assignment bytes],
//           authorized_operations int32 (v3+)]
//
// A group this server has not seen but that has committed offsets on disk (from an
// earlier run, or `kappa consume --group`) is Empty; one that is nowhere is Dead.

extension Broker {
    func describeGroups(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let v = h.apiVersion
        let names = try r.stringArray()
        if v >= 3 { _ = try r.bool() }
        try r.expectEnd("DescribeGroups v\(v)")
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if v >= 1 { b.buffer.writeInteger(Int32(0)) }
        b.buffer.writeKafkaArrayCount(names.count)
        for name in names {
            let valid = validGroupName(name)
            b.buffer.writeInteger((valid ? ErrorCode.none : .invalidGroupId).rawValue)
            b.buffer.writeKafkaString(name)
            if let m = groups.groups[name] {
                let protocolName = m.protocolName ?? ""
                b.buffer.writeKafkaString(m.state.rawValue)
                b.buffer.writeKafkaString(m.protocolType ?? "")
                b.buffer.writeKafkaString(m.state == .stable || m.state == .completingRebalance ? protocolName : "")
                b.buffer.writeKafkaArray(m.members) { b, member in
                    b.writeKafkaString(member.id)
                    if v >= 4 { b.writeKafkaNullableString(member.groupInstanceId) }
                    b.writeKafkaString(member.clientId)
                    b.writeKafkaString(member.clientHost)
                    b.writeKafkaBytes(member.metadata(for: protocolName))
                    b.writeKafkaBytes(member.assignment)
                }
            } else {
                let onDisk = valid && ((try? GroupStore(directory: directory, group: name))?.exists ?? false)
                b.buffer.writeKafkaString(onDisk ? "Empty" : "Dead")
                b.buffer.writeKafkaString("")
                b.buffer.writeKafkaString("")
                b.buffer.writeKafkaArrayCount(0)
            }
            if v >= 3 { b.buffer.writeInteger(authorizedOperationsNotComputed) }
        }
        out.send(b.finish())
    }
}
