import Hummingbird
import KappaCore
import KappaJSON
import KappaStreams

/// `/v1/jobs/{job}/daily` and `/dashboard`: a window job's counts per UTC day (all keys
/// summed) with a forecast (`DailyReport`).
extension KappaAPI {
    func addDailyRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/jobs/:job/daily") { request, context in
            let job = try request.path(context, "job")
            let (report, head) = try daily(job, request)
            return json("{" + head + "," + report.jsonMembers + "}")
        }
        router.get("/dashboard") { request, _ in
            let job = request.query("job") ?? "rides-per-day"
            let (report, _) = try daily(job, request)
            let (version, streamTime) = try withView(job) { view in (view.version, Self.asOfStreamTime(view)) }
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            let page = Dashboard(job: job, version: version, streamTime: streamTime, report: report).html
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: page)))
        }
    }

    static func asOfStreamTime(_ view: JobView) -> String? {
        view.tasks.compactMap { $0.status.streamTime }.min { (try? EventTime.parse($0).get().rawValue) ?? 0 < (try? EventTime.parse($1).get().rawValue) ?? 0 }
    }

    /// The report, and the answer's first members (job, version, as_of, the parameters).
    func daily(_ job: String, _ request: Request) throws -> (DailyReport, String) {
        let days = try request.integer("days", in: 1...options.daysMax, default: 30)!
        let horizon = try request.integer("forecast", in: 0...options.daysMax, default: 30)!
        var until: Int64?
        if let text = request.query("until") {
            guard let d = CivilDay.parse(text) else { throw Problem.badParameter("until", "'\(text)' is not a date YYYY-MM-DD") }
            until = d
        }
        let (counts, openDays, head) = try withView(job) { view -> ([Int64: Int64], Set<Int64>, String) in
            guard case .window(let w) = view.definition.operation else {
                throw Problem(.badRequest, "job '\(job)' is a \(view.definition.kind) job; daily counts need a window job with a count aggregate")
            }
            guard w.advanceNanos == w.sizeNanos, JobView.nanosPerDay % w.sizeNanos == 0 else {
                throw Problem(.badRequest, "job '\(job)' has windows that do not tile a day (size \(w.sizeNanos / 1_000_000_000)s, advance \(w.advanceNanos / 1_000_000_000)s): daily sums need tumbling windows whose size divides a day")
            }
            guard view.hasDailyCounts else { throw Problem(.badRequest, "job '\(job)' has no count aggregate") }
            let (c, o) = view.daily()
            return (c, o, "\"job\":\(JSONEscape.quoted(job)),\"version\":\(view.version),\"as_of\":\(Self.asOf(view))")
        }
        let report = DailyReport(counts: counts, openDays: openDays, days: days, horizon: horizon, until: until)
        return (report, head + ",\"days\":\(days),\"until\":\(report.actual.last.map { "\"\(CivilDay.name($0.day))\"" } ?? "null")")
    }
}
