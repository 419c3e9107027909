import NIOCore

// FindCoordinator (key 10), versions 0-2.
//
// Request:
//   key string, key_type int8 (v1+: 0 group, 1 transaction)
// Response:
//   throttle_time_ms int32 (v1+), error_code int16, error_message nullable string (v1+),
//   node_id int32, host string, port int32
//
// This server coordinates every group. Transactions are not supported: a transaction
// coordinator is not available.

extension Broker {
    func findCoordinator(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let v = h.apiVersion
        _ = try r.string()
        let keyType = v >= 1 ? try r.int8() : 0
        try r.expectEnd("FindCoordinator v\(v)")
        let available = keyType == 0
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        if v >= 1 { b.buffer.writeInteger(Int32(0)) }
        b.buffer.writeInteger((available ? ErrorCode.none : .coordinatorNotAvailable).rawValue)
        if v >= 1 { b.buffer.writeKafkaNullableString(available ? nil : "transactions are not supported") }
        b.buffer.writeInteger(available ? options.nodeId : -1)
        b.buffer.writeKafkaString(available ? advertised.host : "")
        b.buffer.writeInteger(available ? advertised.port : -1)
        out.send(b.finish())
    }
}
