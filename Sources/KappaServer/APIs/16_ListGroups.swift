import KappaGroups
import NIOCore

// ListGroups (key 16), versions 0-2.
//
// Request: empty (v4 adds a states filter).
// Response:
//   throttle_time_ms int32 (v1+), error_code int16,
//   groups [group_id string, protocol_type string]
//
// The groups this server coordinates, and the groups with committed offsets on disk
// (`kappa groups list`), each once.

extension Broker {
    func listGroups(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        try r.expectEnd("ListGroups v\(h.apiVersion)")
        var listed: [String: String] = [:]
        for name in (try? GroupStore.list(directory)) ?? [] { listed[name] = "" }
        for (name, m) in groups.groups { listed[name] = m.protocolType ?? listed[name] ?? "" }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if h.apiVersion >= 1 { b.buffer.writeInteger(Int32(0)) }
        b.buffer.writeInteger(ErrorCode.none.rawValue)
        b.buffer.writeKafkaArray(listed.sorted { $0.key < $1.key }) { b, g in
            b.writeKafkaString(g.key)
            b.writeKafkaString(g.value)
        }
        out.send(b.finish())
    }
}
