/// A growable byte buffer for building batches and output with explicit ownership: one
/// owner, not thread-safe, never shrinks. Writes go through raw pointers so hot loops do
/// no per-byte bounds or uniqueness checks; `reserve` must precede unchecked writes.
public final class ByteWriter {
    public private(set) var base: UnsafeMutableRawPointer
    public private(set) var capacity: Int
    /// Bytes written so far; `base[0..<count]` is the content.
    public var count: Int = 0

    public init(capacity: Int = 64 << 10) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Makes room for `n` more bytes past `count`.
    @inline(__always) public func reserve(_ n: Int) {
        if count + n > capacity { grow(to: count + n) }
    }

    @inline(never) func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newBase.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always) public func append(_ byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always) public func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    public func append(_ string: String) {
        var s = string
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always) public func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        reserve(MemoryLayout<T>.size)
        (base + count).storeBytes(of: value.bigEndian, as: T.self)
        count += MemoryLayout<T>.size
    }

    /// Overwrites bytes already written.
    @inline(__always) public func setBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        (base + offset).storeBytes(of: value.bigEndian, as: T.self)
    }

    public func removeAll() { count = 0 }

    /// Drops the first `n` bytes, moving the rest to the front.
    public func removeFirst(_ n: Int) {
        precondition(n >= 0 && n <= count)
        if n < count { base.copyMemory(from: base + n, byteCount: count - n) }
        count -= n
    }
}

/// Big-endian loads from unaligned bytes (the on-disk byte order of every Kappa file).
extension UnsafeRawPointer {
    @inline(__always) public func loadBigEndian<T: FixedWidthInteger>(at offset: Int, as: T.Type) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) public func loadBigEndian<T: FixedWidthInteger>(at offset: Int, as type: T.Type) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        return baseAddress!.loadBigEndian(at: offset, as: type)
    }
}
