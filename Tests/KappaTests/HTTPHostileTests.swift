import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore

/// Hostile and careless clients: unknown routes, bad parameters, bodies over the limit,
/// slow and stalled connections, and the bearer token beyond loopback.
extension HTTPTests {
    @Suite struct Hostile {
        @Test func badRequestsGetProblemDetails() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 1)
            let serve = try HTTPServe(ws, extra: ["--http-max-body-bytes", "4096"])
            for path in ["/nope", "/v1", "/v1/topics/rides/nope", "/v1/jobs/x/y/z", "/dashboard/extra"] {
                try expectProblem(try serve.get(path), 404)
            }
            for path in ["/v1/topics/rides/records?partition=abc", "/v1/topics/rides/records?partition=0&limit=0",
                         "/v1/topics/rides/records?partition=0&limit=100000", "/v1/topics/rides/records?partition=-1",
                         "/v1/topics/rides/records?partition=0&offset=-5", "/v1/users/u1/events?from=yesterday",
                         "/v1/jobs/j/rows?cursor=%%%", "/v1/jobs/j/daily?until=2016-02-30", "/v1/jobs/j/daily?days=0"] {
                let o = try expectProblem(try serve.get(path), 400)
                #expect(o["parameter"] is String || (o["detail"] as? String)?.contains("parameter") == true, "\(path): \(o)")
            }
            // Over the body limit: 413 before anything is written, whether the length is
            // declared up front or the body just keeps coming (chunked).
            let big = joinLines((0..<200).map { i in Array("{\"user_id\":\"u\(i)\",\"time_utc\":\"1457741907\"}".utf8) })
            try expectProblem(try serve.post("/v1/topics/rides/records", big), 413)
            let chunked = try chunkedPost(serve.port, "/v1/topics/rides/records", big)
            try expectProblem(chunked, 413)
            #expect(try ws.endOffsets("rides") == [0])
            #expect(try serve.post("/v1/topics/rides/records", Array(big.prefix(1000)).split(separator: 0x0A).dropLast().map(Array.init).reduce([]) { $0 + $1 + [0x0A] }).status == 200)
            #expect(try serve.stop() == 0)
        }

        @Test func slowAndStalledClientsDoNotHoldOthersUp() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 1)
            let serve = try HTTPServe(ws)
            // Ten connections that send half a request head and stall, and one that sends
            // a body one byte at a time.
            var stalled: [Int32] = []
            defer { for fd in stalled { close(fd) } }
            for _ in 0..<10 {
                let fd = try HTTPClient.connect(port: serve.port)
                try HTTPClient.sendAll(fd, Array("GET /v1/topics HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8))
                stalled.append(fd)
            }
            let slow = try HTTPClient.connect(port: serve.port)
            stalled.append(slow)
            let body = Array("{\"user_id\":\"u1\",\"time_utc\":\"1457741907\"}\n".utf8)
            try HTTPClient.sendAll(slow, Array("POST /v1/topics/rides/records HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body.prefix(5))
            // Meanwhile every other client is answered.
            for _ in 0..<20 {
                #expect(try serve.get("/v1/topics").status == 200)
                #expect(try serve.get("/healthz").status == 200)
            }
            // The slow body completes, and is written.
            for b in body.dropFirst(5) { try HTTPClient.sendAll(slow, [b]) }
            let answer = try HTTPClient.parse(try HTTPClient.receiveUntilComplete(slow))
            #expect(answer.status == 200, "\(answer)")
            #expect(try ws.endOffsets("rides") == [1])
            #expect(try serve.stop() == 0)
        }

        @Test func beyondLoopbackWritesNeedTheToken() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 1)
            let refused = try ws.kappa(["serve", "--kafka", "off", "--http", "0.0.0.0:0"])
            #expect(refused.status != 0)
            #expect(refused.stderrText.contains("--http-token-file"), "\(refused)")
            let tokenFile = try ws.writeFile("token", lines: [Array("s3cret-token-0123456789".utf8)])
            let process = try ws.start(["serve", "--kafka", "off", "--http", "0.0.0.0:0", "--http-token-file", tokenFile])
            var port = 0
            try waitUntil("kappa serve to listen on 0.0.0.0") {
                guard let line = process.stderrText.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://") }) else { return false }
                port = Int(line.split(separator: " ")[2].split(separator: ":").last!)!
                return true
            }
            let body = Array("{\"user_id\":\"u1\",\"time_utc\":\"1457741907\"}\n".utf8)
            try expectProblem(try HTTPClient.request(port: port, "POST", "/v1/topics/rides/records", body: body), 401)
            try expectProblem(try HTTPClient.request(port: port, "POST", "/v1/topics/rides/records", body: body, headers: ["Authorization": "Bearer wrong-token-0123456789"]), 401)
            #expect(try ws.endOffsets("rides") == [0])
            let ok = try HTTPClient.request(port: port, "POST", "/v1/topics/rides/records", body: body, headers: ["Authorization": "Bearer s3cret-token-0123456789"])
            #expect(ok.status == 200, "\(ok)")
            #expect(try HTTPClient.get(port, "/v1/topics").status == 200)  // reads need no token
            #expect(try ws.endOffsets("rides") == [1])
            process.send(SIGTERM)
            #expect(try process.waitForExit() == 0)
        }
    }
}

/// A POST whose body is sent chunked (no length up front).
private func chunkedPost(_ port: Int, _ path: String, _ body: [UInt8]) throws -> HTTPAnswer {
    let fd = try HTTPClient.connect(port: port)
    defer { close(fd) }
    try HTTPClient.sendAll(fd, Array("POST \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
    var i = 0
    while i < body.count {
        let chunk = body[i..<min(i + 512, body.count)]
        // The server may answer 413 and close before the whole body is sent.
        guard (try? HTTPClient.sendAll(fd, Array(String(chunk.count, radix: 16).utf8) + [13, 10] + chunk + [13, 10])) != nil else { break }
        i += 512
    }
    _ = try? HTTPClient.sendAll(fd, Array("0\r\n\r\n".utf8))
    return try HTTPClient.parse(try HTTPClient.receiveAll(fd))
}

extension HTTPClient {
    /// Reads until one whole answer with a Content-Length has arrived (keep-alive connections).
    static func receiveUntilComplete(_ fd: Int32) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if let end = firstIndex(of: Array("\r\n\r\n".utf8), in: out) {
                let head = String(decoding: out[0..<end], as: UTF8.self).lowercased()
                if let line = head.components(separatedBy: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                   let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)), out.count >= end + 4 + length {
                    return out
                }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            guard n > 0 else { return out }
            out += buffer[0..<n]
        }
    }
}
