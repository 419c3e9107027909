import ArgumentParser
import KappaCore
import KappaJSON
import KappaLog
import KappaStreams

/// `kappa query JOB [KEY] [--ride RIDE_ID]`: JSON Lines from the current version's
/// store: final results from its output topic, open ones from its task checkpoints.
struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Rows of a job's current version: windows by key, sessions by user, matches by ticket or ride.",
        discussion: "Each row carries \"final\": true once it can no longer change (false: a window or session still open, a ticket still waiting for its rides).")

    @OptionGroup var data: DataOptions
    @Argument var job: String
    @Argument(help: "A key: a city, a user, a ticket id.") var key: String?
    @Option(help: "All tickets matched to this ride (match jobs).") var ride: String?
    @Option(help: "Query this version instead of the current one.") var version: Int?

    func run() throws {
        try runReportingErrors {
            let dir = DataDirectory(root: data.path)
            let record = try JobRegistry(directory: dir).require(job)
            guard let n = version ?? record.current, let v = record.version(n) else {
                throw KappaError(.notFound, "job '\(job)' has no current version (make one current with: kappa jobs switch \(job) N)")
            }
            let def = v.definition
            if ride != nil, case .match = def.operation {} else if ride != nil {
                throw KappaError(.invalidArgument, "--ride works on match jobs; \(job) is a \(def.kind) job")
            }
            // Open rows first, then final ones: a window finalised between the two reads
            // is then found final, and a row both final and still open in a checkpoint not
            // yet rewritten (a sender's partial) is shown once, as final.
            let open = try JobTask.openResults(directory: dir, definition: def, version: n)
            let final = try ResultReader.rows(directory: dir, definition: def, version: n)
            let finalIds = Set(final.map(\.identity))
            let out = StdoutWriter()
            for row in final where matches(row.key, rideId: row.rideId) { out.line(withFinal(row.json, true)) }
            for row in open where !finalIds.contains(row.identity) && matches(row.key, rideId: row.rideId) {
                out.line(withFinal(row.json, false))
            }
            out.flush()
        }
    }

    private func matches(_ rowKey: String, rideId: String?) -> Bool {
        if let ride { return rideId == ride }
        if let key { return rowKey == key }
        return true
    }

    private func withFinal(_ json: [UInt8], _ final: Bool) -> String {
        var s = String(decoding: json, as: UTF8.self)
        if s.hasSuffix("}") { s.removeLast() }
        return s + ",\"final\":\(final)}"
    }

}
