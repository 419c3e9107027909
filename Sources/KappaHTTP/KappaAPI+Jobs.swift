import Hummingbird
import KappaCore
import KappaJSON
import KappaLog
import KappaStreams

/// `/v1/jobs`: jobs (as `kappa jobs list|describe`) and a job's rows (as `kappa query`),
/// paged by an opaque keyset cursor from the current version's store.
extension KappaAPI {
    func addJobRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/jobs") { _, _ in
            let dir = directory
            let lines = try await blocking { () throws(KappaError) in
                let registry = JobRegistry(directory: dir)
                var lines: [String] = []
                for name in try registry.names() {
                    if let r = try registry.load(name) { lines.append(Describe.job(name, r)) }
                }
                return lines
            }
            return json("{\"jobs\":[" + lines.joined(separator: ",") + "]}")
        }
        router.get("/v1/jobs/:job") { request, context in
            let job = try request.path(context, "job")
            let dir = directory
            let lines = try await blocking { () throws(KappaError) in
                let registry = JobRegistry(directory: dir)
                let record = try Self.requireJob(registry, job)
                return try record.versions.sorted { $0.version < $1.version }.map { (v) throws(KappaError) in
                    try Describe.version(v, record: record, dir: dir, registry: registry)
                }
            }
            return json("{\"job\":\(JSONEscape.quoted(job)),\"versions\":[" + lines.joined(separator: ",") + "]}")
        }
        router.get("/v1/jobs/:job/rows") { request, context in try rows(request, context) }
    }

    static func requireJob(_ registry: JobRegistry, _ job: String) throws(KappaError) -> JobRecord {
        guard (try? validateName(job, what: "job")) != nil, let r = try registry.load(job) else {
            throw KappaError(.notFound, "unknown job '\(job)' (GET /v1/jobs lists them)")
        }
        return r
    }

    /// Runs `body` with the job's current view under the store's lock: 404 for an unknown
    /// job, 503 while its store loads.
    func withView<T>(_ job: String, _ body: (JobView) throws -> T) throws -> T {
        try store.read(job) { lookup in
            switch lookup {
            case .view(let v): return try body(v)
            case .loading(let why): throw Problem.notReady("job '\(job)': \(why)")
            case .unknown:
                if (try? JobRegistry(directory: directory).load(job)) != nil {
                    throw Problem.notReady("job '\(job)' has no current version yet, or its store is not loaded yet")
                }
                throw Problem.notFound("unknown job '\(job)' (GET /v1/jobs lists them)")
            }
        }
    }

    func rows(_ request: Request, _ context: BasicRequestContext) throws -> Response {
        let job = try request.path(context, "job")
        let key = request.query("key")
        let limit = try request.integer("limit", in: 1...options.pageLimitMax, default: options.pageLimitDefault)!
        let cursor = try request.query("cursor").map { text in
            guard let c = PageCursor(text: text) else { throw Problem.badParameter("cursor", "not a cursor this server made") }
            return c
        }
        return try withView(job) { view in
            if let cursor, cursor.version != view.version {
                throw Problem(.conflict, "the cursor was made in v\(cursor.version); \(job) is now at v\(view.version) (a replay was switched to): start again without a cursor",
                              extra: [("version", "\(view.version)")])
            }
            let (ids, more) = view.page(after: cursor?.after, key: key, limit: limit)
            if let key, ids.isEmpty, cursor == nil {
                throw Problem.notFound("job '\(job)' has no rows with key '\(key)' as of its last checkpoints")
            }
            var out: [UInt8] = []
            out.append(contentsOf: "{\"job\":\(JSONEscape.quoted(job)),\"version\":\(view.version),\"as_of\":\(Self.asOf(view)),\"rows\":[".utf8)
            Self.appendRows(ids, of: view, to: &out)
            let next = more ? JSONEscape.quoted(PageCursor(version: view.version, after: ids.last!).text) : "null"
            out.append(contentsOf: "],\"next_cursor\":\(next)}".utf8)
            return json(out)
        }
    }

    static func appendRows(_ ids: [RowID], of view: JobView, to out: inout [UInt8]) {
        for (i, id) in ids.enumerated() {
            guard let row = view.row(id) else { continue }
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendRow(row, to: &out)
        }
    }

    /// The row's JSON with `"final"` added, as `kappa query` prints it.
    static func appendRow(_ row: JobView.Row, to out: inout [UInt8]) {
        var json = row.json[...]
        if json.last == UInt8(ascii: "}") { json = json.dropLast() }
        out.append(contentsOf: json)
        out.append(contentsOf: (row.final ? ",\"final\":true}" : ",\"final\":false}").utf8)
    }

    /// What the rows reflect: the version, and per task the input offsets (the next offset
    /// to read of each input partition), stream time and watermark(s) of the checkpoint
    /// the rows come from.
    static func asOf(_ view: JobView) -> String {
        let tasks = view.tasks.map { t -> String in
            let s = t.status
            var parts = ["\"task\":\(t.task)"]
            let offsets = s.inputOffsets.keys.sorted().map { "\(JSONEscape.quoted($0)):\(s.inputOffsets[$0]!)" }.joined(separator: ",")
            parts.append("\"input_offsets\":{\(offsets)}")
            if let r = s.repartitionOffset { parts.append("\"repartition_offset\":\(r)") }
            parts.append("\"stream_time\":\(s.streamTime.map(JSONEscape.quoted) ?? "null")")
            if let w = s.watermark { parts.append("\"watermark\":\(JSONEscape.quoted(w))") }
            if let w = s.ridesWatermark { parts.append("\"rides_watermark\":\(JSONEscape.quoted(w))") }
            if let w = s.ticketsWatermark { parts.append("\"tickets_watermark\":\(JSONEscape.quoted(w))") }
            parts.append("\"output_offset\":\(t.outputEnd)")
            return "{" + parts.joined(separator: ",") + "}"
        }
        let streamTimes = view.tasks.compactMap { $0.status.streamTime }
        let oldest = streamTimes.min { (try? EventTime.parse($0).get().rawValue) ?? 0 < (try? EventTime.parse($1).get().rawValue) ?? 0 }
        return "{\"version\":\(view.version),\"stream_time\":\(oldest.map(JSONEscape.quoted) ?? "null"),\"tasks\":[\(tasks.joined(separator: ","))]}"
    }
}
