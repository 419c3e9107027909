import Dispatch
import Hummingbird
import Metrics

/// Counts every HTTP request and records its latency, by route pattern (never the path:
/// ids stay out of labels), method and status: `kappa_http_requests_total`,
/// `kappa_http_request_duration_seconds` (a histogram).
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: KappaMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let response = try await next(request, context)
        let route = Self.routeLabel(context.endpointPath)
        let dims = [("route", route), ("method", request.method.rawValue), ("status", "\(response.status.code)")]
        Counter(label: "kappa_http_requests_total", dimensions: dims).increment()
        Metrics.Timer(label: "kappa_http_request_duration_seconds", dimensions: [("route", route), ("method", request.method.rawValue)])
            .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        return response
    }

    /// `/v1/rides/:ride_id/tickets` → `/v1/rides/{ride_id}/tickets`; unmatched → `unmatched`.
    static func routeLabel(_ path: String?) -> String {
        guard let path else { return "unmatched" }
        return path.split(separator: "/", omittingEmptySubsequences: false).map { part in
            part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
        }.joined(separator: "/")
    }
}
