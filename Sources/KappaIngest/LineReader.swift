#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore

/// Splits a byte source (a file descriptor, or an HTTP request body in memory) into
/// lines, in large reads, handing out each line as a view into its buffer followed by at
/// least `padding` readable bytes (what simdjson needs). A line longer than `lineBytesMax` is reported as `.tooLong` and
/// skipped without ever being held whole. Lines end at "\n"; a "\r" before it is dropped;
/// the last line may lack its "\n". Not thread-safe.
public final class LineReader {
    /// Fills up to `count` bytes at the pointer; returns how many (0: end of input), or
    /// -1 with `errno` set. A source that is interrupted returns 0 to end the input.
    public typealias Source = (UnsafeMutableRawPointer, Int) -> Int

    public enum Line {
        case line(number: Int, bytes: UnsafeRawBufferPointer)
        case tooLong(number: Int, bytes: Int, prefix: UnsafeRawBufferPointer)
    }

    let source: Source
    public let path: String
    public let lineBytesMax: Int
    let padding: Int
    private let buffer: UnsafeMutableRawPointer
    private let capacity: Int
    private var start = 0  // first unread byte
    private var end = 0  // bytes filled
    private var eof = false
    public private(set) var lineNumber = 0
    /// True when the last read returned less than asked: the input is a pipe or
    /// terminal that has no more for now, so the caller should flush what it has.
    public private(set) var lastReadWasShort = false

    static let readBytes = 4 << 20

    /// No complete line is waiting in the buffer.
    public var isBufferDrained: Bool { findNewline() == nil }

    /// Reads a file descriptor; `interrupted` is asked when a read returns EINTR (a signal):
    /// true ends the input cleanly.
    public convenience init(fd: Int32, path: String, lineBytesMax: Int, padding: Int, interrupted: @escaping () -> Bool = { false }) {
        self.init(path: path, lineBytesMax: lineBytesMax, padding: padding) { p, count in
            while true {
                let n = read(fd, p, count)
                if n < 0 && errno == EINTR {
                    if interrupted() { return 0 }  // a clean stop: end of input
                    continue
                }
                return n
            }
        }
    }

    /// Reads bytes held in memory (an HTTP request body), which must outlive the reader.
    public convenience init(bytes: UnsafeRawBufferPointer, path: String, lineBytesMax: Int, padding: Int) {
        var done = 0
        self.init(path: path, lineBytesMax: lineBytesMax, padding: padding) { p, count in
            let n = min(count, bytes.count - done)
            if n > 0 { p.copyMemory(from: bytes.baseAddress! + done, byteCount: n) }
            done += n
            return n
        }
    }

    public init(path: String, lineBytesMax: Int, padding: Int, source: @escaping Source) {
        precondition(lineBytesMax > 0 && padding >= 0)
        self.source = source
        self.path = path
        self.lineBytesMax = lineBytesMax
        self.padding = padding
        capacity = max(Self.readBytes, lineBytesMax + 1) + padding
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
    }

    deinit {
        buffer.deallocate()
        prefixStorage.deallocate()
    }

    /// The next line, or nil at end of input. The view is valid until the next call.
    public func next() throws(KappaError) -> Line? {
        while true {
            if let nl = findNewline() {
                lineNumber += 1
                var lineEnd = nl
                if lineEnd > start, buffer.load(fromByteOffset: lineEnd - 1, as: UInt8.self) == 0x0D { lineEnd -= 1 }
                let bytes = UnsafeRawBufferPointer(start: buffer + start, count: lineEnd - start)
                start = nl + 1
                if bytes.count > lineBytesMax {
                    return .tooLong(number: lineNumber, bytes: bytes.count, prefix: UnsafeRawBufferPointer(rebasing: bytes[0..<min(prefixStorageBytes, bytes.count)]))
                }
                return .line(number: lineNumber, bytes: padded(bytes))
            }
            let pending = end - start
            if pending > lineBytesMax {
                // No newline within the limit: report now, then discard up to the newline.
                lineNumber += 1
                let number = lineNumber
                let prefixCount = min(prefixStorageBytes, pending)
                prefixStorage.copyMemory(from: buffer + start, byteCount: prefixCount)
                start = end
                let total = pending + (try discardThroughNewline())
                return .tooLong(number: number, bytes: total, prefix: UnsafeRawBufferPointer(start: prefixStorage, count: prefixCount))
            }
            if eof {
                guard pending > 0 else { return nil }
                lineNumber += 1
                var lineEnd = end
                if buffer.load(fromByteOffset: lineEnd - 1, as: UInt8.self) == 0x0D { lineEnd -= 1 }
                let bytes = UnsafeRawBufferPointer(start: buffer + start, count: lineEnd - start)
                start = end
                return .line(number: lineNumber, bytes: padded(bytes))
            }
            try fill()
        }
    }

    /// The first bytes of an over-long line, kept for the dead-letter record.
    private let prefixStorageBytes = 1024
    private let prefixStorage = UnsafeMutableRawPointer.allocate(byteCount: 1024, alignment: 8)

    /// The line's bytes, with the guarantee that `padding` bytes after them are readable:
    /// true inside the buffer, whose tail beyond `end` is reserved for it.
    private func padded(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        assert(bytes.baseAddress! + bytes.count + padding <= buffer + capacity)
        return bytes
    }

    private func findNewline() -> Int? {
        guard end > start else { return nil }
        guard let p = memchr(buffer + start, 0x0A, end - start) else { return nil }
        return UnsafeMutableRawPointer(p) - buffer
    }

    private func fill() throws(KappaError) {
        if start > 0 {
            let pending = end - start
            if pending > 0 { buffer.copyMemory(from: buffer + start, byteCount: pending) }
            start = 0
            end = pending
        }
        let room = capacity - padding - end
        precondition(room > 0, "a pending line never exceeds lineBytesMax < capacity")
        let n = readSome(into: buffer + end, count: room)
        if n < 0 { throw KappaError.io("read", path: path, errno: errno) }
        if n == 0 { eof = true }
        lastReadWasShort = n < room
        end += n
    }

    private func readSome(into p: UnsafeMutableRawPointer, count: Int) -> Int { source(p, count) }

    /// Drops input through the next newline; returns how many bytes were dropped.
    private func discardThroughNewline() throws(KappaError) -> Int {
        var dropped = 0
        start = 0
        end = 0
        while true {
            let n = readSome(into: buffer, count: capacity - padding)
            if n < 0 { throw KappaError.io("read", path: path, errno: errno) }
            if n == 0 {
                eof = true
                return dropped
            }
            if let p = memchr(buffer, 0x0A, n) {
                let nl = UnsafeMutableRawPointer(p) - buffer
                dropped += nl
                start = nl + 1
                end = n
                return dropped
            }
            dropped += n
        }
    }
}
