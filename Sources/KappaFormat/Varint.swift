import KappaCore
/// Kafka's variable-length integers (protobuf style): 7 bits per byte, low groups first,
/// high bit = "more". Signed values are zigzag-encoded so small negatives stay short.
/// `varint` is 32-bit (at most 5 bytes), `varlong` 64-bit (at most 10 bytes).
public enum Varint {
    public static let int32BytesMax = 5
    public static let int64BytesMax = 10

    @inline(__always) public static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
    @inline(__always) public static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

    /// Encoded size of a signed value.
    @inline(__always) public static func size(_ value: Int64) -> Int {
        var v = zigzag(value)
        var n = 1
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }

    /// Writes `value` at `p`; returns bytes written. Caller reserved `int64BytesMax`.
    @inline(__always) public static func write(_ value: Int64, to p: UnsafeMutableRawPointer) -> Int {
        var v = zigzag(value)
        var i = 0
        while v >= 0x80 {
            p.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: i, as: UInt8.self)
            v >>= 7
            i += 1
        }
        p.storeBytes(of: UInt8(v), toByteOffset: i, as: UInt8.self)
        return i + 1
    }

    public enum DecodeFailure: Error, Equatable, Sendable {
        /// The bytes end inside the varint: feed more and retry.
        case needMoreBytes
        /// More continuation bytes than the type allows.
        case tooLong
    }

    /// Reads a signed zigzag value from `p[0..<limit]`; `bytesMax` 5 for varint, 10 for varlong.
    @inline(__always)
    public static func read(_ p: UnsafeRawPointer, limit: Int, bytesMax: Int = int64BytesMax) -> (value: Int64, length: Int)? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var i = 0
        while i < limit && i < bytesMax {
            let b = p.load(fromByteOffset: i, as: UInt8.self)
            result |= UInt64(b & 0x7F) << shift
            i += 1
            if b < 0x80 { return (unzigzag(result), i) }
            shift += 7
        }
        return nil
    }

    /// Like `read`, but says why it failed.
    public static func decode(_ bytes: UnsafeRawBufferPointer, bytesMax: Int = int64BytesMax) -> Result<(value: Int64, length: Int), DecodeFailure> {
        guard let base = bytes.baseAddress else { return .failure(.needMoreBytes) }
        if let r = read(base, limit: bytes.count, bytesMax: bytesMax) { return .success(r) }
        return .failure(bytes.count >= bytesMax ? .tooLong : .needMoreBytes)
    }
}

extension ByteWriter {
    @inline(__always) public func appendVarint(_ value: Int64) {
        reserve(Varint.int64BytesMax)
        count += Varint.write(value, to: base + count)
    }
}
