/// Parameters of a Rebu data set.
///
/// Contract: a `RebuConfig` fully determines the generated data. Two data sets built from
/// equal configurations are byte-identical, on any machine and in any process (no clock,
/// no system randomness, no platform `libm` is consulted).
///
/// Volumes follow the ratio app_events : rides : tickets = 1000 : `ridesPerThousandAppEvents`
/// : `ticketsPerThousandAppEvents` (default 1000 : 60 : 6). `appEvents` is exact; the ride
/// count is capped by the number of app visits (each ride is requested from a visit), which
/// only matters for tiny or unusual configurations.
public struct RebuConfig: Sendable, Equatable, Hashable {
    /// Seed of every pseudo-random choice.
    public var seed: UInt64
    /// Exact number of `app_events` lines.
    public var appEvents: Int
    /// Number of distinct users, or `nil` for `max(10, appEvents / 50)`.
    public var users: Int?
    /// Start of the simulated period, in whole seconds since the Unix epoch (>= 0).
    /// Default 1457740800 (2016-03-12T00:00:00Z).
    public var startSeconds: Int64
    /// Length of the simulated period in days, or `nil` to derive it from the size so that
    /// even the hottest user's visits are tens of minutes to hours apart. All visits and
    /// ride requests start inside the period; a ride or a ticket may end shortly after it.
    public var days: Int?
    /// Upper bound of the arrival delay: every line is written at position
    /// `event time + delay`, `delay` in `[0, disorderBoundNanos]`. Default 5 minutes.
    /// Zero gives files sorted by event time.
    public var disorderBoundNanos: Int64
    /// Rides per 1000 app events (default 60).
    public var ridesPerThousandAppEvents: Int
    /// Support tickets per 1000 app events (default 6).
    public var ticketsPerThousandAppEvents: Int
    /// Demand over the period (`nil`: uniform, as before this existed, so existing data
    /// sets are unchanged): when visits, and so rides, tickets and app events, happen.
    public var demand: Demand?

    /// A weekly rhythm and a linear trend in how many visits start each day: day `d` of
    /// the period gets a share proportional to `weekday[weekday of d] × (1 + trendPerWeek × d / 7)`
    /// (weekdays Monday first, in UTC). Within a day, visit starts are uniform.
    /// Integer weights and plain arithmetic keep the data identical on every machine.
    public struct Demand: Sendable, Equatable, Hashable {
        /// Relative demand per weekday, Monday first (7 positive numbers).
        public var weekday: [Int]
        /// Growth of demand per week, relative to the first day (0.03: +3 % per week).
        public var trendPerWeek: Double

        public init(weekday: [Int], trendPerWeek: Double) {
            precondition(weekday.count == 7 && weekday.allSatisfy { $0 > 0 }, "seven positive weekday weights")
            precondition(trendPerWeek > -1, "demand must stay positive")
            self.weekday = weekday
            self.trendPerWeek = trendPerWeek
        }

        /// Rebu's: quiet early in the week, busy Friday and Saturday, +3 % a week.
        public static let rebu = Demand(weekday: [80, 85, 90, 100, 135, 150, 95], trendPerWeek: 0.03)
    }

    public init(
        seed: UInt64 = 42,
        appEvents: Int = 100_000,
        users: Int? = nil,
        startSeconds: Int64 = 1_457_740_800,
        days: Int? = nil,
        disorderBoundNanos: Int64 = 300_000_000_000,
        ridesPerThousandAppEvents: Int = 60,
        ticketsPerThousandAppEvents: Int = 6,
        demand: Demand? = nil
    ) {
        self.seed = seed
        self.appEvents = appEvents
        self.users = users
        self.startSeconds = startSeconds
        self.days = days
        self.disorderBoundNanos = disorderBoundNanos
        self.ridesPerThousandAppEvents = ridesPerThousandAppEvents
        self.ticketsPerThousandAppEvents = ticketsPerThousandAppEvents
        self.demand = demand
    }

    /// The user count actually used: `users`, or `max(10, appEvents / 50)` when `nil`.
    public var resolvedUsers: Int {
        users ?? max(10, appEvents / 50)
    }

    /// Rides requested by the ratio (rounded to nearest); see the type's note on the cap.
    public var requestedRides: Int {
        (appEvents * ridesPerThousandAppEvents + 500) / 1000
    }

    /// Support tickets generated (rounded to nearest).
    public var requestedTickets: Int {
        (appEvents * ticketsPerThousandAppEvents + 500) / 1000
    }
}

/// One of the three Rebu streams. `rawValue` is the topic name and `fileName` is
/// `"<topic>.jsonl"`.
public enum RebuTopic: String, Sendable, CaseIterable, Hashable {
    case rides = "rides"
    case tickets = "tickets"
    case appEvents = "app_events"

    /// `"<topic>.jsonl"`, the file name used by `RebuGenerator.write(_:to:)`.
    public var fileName: String { rawValue + ".jsonl" }
}

/// What was written for one topic: `lines` JSON Lines records totalling `bytes` bytes
/// (newlines included) at `path`.
public struct RebuFileSummary: Sendable, Equatable {
    public var topic: RebuTopic
    public var path: String
    public var lines: Int
    public var bytes: Int

    public init(topic: RebuTopic, path: String, lines: Int, bytes: Int) {
        self.topic = topic
        self.path = path
        self.lines = lines
        self.bytes = bytes
    }

    /// Mean bytes per line including the newline (0 for an empty file).
    public var averageLineBytes: Double {
        lines == 0 ? 0 : Double(bytes) / Double(lines)
    }
}

/// What `RebuGenerator.write(_:to:)` produced: one `RebuFileSummary` per topic, in the
/// order rides, tickets, app_events, plus the resolved shape of the data set.
public struct RebuSummary: Sendable, Equatable {
    public var files: [RebuFileSummary]
    /// Distinct users (`RebuConfig.resolvedUsers`).
    public var users: Int
    /// Length of the simulated period in days (given or derived).
    public var days: Int
    /// Start of the simulated period, seconds since the epoch.
    public var startSeconds: Int64

    public init(files: [RebuFileSummary], users: Int, days: Int, startSeconds: Int64) {
        self.files = files
        self.users = users
        self.days = days
        self.startSeconds = startSeconds
    }

    /// The summary of `topic`, if that file was written.
    public subscript(topic: RebuTopic) -> RebuFileSummary? {
        files.first { $0.topic == topic }
    }
}

/// A failed file-system call while writing a data set: `operation` (`"open"`, `"write"`,
/// `"mkdir"`, `"close"`) on `path` failed with the POSIX error number `code`.
public struct RebuIOError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var code: Int32

    public init(operation: String, path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String {
        "rebu: \(operation) \(path) failed (errno \(code))"
    }
}
