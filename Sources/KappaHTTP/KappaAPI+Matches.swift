import Hummingbird
import KappaCore
import KappaJSON
import KappaStreams

/// `/v1/rides/{ride_id}/tickets` and `/v1/tickets/{ticket_id}`: the ride-to-ticket match
/// store. The job is the one whose current version matches; with several, `?job=` names it.
extension KappaAPI {
    func addMatchRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/rides/:ride_id/tickets") { request, context in
            let ride = try request.path(context, "ride_id")
            let job = try matchJob(request)
            return try withView(job) { view in
                let ids = view.tickets(ofRide: ride)
                var out: [UInt8] = []
                out.append(contentsOf: "{\"job\":\(JSONEscape.quoted(job)),\"version\":\(view.version),\"ride_id\":\(JSONEscape.quoted(ride)),\"as_of\":\(Self.asOf(view)),\"tickets\":[".utf8)
                Self.appendRows(ids, of: view, to: &out)
                out.append(contentsOf: "]}".utf8)
                return json(out)
            }
        }
        router.get("/v1/tickets/:ticket_id") { request, context in
            let ticket = try request.path(context, "ticket_id")
            let job = try matchJob(request)
            return try withView(job) { view in
                guard let row = view.row(RowID(key: ticket, start: 0)) else {
                    throw Problem.notFound("ticket '\(ticket)' is not in \(job) v\(view.version) as of its last checkpoints")
                }
                var out: [UInt8] = []
                out.append(contentsOf: "{\"job\":\(JSONEscape.quoted(job)),\"version\":\(view.version),\"as_of\":\(Self.asOf(view)),\"ticket\":".utf8)
                Self.appendRow(row, to: &out)
                out.append(UInt8(ascii: "}"))
                return json(out)
            }
        }
    }

    /// `?job=` or the only job whose current version is a match.
    func matchJob(_ request: Request) throws -> String {
        let matches = store.readAll { views in
            views.values.filter { if case .match = $0.definition.operation { return true } else { return false } }.map(\.job).sorted()
        }
        if let job = request.query("job") {
            guard matches.contains(job) else {
                if store.read(job, { if case .unknown = $0 { return true } else { return false } }) {
                    throw Problem.notFound("unknown job '\(job)' (GET /v1/jobs lists them)")
                }
                throw Problem.badParameter("job", "'\(job)' is not a loaded match job (match jobs: \(matches.joined(separator: ", ")))")
            }
            return job
        }
        guard let only = matches.first else {
            if let why = store.notReady { throw Problem.notReady(why) }
            throw Problem.notFound("no match job has a current version (start one: kappa process ticket-ride-match.yaml)")
        }
        guard matches.count == 1 else { throw Problem.badParameter("job", "required: several match jobs (\(matches.joined(separator: ", ")))") }
        return only
    }
}
