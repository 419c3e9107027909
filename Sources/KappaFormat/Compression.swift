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

/// LZ4 in the LZ4 *frame* format, as Kafka's codec 3 reads it: independent blocks of
/// 256 KiB (two per 512 KiB batch), no block or content checksums (the batch CRC-32C
/// covers the compressed bytes), no content size. Holds liblz4 contexts, so one
/// `LZ4Codec` per thread; reuse it.
///
/// **Why 256 KiB blocks.** A block can be inflated alone, so one record of a batch costs
/// at most one block's inflate, stopped at the record (`inflatePrefix`; the user
/// history reads records this way), not the whole batch's. Measured on 1M Rebu app
/// events with `lz4 -1 -BI`: 1.6 % more compressed bytes than 1 MiB blocks (each block
/// starts without history); 64 KiB blocks (Kafka's Java producer's) cost 11 % more
/// bytes for every reader of the log to halve the history's per-record inflate again
/// (a history page at 10M events: p50 6.6 ms with 256 KiB blocks, 3.8 ms with 64 KiB).
///
/// **Block map.** `decompress` feeds liblz4 one block at a time and records where each
/// block lies in the frame and in the inflated bytes (`blocks`), so a reader of the
/// inflated records can say which block holds a record.
public final class LZ4Codec {
    private var cctx: OpaquePointer?
    private var dctx: OpaquePointer?
    private var preferences = LZ4F_preferences_t()
    /// The blocks of the frame the last `decompress` inflated, in order; empty when that
    /// frame's blocks are not independent, carry checksums, or did not parse as expected
    /// (liblz4 decoded it all the same: only the map is missing).
    public private(set) var blocks: [LZ4Block] = []

    public init() {
        var c: OpaquePointer?
        var d: OpaquePointer?
        let version = UInt32(LZ4F_VERSION)
        precondition(LZ4F_isError(LZ4F_createCompressionContext(&c, version)) == 0, "LZ4F_createCompressionContext")
        precondition(LZ4F_isError(LZ4F_createDecompressionContext(&d, version)) == 0, "LZ4F_createDecompressionContext")
        cctx = c
        dctx = d
        preferences.frameInfo.blockSizeID = LZ4F_max256KB
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
    /// Fills `blocks` (see there).
    public func decompress(_ source: UnsafeRawBufferPointer, into out: ByteWriter, limit: Int) -> String? {
        out.removeAll()
        blocks.removeAll(keepingCapacity: true)
        guard let src = source.baseAddress, source.count > 0 else { return "empty LZ4 frame" }
        // Feed the frame header, then one block per call while the layout is the simple
        // one (independent blocks, no block checksums), recording each block; past
        // anything else, feed the rest at once and keep no map.
        let frame = LZ4FrameHeader(source)
        var mapping = frame?.blocksAlone ?? false  // feeding one block per call
        var mapped = mapping  // the map holds so far
        let blockMax = frame?.blockMax ?? (64 << 10)
        var consumed = 0
        while true {
            // Mapping needs room for a whole block; under a limit that cannot give it,
            // inflate as liblz4 likes and keep no map.
            if mapping && out.count + blockMax > limit {
                mapping = false
                mapped = false
            }
            let room = mapping ? blockMax : 64 << 10
            if out.capacity - out.count < room {
                guard out.capacity < limit else {
                    LZ4F_resetDecompressionContext(dctx)
                    blocks.removeAll()
                    return "inflated records exceed \(limit) bytes"
                }
                out.reserve(min(max(out.capacity, room), limit - out.count))
            }
            var feed = source.count - consumed
            var block: LZ4Block?
            if mapping, let frame {
                if consumed == 0 {
                    feed = frame.bytes
                } else if let size = LZ4Block.sizeField(source, at: consumed), size != 0 {
                    let bytes = 4 + Int(size & LZ4Block.sizeMask)
                    if bytes <= feed, out.capacity - out.count >= blockMax {
                        feed = bytes
                        block = LZ4Block(frameOffset: UInt32(consumed), sizeField: size, inflatedStart: out.count)
                    } else {
                        mapping = false
                        mapped = false
                    }
                } else {
                    mapping = false  // the end mark (or a torn size): the rest at once
                }
            }
            var dstSize = out.capacity - out.count
            var srcSize = feed
            let hint = LZ4F_decompress(dctx, out.base + out.count, &dstSize, src + consumed, &srcSize, nil)
            if LZ4F_isError(hint) != 0 {
                LZ4F_resetDecompressionContext(dctx)
                blocks.removeAll()
                return "LZ4: " + String(cString: LZ4F_getErrorName(hint))
            }
            if let block {
                // The map holds only if liblz4 took the whole block and held nothing back.
                if srcSize == feed {
                    blocks.append(block)
                } else {
                    mapping = false
                    mapped = false
                }
            }
            out.count += dstSize
            consumed += srcSize
            if hint == 0 {
                if !mapped { blocks.removeAll() }
                guard consumed == source.count else { return "\(source.count - consumed) bytes after the LZ4 frame" }
                out.reserve(Self.trailingSlackBytes)
                return nil
            }
            if consumed == source.count && dstSize == 0 {
                LZ4F_resetDecompressionContext(dctx)
                blocks.removeAll()
                return "truncated LZ4 frame"
            }
        }
    }

    /// Inflates the first `count` bytes of one block of an independent-block frame
    /// (`block`: its 4-byte size field and its data) into `out` (replacing its content);
    /// false when the block does not hold that many bytes or does not decode. liblz4
    /// stops decoding once it has `count` bytes, so a record near a block's start costs
    /// little. The caller checks what it gets (a CRC): this only promises not to read or
    /// write out of bounds.
    public static func inflatePrefix(ofBlock block: UnsafeRawBufferPointer, count: Int, into out: ByteWriter) -> Bool {
        out.removeAll()
        guard count > 0, count <= LZ4Block.inflatedBytesMax, let size = LZ4Block.sizeField(block, at: 0), size != 0 else { return false }
        let dataBytes = Int(size & LZ4Block.sizeMask)
        guard block.count == 4 + dataBytes, let src = block.baseAddress else { return false }
        out.reserve(count + trailingSlackBytes)
        if size & LZ4Block.uncompressedFlag != 0 {
            guard dataBytes >= count else { return false }
            out.append(UnsafeRawBufferPointer(start: src + 4, count: count))
            return true
        }
        let n = LZ4_decompress_safe_partial((src + 4).assumingMemoryBound(to: CChar.self), UnsafeMutableRawPointer(out.base).assumingMemoryBound(to: CChar.self),
                                            Int32(dataBytes), Int32(count), Int32(count))
        guard n == Int32(count) else { return false }
        out.count = count
        return true
    }
}

extension LZ4Codec {
    /// Whether every match of every compressed block in `frame` copies from bytes the
    /// block (or, for linked blocks, the frame) has already produced: an offset of 0, or
    /// one reaching back before the output's start, is outside the LZ4 format. liblz4
    /// 1.9.4 inflates such a block without error, copying whatever the output buffer
    /// held — bytes of an earlier batch — so a batch from outside (a Kafka client) is
    /// checked with this before it is appended. Kappa's own frames come from liblz4's
    /// compressor and need no check. A frame that does not parse as expected answers
    /// true: the inflate that follows reports it.
    public static func matchOffsetsValid(_ frame: UnsafeRawBufferPointer) -> Bool {
        guard let header = LZ4FrameHeader(frame) else { return true }
        var i = header.bytes
        var produced = 0  // by earlier blocks, for linked blocks
        while let size = LZ4Block.sizeField(frame, at: i), size != 0 {
            let n = Int(size & LZ4Block.sizeMask)
            guard i + 4 + n <= frame.count else { return true }
            let data = UnsafeRawBufferPointer(rebasing: frame[(i + 4)..<(i + 4 + n)])
            if size & LZ4Block.uncompressedFlag != 0 {
                produced += n
            } else {
                guard let out = sequencesValid(data, history: header.independent ? 0 : min(produced, 64 << 10)) else { return false }
                produced += out
            }
            i += 4 + n + (header.blockChecksum ? 4 : 0)
        }
        return true
    }

    /// Walks one compressed block's sequences; returns the bytes it produces, or nil
    /// when a match offset is 0 or reaches before `history` bytes ahead of the block.
    /// Lengths that overrun the block end the walk (the inflate reports those).
    /// The hot path of a Kafka client's Produce: wrapping arithmetic (a block is at most
    /// 4 MiB and each length at most its bytes × 255, far from overflowing).
    private static func sequencesValid(_ b: UnsafeRawBufferPointer, history: Int) -> Int? {
        var i = 0, op = 0
        while i < b.count {
            let token = b[i]
            i &+= 1
            let literals = length(b, &i, Int(token >> 4))
            i &+= literals
            op &+= literals
            guard i &+ 2 <= b.count else { return op }  // the last literals (or a torn block)
            let offset = Int(b[i]) | Int(b[i &+ 1]) << 8
            i &+= 2
            guard offset >= 1, offset <= op &+ history else { return nil }
            op &+= length(b, &i, Int(token & 15)) &+ 4
        }
        return op
    }

    /// A literal or match length: the token's 4 bits, and when they are 15, the bytes
    /// after `i` added on while they are 255.
    @inline(__always)
    private static func length(_ b: UnsafeRawBufferPointer, _ i: inout Int, _ nibble: Int) -> Int {
        var n = nibble
        guard n == 15 else { return n }
        while i < b.count {
            let x = b[i]
            i &+= 1
            n &+= Int(x)
            if x != 255 { break }
        }
        return n
    }
}

/// One block of an LZ4 frame, as `LZ4Codec.decompress` met it.
public struct LZ4Block: Equatable, Sendable {
    /// Where its 4-byte size field starts, from the frame's first byte.
    public var frameOffset: UInt32
    /// The size field as stored: the data's length, the high bit set for a block stored
    /// uncompressed.
    public var sizeField: UInt32
    /// Where its bytes start in the inflated output.
    public var inflatedStart: Int

    public init(frameOffset: UInt32, sizeField: UInt32, inflatedStart: Int) {
        self.frameOffset = frameOffset
        self.sizeField = sizeField
        self.inflatedStart = inflatedStart
    }

    /// The block's bytes in the frame: size field and data.
    public var frameBytes: Int { 4 + Int(sizeField & Self.sizeMask) }

    /// The most a block inflates to: the largest block size an LZ4 frame can declare.
    public static let inflatedBytesMax = 4 << 20

    public static let uncompressedFlag: UInt32 = 1 << 31
    public static let sizeMask: UInt32 = ~uncompressedFlag

    static func sizeField(_ p: UnsafeRawBufferPointer, at i: Int) -> UInt32? {
        guard i >= 0, p.count - i >= 4 else { return nil }
        return UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
    }
}

/// The fields of an LZ4 frame header that say how its blocks lie (the LZ4 frame format,
/// section "Frame Descriptor"); liblz4 checks the header itself when it decodes.
struct LZ4FrameHeader {
    /// The header's length: magic, FLG, BD, optional content size and dictionary id, HC.
    let bytes: Int
    let blockMax: Int
    let independent: Bool
    let blockChecksum: Bool
    let dictionary: Bool

    /// Independent blocks without block checksums or a dictionary: each block can be
    /// inflated alone from its own bytes.
    var blocksAlone: Bool { independent && !blockChecksum && !dictionary }

    /// Nil unless `frame` starts with a whole version-01 header.
    init?(_ frame: UnsafeRawBufferPointer) {
        guard frame.count >= 7, frame.loadUnaligned(as: UInt32.self) == UInt32(0x184D_2204).littleEndian else { return nil }
        let flg = frame[4], bd = frame[5]
        guard flg >> 6 == 1 else { return nil }  // version 01
        let contentSize = flg & 0x08 != 0
        dictionary = flg & 0x01 != 0
        bytes = 7 + (contentSize ? 8 : 0) + (dictionary ? 4 : 0)
        guard frame.count >= bytes else { return nil }
        switch (bd >> 4) & 7 {
        case 4: blockMax = 64 << 10
        case 5: blockMax = 256 << 10
        case 6: blockMax = 1 << 20
        case 7: blockMax = 4 << 20
        default: return nil
        }
        independent = flg & 0x20 != 0
        blockChecksum = flg & 0x10 != 0
    }
}
