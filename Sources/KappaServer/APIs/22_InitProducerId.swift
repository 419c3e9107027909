import KappaCore
import NIOCore

// InitProducerId (key 22), versions 0-1.
//
// Request:
//   transactional_id nullable string, transaction_timeout_ms int32
// Response:
//   throttle_time_ms int32, error_code int16, producer_id int64, producer_epoch int16
//
// An idempotent producer (no transactional id) gets a producer id never handed out
// before from this data directory (`ProducerIdAllocator`), at epoch 0. Transactions are
// not supported: a transactional id is refused (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

extension Broker {
    func initProducerId(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let transactionalId = try r.nullableString()
        _ = try r.int32()
        try r.expectEnd("InitProducerId v\(h.apiVersion)")
        var code = ErrorCode.none
        var id: Int64 = -1
        if transactionalId != nil {
            code = .transactionalIdAuthorizationFailed
        } else {
            do {
                id = try producerIds.next()
            } catch {
                code = storageError(error, "allocating a producer id")
            }
        }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        b.buffer.writeInteger(Int32(0))
        b.buffer.writeInteger(code.rawValue)
        b.buffer.writeInteger(id)
        b.buffer.writeInteger(Int16(code == .none ? 0 : -1))
        out.send(b.finish())
    }
}
