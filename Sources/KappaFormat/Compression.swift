import CLZ4
import KappaCore

/// The compression of a batch's records section: the low 3 bits of the batch attributes,
/// numbered as Kafka numbers them. Kappa writes `none` and `lz4`; it reads both and
/// reports the others (gzip, snappy, zstd) as unsupported rather than guessing.
public enum CompressionCodec: Int16, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case gzip = 1
    case snappy = 2
    case lz4 = 3
    case zstd = 4

    public init?(name: String) {
        switch name {
        case "none": self = .none
        case "lz4": self = .lz4
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }
}

/// LZ4 in the LZ4 *frame* format, as Kafka's codec 3 reads it: independent blocks of up
/// to 1 MiB (so a 512 KiB batch is one block), no block or content checksums (the batch CRC-32C covers the compressed bytes),
/// no content size. Holds liblz4 contexts, so one `LZ4Codec` per thread; reuse it.
public final class LZ4Codec {
    private var cctx: OpaquePointer?
    private var dctx: OpaquePointer?
    private var preferences = LZ4F_preferences_t()

    public init() {
        var c: OpaquePointer?
        var d: OpaquePointer?
        let version = UInt32(LZ4F_VERSION)
        precondition(LZ4F_isError(LZ4F_createCompressionContext(&c, version)) == 0, "LZ4F_createCompressionContext")
        precondition(LZ4F_isError(LZ4F_createDecompressionContext(&d, version)) == 0, "LZ4F_createDecompressionContext")
        cctx = c
        dctx = d
        preferences.frameInfo.blockSizeID = LZ4F_max1MB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        preferences.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum
        preferences.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum
        preferences.compressionLevel = 0  // fast mode, what `lz4 -1` uses
        preferences.autoFlush = 1  // compress straight from the caller's buffer, no staging copy
    }

    deinit {
        LZ4F_freeCompressionContext(cctx)
        LZ4F_freeDecompressionContext(dctx)
    }

    /// Appends one LZ4 frame holding `source` to `out`.
    public func compress(_ source: UnsafeRawBufferPointer, appendingTo out: ByteWriter) {
        let bound = LZ4F_compressFrameBound(source.count, &preferences)
        out.reserve(bound)
        var p = out.base + out.count
        var room = bound
        let header = LZ4F_compressBegin(cctx, p, room, &preferences)
        precondition(LZ4F_isError(header) == 0, "LZ4F_compressBegin")
        p += header
        room -= header
        let body = LZ4F_compressUpdate(cctx, p, room, source.baseAddress, source.count, nil)
        precondition(LZ4F_isError(body) == 0, "LZ4 compression cannot fail with a bound-sized buffer")
        p += body
        room -= body
        let end = LZ4F_compressEnd(cctx, p, room, nil)
        precondition(LZ4F_isError(end) == 0, "LZ4F_compressEnd")
        out.count += header + body + end
    }

    /// Readable bytes left after the inflated records: a JSON parser (simdjson) may read
    /// 64 bytes past the last value it is handed.
    public static let trailingSlackBytes = 64

    /// Inflates one complete LZ4 frame into `out` (replacing its content), refusing to
    /// grow past `limit` bytes. Returns nil and a reason when the frame is malformed.
    public func decompress(_ source: UnsafeRawBufferPointer, into out: ByteWriter, limit: Int) -> String? {
        out.removeAll()
        guard let src = source.baseAddress, source.count > 0 else { return "empty LZ4 frame" }
        var consumed = 0
        while true {
            if out.capacity - out.count < 64 << 10 {
                guard out.capacity < limit else {
                    LZ4F_resetDecompressionContext(dctx)
                    return "inflated records exceed \(limit) bytes"
                }
                out.reserve(min(out.capacity, limit - out.count))
            }
            var dstSize = out.capacity - out.count
            var srcSize = source.count - consumed
            let hint = LZ4F_decompress(dctx, out.base + out.count, &dstSize, src + consumed, &srcSize, nil)
            if LZ4F_isError(hint) != 0 {
                LZ4F_resetDecompressionContext(dctx)
                return "LZ4: " + String(cString: LZ4F_getErrorName(hint))
            }
            out.count += dstSize
            consumed += srcSize
            if hint == 0 {
                guard consumed == source.count else { return "\(source.count - consumed) bytes after the LZ4 frame" }
                out.reserve(Self.trailingSlackBytes)
                return nil
            }
            if consumed == source.count && dstSize == 0 {
                LZ4F_resetDecompressionContext(dctx)
                return "truncated LZ4 frame"
            }
        }
    }
}
