import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore

// Helpers for the `kappa serve --http` tests: they run the real `kappa serve` and talk
// HTTP/1.1 to it over a plain socket (no client library between the test and the bytes,
// so hostile requests are as easy as good ones), and compare its answers with the CLI
// (`kappa query`, `consume`, `jobs describe`) and with the raw data.
//
// Contract:
// - `HTTPServe` starts `kappa serve --kafka off --http 127.0.0.1:0` in a workspace and reads
//   the bound address from its "listening on http://" line; the workspace kills it.
// - `HTTPClient.request` sends one request on a new connection and reads the answer to
//   its end (Connection: close), with a deadline; it never retries.
// - Tests that need chromium, statsmodels or prometheus-client skip with a message naming
//   what CI installs (.ci/run).

/// The HTTP suites run one test at a time, like the CLI suites: they start servers, jobs
/// and browsers on a small machine.
@Suite(.serialized) enum HTTPTests {}

struct HTTPAnswer: CustomStringConvertible {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    var contentType: String { headers["content-type"] ?? "" }
    func json() throws -> [String: Any] {
        guard let o = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw CLIFailure(description: "not a JSON object: \(text.prefix(500))")
        }
        return o
    }

    var description: String { "HTTP \(status) \(contentType): \(text.prefix(1500))" }
}

enum HTTPClient {
    /// One request on its own connection; the whole answer.
    static func request(port: Int, _ method: String, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:],
                        timeoutSeconds: Int = 60) throws -> HTTPAnswer {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        let fd = try connect(port: port, timeoutSeconds: timeoutSeconds)
        defer { close(fd) }
        try sendAll(fd, Array(head.utf8) + (body ?? []))
        return try parse(try receiveAll(fd))
    }

    static func get(_ port: Int, _ path: String) throws -> HTTPAnswer { try request(port: port, "GET", path) }

    /// A connected socket with send and receive timeouts.
    static func connect(port: Int, timeoutSeconds: Int = 60) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIFailure(description: "socket: errno \(errno)") }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else {
            close(fd)
            throw CLIFailure(description: "connect 127.0.0.1:\(port): errno \(errno)")
        }
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw CLIFailure(description: "send: errno \(errno) after \(done) of \(bytes.count) bytes") }
            done += n
        }
    }

    static func receiveAll(_ fd: Int32) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n == 0 { return out }
            guard n > 0 else { throw CLIFailure(description: "recv: errno \(errno) after \(out.count) bytes") }
            out += buffer[0..<n]
        }
    }

    static func parse(_ raw: [UInt8]) throws -> HTTPAnswer {
        guard let end = firstIndex(of: Array("\r\n\r\n".utf8), in: raw) else { throw CLIFailure(description: "no HTTP head in \(raw.count) bytes") }
        let head = String(decoding: raw[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw CLIFailure(description: "bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(raw[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = try dechunk(body) }
        return HTTPAnswer(status: status, headers: headers, body: body)
    }

    static func dechunk(_ bytes: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            guard let lineEnd = firstIndex(of: [13, 10], in: Array(bytes[i...])) else { break }
            let sizeText = String(decoding: bytes[i..<(i + lineEnd)], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText, radix: 16) else { throw CLIFailure(description: "bad chunk size \(sizeText)") }
            i += lineEnd + 2
            if size == 0 { break }
            out += bytes[i..<(i + size)]
            i += size + 2
        }
        return out
    }
}

/// A running `kappa serve` with the HTTP API on a free loopback port.
final class HTTPServe {
    let process: CLIProcess
    let port: Int

    init(_ ws: CLIWorkspace, extra: [String] = [], waitReady: Bool = true) throws {
        let process = try ws.start(["serve", "--kafka", "off", "--http", "127.0.0.1:0"] + extra)
        self.process = process
        var port: Int?
        try waitUntil("kappa serve --http to listen", timeoutSeconds: 60) {
            guard process.isRunning else { throw CLIFailure(description: "kappa serve exited: \(process.stderrText)") }
            guard let line = process.stderrText.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://") }) else { return false }
            port = Int(line.split(separator: " ")[2].split(separator: ":").last!)
            return true
        }
        self.port = port!
        if waitReady {
            try waitUntil("/readyz to answer 200", timeoutSeconds: 60) { try self.get("/readyz").status == 200 }
        }
    }

    func get(_ path: String) throws -> HTTPAnswer { try HTTPClient.get(port, path) }

    /// GET that must answer 200 with JSON; the object.
    func json(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let a = try get(path)
        try #require(a.status == 200, "GET \(path): \(a)", sourceLocation: sourceLocation)
        #expect(a.contentType.hasPrefix("application/json"), "GET \(path): \(a.contentType)", sourceLocation: sourceLocation)
        return try a.json()
    }

    func post(_ path: String, _ body: [UInt8], headers: [String: String] = [:]) throws -> HTTPAnswer {
        try HTTPClient.request(port: port, "POST", path, body: body, headers: headers)
    }

    @discardableResult
    func stop() throws -> Int32 {
        process.send(SIGTERM)
        return try process.waitForExit(timeoutSeconds: 60)
    }
}

/// Asserts a problem+json answer with `status`; returns its members.
@discardableResult
func expectProblem(_ a: HTTPAnswer, _ status: Int, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    #expect(a.status == status, "\(a)", sourceLocation: sourceLocation)
    #expect(a.contentType == "application/problem+json", "\(a)", sourceLocation: sourceLocation)
    let o = try a.json()
    #expect(int64(o["status"]) == Int64(status), "\(a)", sourceLocation: sourceLocation)
    #expect((o["detail"] as? String)?.isEmpty == false, "\(a)", sourceLocation: sourceLocation)
    return o
}

/// The Python modules and programs the HTTP tests use, when present.
enum HTTPTools {
    static let chromium: String? = KafkaTools.which("chromium")
    static let hasStatsmodels = KafkaTools.pythonHas("statsmodels")
    static let hasPrometheusClient = KafkaTools.pythonHas("prometheus_client")
    static let missingChromium: Comment = "chromium is not installed (CI installs it: apt-get install chromium)"
    static let missingStatsmodels: Comment = "statsmodels is not installed (CI: pip install statsmodels)"
    static let missingPrometheus: Comment = "prometheus-client is not installed (CI: pip install prometheus-client)"
}

/// Percent-encodes a path segment or query value.
func urlEncode(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
}
