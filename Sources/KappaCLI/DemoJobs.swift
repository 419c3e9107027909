import KappaCore
import KappaJSON
import KappaLog
import KappaStreams

/// The second half of `kappa demo`: the three jobs of SPEC section 9 over the generated
/// data, then the Kappa step (a replay of rides-per-city with 30-minute windows, switched
/// to once caught up), and a short report on stdout.
struct DemoJobs {
    let directory: DataDirectory
    let dataPath: String
    let days: Int

    static let jobs: [(file: String, yaml: String)] = [
        ("rides-per-city.yaml", """
        name: rides-per-city
        inputs: [rides]
        window:      { key: city, time: time_utc, size: 1h, grace: 10m,
                       aggregates: [count, sum:fare, avg:fare, max:fare], emit: final }
        output: rides-per-city
        """),
        ("app-sessions.yaml", """
        name: app-sessions
        inputs: [app_events]
        session:     { key: user_id, time: time_utc, gap: 30m, grace: 5m }
        output: app-sessions
        """),
        ("ticket-ride-match.yaml", """
        name: ticket-ride-match
        inputs: [tickets, rides]
        match:       { key: user_id, time: time_utc, tickets: tickets, rides: rides, grace: 10m }
        output: ticket-ride-matches
        """),
        // The dashboard's job (`kappa serve`, /dashboard): rides per UTC day, summed over cities.
        ("rides-per-day.yaml", """
        name: rides-per-day
        inputs: [rides]
        window:      { key: city, time: time_utc, size: 1d, grace: 10m, aggregates: [count], emit: final }
        output: rides-per-day
        """),
    ]

    func run() throws(KappaError) {
        let registry = JobRegistry(directory: directory)
        for name in ["rides-per-city", "app-sessions", "ticket-ride-match", "rides-per-day"] where try registry.load(name) != nil {
            try dropAll(name, registry: registry)
        }
        let jobsDir = dataPath + "/demo-jobs"
        try FS.makeDirectories(jobsDir)
        var definitions: [JobDefinition] = []
        for (file, yaml) in Self.jobs {
            try FS.writeAtomically(Array((yaml + "\n").utf8), to: jobsDir + "/" + file, sync: false)
            definitions.append(try JobFile.parse(yaml, path: jobsDir + "/" + file))
        }
        var report: [String] = []
        for def in definitions {
            let (records, seconds) = try runToHead(def, version: 1, registry: registry)
            Stderr.line("  \(def.name) v1: \(records) records in \(format2(seconds))s (\(formatRate(Int(records), seconds: seconds)) records/s)")
        }
        // The Kappa step: the same job with 30-minute windows, computed over all of history.
        var halfHour = definitions[0]
        if case .window(var w) = halfHour.operation {
            w.sizeNanos = 1_800_000_000_000
            w.advanceNanos = w.sizeNanos
            halfHour.operation = .window(w)
        }
        try FS.writeAtomically(Array(Self.jobs[0].yaml.replacingOccurrences(of: "size: 1h", with: "size: 30m").utf8) + [0x0A],
                               to: jobsDir + "/rides-per-city-30m.yaml", sync: false)
        let (replayed, replaySeconds) = try runToHead(halfHour, version: 2, registry: registry)

        report.append("Kappa demo: \(dataPath) (job files in \(jobsDir))")
        report.append("")
        report += try ridesPerCityPerDay(definitions[0])
        report.append("")
        report += try sessions(definitions[1])
        report.append("")
        report += try matches(definitions[2])
        report.append("")
        report.append("Replay (the Kappa step): rides-per-city v2 with 30-minute windows, from offset 0: \(replayed) records in \(format2(replaySeconds))s (\(formatRate(Int(replayed), seconds: replaySeconds)) records/s); v2 is now current, v1 is kept.")
        let rows2 = try ResultReader.rows(directory: directory, definition: halfHour, version: 2)
        let rows1 = try ResultReader.rows(directory: directory, definition: definitions[0], version: 1)
        report.append("  v1 (1h windows): \(rows1.count) final results; v2 (30m windows): \(rows2.count) final results.")
        report.append("  try: kappa jobs diff rides-per-city 1 2 --data \(dataPath) | tail -1")
        report.append("       kappa query rides-per-city Berlin --data \(dataPath) | head")
        report.append("       kappa query ticket-ride-match --ride RIDE_ID --data \(dataPath)")
        report.append("")
        report.append("Dashboard (rides-per-day v1: rides per UTC day, the last 30 days and a 30-day forecast):")
        report.append("  kappa serve --data \(dataPath)   then open http://127.0.0.1:8080/dashboard")
        let out = StdoutWriter()
        for line in report { out.line(line) }
        out.flush()
    }

    private func dropAll(_ name: String, registry: JobRegistry) throws(KappaError) {
        guard let r = try registry.load(name) else { return }
        for v in r.versions { try JobVersions.drop(v.definition, version: v.version, directory: directory) }
        try FS.removeTree(registry.jobPath(name))
    }

    /// Registers `version` of `def`, runs it in this process until it has read every
    /// input record, checkpoints, and makes it current.
    private func runToHead(_ def: JobDefinition, version: Int, registry: JobRegistry) throws(KappaError) -> (Int64, Double) {
        let now = SystemClock().nowNanos()
        try registry.update(def.name) { (record) throws(KappaError) in
            var r = record ?? JobRecord(name: def.name, current: nil, versions: [])
            r.versions.removeAll { $0.version == version }
            r.versions.append(.init(version: version, definition: def, createdMillis: now / 1_000_000, caughtUpMillis: nil))
            record = r
        }
        let runner = try JobRunner(directory: directory, definition: def, version: version, memberId: JobFiles.memberId())
        try runner.rebalance(force: true)
        let started = monotonicNanos()
        var idle = 0
        while idle < 2 {
            idle = try runner.runOnce(budget: 16_384) == 0 ? idle + 1 : 0
        }
        let (done, _) = try runner.progress()
        let seconds = Double(monotonicNanos() - started) / 1e9
        try runner.stop()
        try registry.update(def.name) { (record) throws(KappaError) in
            guard var r = record, let i = r.versions.firstIndex(where: { $0.version == version }) else { return }
            r.versions[i].caughtUpMillis = SystemClock().nowNanos() / 1_000_000
            r.current = version
            record = r
        }
        return (done, seconds)
    }

    private func ridesPerCityPerDay(_ def: JobDefinition) throws(KappaError) -> [String] {
        let extractor = try JSONFieldExtractor(paths: ["key", "window_start", "count"])
        var perDay: [Int64: [String: Int64]] = [:]
        for row in try ResultReader.rows(directory: directory, definition: def, version: 1) {
            var padded = row.json
            padded += [UInt8](repeating: 0x20, count: JSONFieldExtractor.padding)
            // A row that does not parse is left out of the demo report (rows are this run's own output).
            let ok: Bool = padded.withUnsafeBytes { raw in
                (try? extractor.parse(UnsafeRawBufferPointer(rebasing: raw[0..<row.json.count]))) != nil
            }
            guard ok, case .string(let startBytes) = extractor.field(1), case .integer(let count) = extractor.field(2),
                  let start = try? EventTime.parse(startBytes).get() else { continue }
            let day = start.rawValue / 86_400_000_000_000
            perDay[day, default: [:]][row.key, default: 0] += count
        }
        let days = perDay.keys.sorted()
        let cities = Set(perDay.values.flatMap(\.keys)).sorted()
        var lines = ["Rides per city per day (rides-per-city v1, final 1h windows summed per UTC day; first \(min(5, days.count)) of \(days.count) days):"]
        let dayLabels = days.prefix(5).map { day -> String in
            let (y, m, d) = civil(day)
            return "\(y)-\(m < 10 ? "0" : "")\(m)-\(d < 10 ? "0" : "")\(d)"
        }
        lines.append(pad("city", 14) + dayLabels.map { pad($0, 12) }.joined())
        for city in cities {
            lines.append(pad(city, 14) + days.prefix(5).map { pad(String(perDay[$0]?[city] ?? 0), 12) }.joined())
        }
        return lines
    }

    private func sessions(_ def: JobDefinition) throws(KappaError) -> [String] {
        let rows = try ResultReader.rows(directory: directory, definition: def, version: 1)
        var lines = ["Sessions (app-sessions v1): \(rows.count) final sessions; a few:"]
        for row in rows.prefix(3) { lines.append("  " + String(decoding: row.json, as: UTF8.self)) }
        return lines
    }

    private func matches(_ def: JobDefinition) throws(KappaError) -> [String] {
        let rows = try ResultReader.rows(directory: directory, definition: def, version: 1)
        let unmatched = rows.filter { $0.rideId == nil }.count
        var lines = ["Tickets (ticket-ride-match v1): \(rows.count) final, \(rows.count - unmatched) matched to the user's previous ride, \(unmatched) unmatched (no earlier ride); for example:"]
        if let m = rows.first(where: { $0.rideId != nil }) { lines.append("  " + String(decoding: m.json, as: UTF8.self)) }
        if let u = rows.first(where: { $0.rideId == nil }) { lines.append("  " + String(decoding: u.json, as: UTF8.self)) }
        return lines
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }

    /// (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's algorithm).
    private func civil(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
