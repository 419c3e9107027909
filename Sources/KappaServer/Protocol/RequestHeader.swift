import NIOCore

/// The header of every request (Kafka's request header v1; all versions served here are
/// pre-flexible, so no tagged fields follow it):
///
/// ```
/// request_api_key      int16
/// request_api_version  int16
/// correlation_id       int32
/// client_id            nullable string
/// ```
/// The response header (v0) is the correlation id alone.
struct RequestHeader: Equatable, Sendable {
    var apiKey: Int16
    var apiVersion: Int16
    var correlationId: Int32
    var clientId: String?

    /// api key + version + correlation id + client id length.
    static let bytesMin = 2 + 2 + 4 + 2

    static func decode(_ r: inout KafkaReader) throws(RequestDecodeError) -> RequestHeader {
        guard r.remaining >= bytesMin else { throw RequestDecodeError("request of \(r.remaining) bytes is shorter than a request header") }
        return RequestHeader(apiKey: try r.int16(), apiVersion: try r.int16(), correlationId: try r.int32(), clientId: try r.nullableString())
    }
}

/// A response under construction: a 4-byte length (set by `finish`), the correlation id,
/// then the body the API writes.
struct ResponseBuilder {
    var buffer: ByteBuffer

    init(correlationId: Int32, allocator: ByteBufferAllocator, capacity: Int = 256) {
        buffer = allocator.buffer(capacity: capacity)
        buffer.writeInteger(Int32(0))  // length, set by finish()
        buffer.writeInteger(correlationId)
    }

    /// The framed response, ready to write to the connection.
    mutating func finish() -> ByteBuffer {
        let length = buffer.readableBytes - 4
        precondition(length <= Int(Int32.max))
        buffer.setInteger(Int32(length), at: buffer.readerIndex)
        return buffer
    }
}
