import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP connection to `kappa serve`, for what no Kafka client will send: hostile
/// frames, broken batches, exact retries. Requests are framed by hand in the pre-flexible
/// layout (int32 length, int16 key, int16 version, int32 correlation id, int16-length
/// client id, body); everything else in the tests speaks through real clients.
final class KafkaWire {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0, "socket")
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(rc == 0, "connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends bytes; false when the peer has closed the connection (EPIPE/ECONNRESET).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// The next response frame (after its length), or nil when the server closed the
    /// connection. Throws after 30 s without either.
    func readFrame() throws -> [UInt8]? {
        guard let head = try readExactly(4) else { return nil }
        let length = Int(Int32(bigEndian: head.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
        try #require(length >= 4 && length < 64 << 20, "response length \(length)")
        return try readExactly(length)
    }

    /// True once the server has closed the connection (reading gives end of file or a
    /// reset); false when it is still open after 30 s.
    func isClosedByServer() throws -> Bool {
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET { return true }
                if errno == EAGAIN || errno == EWOULDBLOCK { return false }
                throw CLIFailure(description: "recv: \(String(cString: strerror(errno)))")
            }
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n == 0 || (n < 0 && errno == ECONNRESET) { return nil }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIFailure(description: "no response within 30 s: \(String(cString: strerror(errno)))")
            }
            got += n
        }
        return out
    }

    // MARK: framing

    static func frame(key: Int16, version: Int16, correlationId: Int32 = 1, body: [UInt8]) -> [UInt8] {
        var payload: [UInt8] = []
        payload.append(int16: key)
        payload.append(int16: version)
        payload.append(int32: correlationId)
        payload.append(string: "wire")
        payload += body
        var out: [UInt8] = []
        out.append(int32: Int32(payload.count))
        return out + payload
    }

    static func apiVersions(correlationId: Int32 = 1) -> [UInt8] { frame(key: 18, version: 0, correlationId: correlationId, body: []) }

    /// Produce v3, acks -1, one partition.
    static func produce(topic: String, partition: Int32, records: [UInt8], correlationId: Int32 = 1) -> [UInt8] {
        var body: [UInt8] = []
        body.append(int16: -1)  // transactional_id null
        body.append(int16: -1)  // acks
        body.append(int32: 5000)
        body.append(int32: 1)
        body.append(string: topic)
        body.append(int32: 1)
        body.append(int32: partition)
        body.append(int32: Int32(records.count))
        body += records
        return frame(key: 0, version: 3, correlationId: correlationId, body: body)
    }

    /// Fetch v4 (no wait), one partition.
    static func fetch(topic: String, partition: Int32, offset: Int64, correlationId: Int32 = 1) -> [UInt8] {
        var body: [UInt8] = []
        body.append(int32: -1)
        body.append(int32: 0)  // max_wait_ms: answer at once
        body.append(int32: 1)
        body.append(int32: 1 << 20)
        body.append(0)  // read_uncommitted
        body.append(int32: 1)
        body.append(string: topic)
        body.append(int32: 1)
        body.append(int32: partition)
        body.append(int64: offset)
        body.append(int32: 1 << 20)
        return frame(key: 1, version: 4, correlationId: correlationId, body: body)
    }

    /// Error code, high watermark and record bytes of the single partition of a Fetch v4 answer.
    static func fetchResult(_ response: [UInt8]) throws -> (error: Int16, highWatermark: Int64, recordBytes: Int) {
        var r = ByteCursor(response)
        _ = try r.int32()  // correlation id
        _ = try r.int32()  // throttle
        try #require(try r.int32() == 1)
        _ = try r.string()
        try #require(try r.int32() == 1)
        _ = try r.int32()
        let error = try r.int16()
        let hw = try r.int64()
        _ = try r.int64()  // last stable offset
        let aborted = try r.int32()
        if aborted > 0 { _ = try r.take(Int(aborted) * 16) }
        let bytes = try r.int32()
        return (error, hw, Int(bytes))
    }

    /// The error code and base offset of the single partition of a Produce v3 answer.
    static func produceResult(_ response: [UInt8]) throws -> (error: Int16, baseOffset: Int64) {
        var r = ByteCursor(response)
        _ = try r.int32()  // correlation id
        try #require(try r.int32() == 1)
        _ = try r.string()
        try #require(try r.int32() == 1)
        _ = try r.int32()
        return (try r.int16(), try r.int64())
    }
}

/// Reads big-endian fields from a response in tests.
struct ByteCursor {
    let bytes: [UInt8]
    var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        try #require(position + n <= bytes.count, "response ends at \(bytes.count), wanted \(n) bytes at \(position)")
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    mutating func int16() throws -> Int16 { Int16(bitPattern: try take(2).reduce(0) { $0 << 8 | UInt16($1) }) }
    mutating func int32() throws -> Int32 { Int32(bitPattern: try take(4).reduce(0) { $0 << 8 | UInt32($1) }) }
    mutating func int64() throws -> Int64 { Int64(bitPattern: try take(8).reduce(0) { $0 << 8 | UInt64($1) }) }
    mutating func string() throws -> String {
        let n = Int(try int16())
        return String(decoding: try take(max(0, n)), as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    mutating func append(int16 v: Int16) { append(contentsOf: Swift.withUnsafeBytes(of: v.bigEndian, Array.init)) }
    mutating func append(int32 v: Int32) { append(contentsOf: Swift.withUnsafeBytes(of: v.bigEndian, Array.init)) }
    mutating func append(int64 v: Int64) { append(contentsOf: Swift.withUnsafeBytes(of: v.bigEndian, Array.init)) }
    mutating func append(string s: String) {
        append(int16: Int16(s.utf8.count))
        append(contentsOf: s.utf8)
    }
}

/// The resident memory of a process, in KiB (VmRSS).
func residentKiB(_ pid: pid_t) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
}
