import Foundation
import Hummingbird
import KappaCore
import KappaJSON
import KappaLog
import KappaStreams
import Logging
import NIOCore
import NIOPosix

/// The routes of SPEC section 11 over a data directory: each handler parses and checks
/// its parameters (400 naming the parameter), then reads the log or a job's store.
/// Blocking file work runs on `pool`, never on the event loops; store lookups are
/// in-memory and answer inline. One file per concept: `KappaAPI+Topics`, `+Jobs`,
/// `+Matches`, `+Daily`, `+Users`, `Dashboard`.
struct KappaAPI: Sendable {
    let directory: DataDirectory
    let store: JobStore
    let options: HTTPServerOptions
    let pool: NIOThreadPool
    let metrics: KappaMetrics
    let history: UserHistoryService
    let logger: Logger

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: HTTPMetricsMiddleware(metrics: metrics))
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: BearerTokenMiddleware(token: options.token))
        router.get("/healthz") { _, _ in json("{\"status\":\"ok\"}") }
        router.get("/readyz") { _, _ in try readyz() }
        router.get("/metrics") { _, _ in try await metricsPage() }
        addTopicRoutes(router)
        addJobRoutes(router)
        addMatchRoutes(router)
        addDailyRoutes(router)
        addUserRoutes(router)
        return router
    }

    func readyz() throws -> Response {
        if let why = store.notReady { throw Problem.notReady(why) }
        if let why = history.notReady { throw Problem.notReady(why) }
        return json("{\"status\":\"ready\"}")
    }

    func metricsPage() async throws -> Response {
        let text = try await pool.runIfActive { metrics.render(directory: directory, store: store) }
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }

    /// Runs blocking file work on the pool; a library error becomes its problem.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(KappaError) -> T) async throws -> T {
        try await pool.runIfActive { () throws -> T in try body() }
    }
}

// MARK: answers and parameters

func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
    json(Array(text.utf8), status: status)
}

func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    var buffer = ByteBuffer()
    buffer.reserveCapacity(bytes.count + 1)
    buffer.writeBytes(bytes)
    buffer.writeInteger(UInt8(ascii: "\n"))
    return Response(status: status, headers: headers, body: .init(byteBuffer: buffer))
}

extension Request {
    /// A query parameter as text, if given.
    func query(_ name: String) -> String? { uri.queryParameters.get(name) }

    /// An integer query parameter within `range`; `fallback` when absent; else 400.
    func integer(_ name: String, in range: ClosedRange<Int>, default fallback: Int?) throws -> Int? {
        guard let text = query(name) else { return fallback }
        guard let v = Int(text) else { throw Problem.badParameter(name, "'\(text)' is not an integer") }
        guard range.contains(v) else { throw Problem.badParameter(name, "\(v) is outside \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    /// A path parameter (the router only matches when it is there).
    func path(_ context: BasicRequestContext, _ name: String) throws -> String {
        guard let v = context.parameters.get(name), !v.isEmpty else { throw Problem(.badRequest, "missing path parameter '\(name)'") }
        return v.removingPercentEncoding ?? v
    }
}
