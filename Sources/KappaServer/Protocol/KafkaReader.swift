import NIOCore

/// Why a request's bytes could not be decoded. The connection that sent them is closed:
/// a Kafka server cannot answer a request it cannot parse (the response layout depends
/// on fields it did not get), and Kafka itself closes the connection too.
public struct RequestDecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A bounds-checked cursor over one request (the bytes after its length prefix), with
/// Kafka's pre-flexible primitive types: big-endian integers, `string` (int16 length),
/// `nullable string` (-1 = null), `bytes` (int32 length, -1 = null), `array` (int32
/// count, -1 = null).
///
/// Every length and count is checked against the bytes that remain before anything is
/// allocated: an array of a billion elements in a request of a few bytes is refused at
/// its count, so decoding never allocates more than the frame it was given (itself
/// bounded by `ServerLimits.frameBytesMax`). Nothing here traps on any input.
struct KafkaReader {
    private(set) var buffer: ByteBuffer

    init(_ buffer: ByteBuffer) { self.buffer = buffer }

    var remaining: Int { buffer.readableBytes }

    mutating func int8() throws(RequestDecodeError) -> Int8 { try integer(Int8.self, "int8") }
    mutating func int16() throws(RequestDecodeError) -> Int16 { try integer(Int16.self, "int16") }
    mutating func int32() throws(RequestDecodeError) -> Int32 { try integer(Int32.self, "int32") }
    mutating func int64() throws(RequestDecodeError) -> Int64 { try integer(Int64.self, "int64") }
    mutating func bool() throws(RequestDecodeError) -> Bool { try int8() != 0 }

    private mutating func integer<T: FixedWidthInteger>(_ type: T.Type, _ name: String) throws(RequestDecodeError) -> T {
        guard let v = buffer.readInteger(endianness: .big, as: T.self) else {
            throw RequestDecodeError("request ends inside an \(name) (\(buffer.readableBytes) bytes left)")
        }
        return v
    }

    mutating func string() throws(RequestDecodeError) -> String {
        guard let s = try nullableString() else { throw RequestDecodeError("a non-nullable string is null") }
        return s
    }

    mutating func nullableString() throws(RequestDecodeError) -> String? {
        let length = try int16()
        if length == -1 { return nil }
        guard length >= 0 else { throw RequestDecodeError("string length \(length)") }
        guard let s = buffer.readString(length: Int(length)) else {
            throw RequestDecodeError("string of \(length) bytes overruns the request (\(buffer.readableBytes) bytes left)")
        }
        return s
    }

    /// `bytes` as a slice of the request (no copy); nil for null.
    mutating func nullableBytes() throws(RequestDecodeError) -> ByteBuffer? {
        let length = try int32()
        if length == -1 { return nil }
        guard length >= 0 else { throw RequestDecodeError("bytes length \(length)") }
        guard let b = buffer.readSlice(length: Int(length)) else {
            throw RequestDecodeError("bytes field of \(length) bytes overruns the request (\(buffer.readableBytes) bytes left)")
        }
        return b
    }

    mutating func bytes() throws(RequestDecodeError) -> ByteBuffer {
        guard let b = try nullableBytes() else { throw RequestDecodeError("a non-nullable bytes field is null") }
        return b
    }

    /// Reads an array; nil for null (-1). Each element takes at least `elementBytesMin`
    /// bytes, so the count is checked against what remains before any element is read.
    mutating func nullableArray<T>(elementBytesMin: Int = 1, _ element: (inout KafkaReader) throws(RequestDecodeError) -> T) throws(RequestDecodeError) -> [T]? {
        precondition(elementBytesMin >= 1)
        let count = try int32()
        if count == -1 { return nil }
        guard count >= 0 else { throw RequestDecodeError("array count \(count)") }
        guard Int(count) <= buffer.readableBytes / elementBytesMin else {
            throw RequestDecodeError("array of \(count) elements cannot fit in the \(buffer.readableBytes) bytes left")
        }
        var out: [T] = []
        out.reserveCapacity(Int(count))
        for _ in 0..<count { out.append(try element(&self)) }
        return out
    }

    mutating func array<T>(elementBytesMin: Int = 1, _ element: (inout KafkaReader) throws(RequestDecodeError) -> T) throws(RequestDecodeError) -> [T] {
        guard let a = try nullableArray(elementBytesMin: elementBytesMin, element) else {
            throw RequestDecodeError("a non-nullable array is null")
        }
        return a
    }

    mutating func int32Array() throws(RequestDecodeError) -> [Int32] {
        try array(elementBytesMin: 4) { (r: inout KafkaReader) throws(RequestDecodeError) in try r.int32() }
    }

    mutating func stringArray() throws(RequestDecodeError) -> [String] {
        try array(elementBytesMin: 2) { (r: inout KafkaReader) throws(RequestDecodeError) in try r.string() }
    }

    /// Requests must be consumed exactly: trailing bytes mean the layout was misread.
    func expectEnd(_ what: String) throws(RequestDecodeError) {
        guard buffer.readableBytes == 0 else {
            throw RequestDecodeError("\(buffer.readableBytes) bytes after the end of \(what)")
        }
    }
}
