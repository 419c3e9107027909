import NIOCore

/// Every limit of the Kafka listener, each with its reason.
public enum ServerLimits {
    /// Largest request accepted, length prefix excluded: Kafka's `socket.request.max.bytes`
    /// default (100 MiB). A length above it, or negative, closes the connection before a
    /// byte of the body is buffered.
    public static let frameBytesMax = 100 << 20

    /// Smallest request: a request header with a null client id.
    public static let frameBytesMin = RequestHeader.bytesMin

    /// Requests read ahead of the one being served, per connection. Kafka serves one
    /// request per connection at a time, in order; past this many waiting the connection
    /// is not read at all (TCP pushes back on the client), so a connection holds at most
    /// this many frames plus the one being received.
    public static let pendingRequestsMax = 16

    /// Largest fetch response, whatever the client asks (Kafka's `fetch.max.bytes`
    /// default, 55 MiB): bounds the memory one fetch can take.
    public static let fetchResponseBytesMax = 55 << 20

    /// Readers kept open between fetches (each holds a 1 MiB buffer and two descriptors),
    /// for all partitions together; the least recently used goes first.
    public static let cachedReadersMax = 64

    /// Segments scanned, per partition, to rebuild idempotent producers' sequence state
    /// after a restart: a producer's retry follows its first attempt within seconds, so
    /// the last two segments hold every batch a retry can duplicate.
    public static let producerStateSegments = 2

    /// Batches remembered per idempotent producer and partition for de-duplication: a
    /// producer has at most five requests in flight (Kafka's limit for idempotence).
    public static let producerBatchesRemembered = 5
}

/// Splits a connection's bytes into requests: a big-endian int32 length, then that many
/// bytes. A length outside `frameBytesMin...frameBytesMax` is an error, and the
/// connection is closed without reading the body (the client is not speaking Kafka, or
/// is hostile). A frame arriving slowly is buffered only up to its declared length.
struct KafkaFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    struct InvalidLength: Error, CustomStringConvertible {
        var length: Int32
        var description: String {
            "request length \(length) is outside \(ServerLimits.frameBytesMin)...\(ServerLimits.frameBytesMax)"
        }
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else { return .needMoreData }
        guard length >= ServerLimits.frameBytesMin, length <= ServerLimits.frameBytesMax else { throw InvalidLength(length: length) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A frame cut short by the peer closing is dropped with the connection.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
