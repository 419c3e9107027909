import Hummingbird
import KappaCore
import KappaJSON

/// An error answer as RFC 9457 problem details (`application/problem+json`): `type`
/// (about:blank: the status says it all), `title` (the status's phrase), `status`,
/// `detail` (what was wrong, with the evidence: the parameter, the line, the limit), and
/// extra members given as JSON fragments (`"line": 3`).
struct Problem: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var detail: String
    var extra: [(String, String)] = []

    init(_ status: HTTPResponse.Status, _ detail: String, extra: [(String, String)] = []) {
        self.status = status
        self.detail = detail
        self.extra = extra
    }

    static func badParameter(_ name: String, _ why: String) -> Problem {
        Problem(.badRequest, "query parameter '\(name)': \(why)", extra: [("parameter", JSONEscape.quoted(name))])
    }

    static func notFound(_ what: String) -> Problem { Problem(.notFound, what) }

    static func notReady(_ why: String) -> Problem { Problem(.serviceUnavailable, why) }

    /// A `KappaError` from the library: not found, bad input and the rest map to their status.
    init(_ error: KappaError) {
        switch error.code {
        case .notFound: self.init(.notFound, error.description)
        case .badInput, .invalidArgument: self.init(.badRequest, error.description)
        case .conflict, .alreadyExists: self.init(.conflict, error.description)
        default: self.init(.internalServerError, error.description)
        }
    }

    var json: String {
        var s = "{\"type\":\"about:blank\",\"title\":\(JSONEscape.quoted(status.reasonPhrase)),\"status\":\(status.code),\"detail\":\(JSONEscape.quoted(detail))"
        for (k, v) in extra { s += ",\(JSONEscape.quoted(k)):\(v)" }
        return s + "}"
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"kappa\"" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json + "\n")))
    }
}

/// Turns every error into problem details: Hummingbird's own (404 for an unknown route,
/// 413 for a body over the limit), library errors, and anything else as a 500 that names
/// the error.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let p as Problem {
            return try p.response(from: request, context: context)
        } catch let e as KappaError {
            return try Problem(e).response(from: request, context: context)
        } catch let e as HTTPError {
            let detail: String
            switch e.status {
            case .notFound: detail = "no route \(request.method) \(request.uri.path) (see GET /v1/topics, /v1/jobs, /dashboard, /metrics)"
            case .contentTooLarge: detail = "the request body is over the limit" + (e.body.map { ": \($0)" } ?? "")
            default: detail = e.body ?? e.status.reasonPhrase
            }
            return try Problem(e.status, detail).response(from: request, context: context)
        } catch let e as any HTTPResponseError {
            return try Problem(e.status, "\(e)").response(from: request, context: context)
        } catch {
            return try Problem(.internalServerError, "\(error)").response(from: request, context: context)
        }
    }
}

/// Write routes (POST) need `Authorization: Bearer TOKEN` when a token is configured
/// (always when the server listens beyond loopback).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let token, request.method == .post {
            let given = request.headers[.authorization] ?? ""
            guard given.hasPrefix("Bearer "), constantTimeEqual(Array(given.utf8.dropFirst(7)), Array(token.utf8)) else {
                throw Problem(.unauthorized, "write routes need 'Authorization: Bearer TOKEN' (the token of --http-token-file)")
            }
        }
        return try await next(request, context)
    }

    /// Compares without stopping at the first difference (the time does not tell how much matched).
    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
