import NIOCore

// ApiVersions (key 18), versions 0-2.
//
// Request: empty in v0-2 (v3, flexible, adds the client's software name and version;
// librdkafka sends v3 first).
// Response:
//   error_code        int16
//   api_keys          [api_key int16, min_version int16, max_version int16]
//   throttle_time_ms  int32   (v1+)
//
// A request of a version this server does not serve (v3+, flexible) is answered as
// Kafka answers it: error 35 UNSUPPORTED_VERSION in the v0 layout, with the full list of
// keys, so the client retries with a version from the list (the only API where an
// unsupported version gets an answer instead of a closed connection).

struct ApiVersionsResponse: Equatable {
    var errorCode: ErrorCode
    var keys: [ApiKey]

    static let all = ApiVersionsResponse(errorCode: .none, keys: ApiKey.allCases)

    func encode(into b: inout ByteBuffer, version: Int16) {
        b.writeInteger(errorCode.rawValue)
        b.writeKafkaArray(keys) { b, key in
            b.writeInteger(key.rawValue)
            b.writeInteger(key.versions.lowerBound)
            b.writeInteger(key.versions.upperBound)
        }
        if version >= 1 { b.writeInteger(Int32(0)) }
    }
}

extension Broker {
    func apiVersions(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        try r.expectEnd("ApiVersions v\(h.apiVersion)")
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        ApiVersionsResponse.all.encode(into: &b.buffer, version: h.apiVersion)
        out.send(b.finish())
    }

    /// The answer to an ApiVersions request of a version not served: v0 layout, error 35.
    func apiVersionsUnsupported(_ h: RequestHeader, _ out: Responder) {
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        ApiVersionsResponse(errorCode: .unsupportedVersion, keys: ApiKey.allCases).encode(into: &b.buffer, version: 0)
        out.send(b.finish())
    }
}
