import Foundation
import Testing
import KappaCore
import RebuGenerator

/// The data of the HTTP tests: Rebu rides and tickets over 70 days with the weekly demand
/// rhythm (so the daily route has a month of history and a forecast), produced into
/// `rides` and `tickets` (2 partitions each), and the jobs the routes read, each run to the
/// head of the log with `kappa replay --switch`.
enum HTTPFx {
    static let dataset: RebuDataset = RebuDataset(RebuConfig(seed: 11, appEvents: 30_000, days: 70, ridesPerThousandAppEvents: 100,
                                                             ticketsPerThousandAppEvents: 20, demand: .rebu))
    static let rides: [[UInt8]] = splitLines(dataset.jsonLines(.rides))
    static let tickets: [[UInt8]] = splitLines(dataset.jsonLines(.tickets))

    static let ridesPerDay = """
        name: rides-per-day
        inputs: [rides]
        window: { key: city, time: time_utc, size: 1d, grace: 10m, aggregates: [count], emit: final }
        output: rides-per-day
        """
    static let match = """
        name: ticket-ride-match
        inputs: [tickets, rides]
        match: { key: user_id, time: time_utc, tickets: tickets, rides: rides, grace: 10m }
        output: ticket-ride-matches
        """

    /// Topics, data and the two jobs, caught up.
    static func prepare(_ ws: CLIWorkspace, jobs: [String] = [ridesPerDay, match]) throws {
        try ws.createTopic("rides", partitions: 2)
        try ws.createTopic("tickets", partitions: 2)
        try ws.ok(["produce", "rides", try ws.writeFile("rides.jsonl", lines: rides)])
        try ws.ok(["produce", "tickets", try ws.writeFile("tickets.jsonl", lines: tickets)])
        for (i, yaml) in jobs.enumerated() {
            try ws.ok(["replay", try ws.writeFile("job\(i).yaml", lines: [Array(yaml.utf8)]), "--switch"])
        }
    }

    /// Rides per UTC day (days since the epoch), from the raw lines.
    static func ridesPerDayFromRaw() throws -> [Int64: Int64] {
        var out: [Int64: Int64] = [:]
        for line in rides {
            let t = try EventTime.parse(try #require(stringField("time_utc", in: line))).get()
            out[floorDiv(t.rawValue, 86_400_000_000_000), default: 0] += 1
        }
        return out
    }

    /// Ticket → ride id (nil: no earlier ride) from the raw lines: the same user's latest
    /// ride whose time_utc is at or before the ticket's.
    static func matchesFromRaw() throws -> [String: String?] {
        var ridesByUser: [String: [(Int64, String)]] = [:]
        for line in rides {
            let t = try EventTime.parse(try #require(stringField("time_utc", in: line))).get().rawValue
            ridesByUser[try #require(stringField("user_id", in: line)), default: []].append((t, try #require(stringField("ride_id", in: line))))
        }
        var out: [String: String?] = [:]
        for line in tickets {
            let t = try EventTime.parse(try #require(stringField("time_utc", in: line))).get().rawValue
            let user = try #require(stringField("user_id", in: line))
            let best = ridesByUser[user, default: []].filter { $0.0 <= t }.max { $0.0 < $1.0 }
            out[try #require(stringField("ticket_id", in: line))] = best?.1
        }
        return out
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : (a - b + 1) / b }

    /// "YYYY-MM-DD" of a day number.
    static func dayName(_ day: Int64) -> String {
        let f = DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd"
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(day * 86_400)))
    }
}

extension CLIWorkspace {
    /// `kappa ARGS` stdout lines as JSON objects.
    func jsonLines(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        try ok(args, sourceLocation: sourceLocation).stdoutLines.map(parseJSONObject)
    }
}

/// JSON values compared as values (key order aside): both written with sorted keys.
func sameJSON(_ a: Any, _ b: Any) -> Bool {
    func canonical(_ v: Any) -> Data? { try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) }
    guard let x = canonical(a), let y = canonical(b) else { return false }
    return x == y
}
