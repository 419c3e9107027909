#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore

/// Buffered stdout for JSON Lines output: large writes, explicit flush. A closed pipe
/// (EPIPE, e.g. `| head`) is not an error: `closed` turns true and output stops.
final class StdoutWriter {
    let buffer = ByteWriter(capacity: 1 << 20)
    static let flushBytes = 1 << 20
    private(set) var closed = false

    init() {
        signal(SIGPIPE, SIG_IGN)
    }

    func line(_ text: String) {
        buffer.append(text)
        buffer.append(0x0A)
        if buffer.count >= Self.flushBytes { flush() }
    }

    @inline(__always) func flushIfFull() {
        if buffer.count >= Self.flushBytes { flush() }
    }

    func flush() {
        var done = 0
        while done < buffer.count && !closed {
            let n = write(1, buffer.base + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                closed = true  // EPIPE or a closed stdout: the reader is gone
                break
            }
            done += n
        }
        buffer.removeAll()
    }
}
