/// A cursor that carves one fuzzer input into the values a harness needs: mode bytes,
/// small numbers, length-prefixed chunks, the rest.
///
/// Contract: every input is a valid plan. Reading past the end yields zeros and empty
/// chunks rather than failing, so the fuzzer never wastes executions on framing, and a
/// truncated input still exercises the code under test. Big-endian throughout, like the
/// on-disk formats the fuzzers feed. `FuzzInputBuilder` writes the same layout (the seed
/// generator uses it). A value type over borrowed bytes: valid while the input is.
public struct FuzzInput {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var position = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var remaining: Int { bytes.count - position }
    public var isAtEnd: Bool { remaining == 0 }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// A big-endian u16.
    public mutating func u16() -> Int { Int(byte()) << 8 | Int(byte()) }

    /// A big-endian u32.
    public mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }

    /// Up to `n` bytes (fewer at the end of the input).
    public mutating func take(_ n: Int) -> UnsafeRawBufferPointer {
        precondition(n >= 0)
        let count = min(n, remaining)
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    /// A chunk written by `FuzzInputBuilder.chunk`: a u16 length, then that many bytes.
    public mutating func chunk() -> UnsafeRawBufferPointer { take(u16()) }

    /// Everything not read yet.
    public mutating func rest() -> UnsafeRawBufferPointer { take(remaining) }
}

/// Writes what `FuzzInput` reads, for seed corpora and regression inputs.
public struct FuzzInputBuilder {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func byte(_ b: UInt8) { bytes.append(b) }

    public mutating func bool(_ b: Bool) { bytes.append(b ? 1 : 0) }

    public mutating func u16(_ v: Int) {
        precondition(v >= 0 && v <= 0xFFFF, "u16 out of range: \(v)")
        bytes.append(UInt8(v >> 8))
        bytes.append(UInt8(v & 0xFF))
    }

    public mutating func u32(_ v: UInt32) {
        u16(Int(v >> 16))
        u16(Int(v & 0xFFFF))
    }

    /// A u16 length and the bytes (at most 65 535 of them).
    public mutating func chunk<C: Collection>(_ b: C) where C.Element == UInt8 {
        u16(b.count)
        bytes.append(contentsOf: b)
    }

    public mutating func raw<C: Collection>(_ b: C) where C.Element == UInt8 { bytes.append(contentsOf: b) }
}

/// Stops the fuzzer with `message` when `condition` is false: a violated invariant is a
/// finding just like a crash (libFuzzer saves the input as `crash-…`).
@inline(__always)
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("fuzz invariant violated: \(message())", file: file, line: line) }
}

/// Reads every byte of `view` (a checksum nobody looks at), so that AddressSanitizer
/// checks a view the code under test handed out really lies in live memory.
@inline(never)
public func touch(_ view: UnsafeRawBufferPointer?) -> UInt64 {
    guard let view else { return 0 }
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in view { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// Copies `bytes` into a new allocation of exactly their size (plus `slack` bytes
/// filled with `fill`), so that AddressSanitizer reports a read past the end rather
/// than the fuzzer's own buffer hiding it. The result counts `bytes.count + slack`
/// bytes; the caller deallocates it.
public func exactCopy(_ bytes: UnsafeRawBufferPointer, slack: Int = 0, fill: UInt8 = 0) -> UnsafeMutableRawBufferPointer {
    let total = bytes.count + slack
    let out = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, total), alignment: 16)
    if let base = bytes.baseAddress, bytes.count > 0 { out.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
    for i in bytes.count..<total { out[i] = fill }
    return UnsafeMutableRawBufferPointer(rebasing: out[0..<total])
}
