import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaTesting
import RebuGenerator

extension CLITests {
    /// `kappa query` while the daemon is busy (SPEC §5, §8): the store is read while
    /// results are being written, and each query must still be a consistent view — every
    /// window at most once (final or open, not both), never more rides counted than were
    /// produced, and never fewer than an earlier query counted.
    @Suite struct JobCLIQueryTests {
        /// The rows `kappa query` shows after a replay of all input, against plain
        /// computations over the input lines (SPEC §5): sessions split where a user is
        /// inactive for more than 30 minutes; each ticket matched to the user's latest
        /// ride at or before it. The data's disorder (at most 5 minutes) is within the
        /// jobs' grace, so no event is late and every row is fully determined.
        @Test(arguments: [ShippedJob.appSessions, .ticketRideMatch])
        func queryRowsAgreeWithAPlainComputation(_ job: ShippedJob) throws {
            let ws = try CLIWorkspace()
            let reference = try ws.referenceRun(job)
            #expect(reference.late.isEmpty && reference.deadLetter.isEmpty, "late \(reference.late.count), dead letters \(reference.deadLetter.count)")
            let rows = try reference.query.map(parseJSONObject)
            #expect(rows.contains { $0["final"] as? Bool == true } && rows.contains { $0["final"] as? Bool == false },
                    "expected final and open rows")
            var actual: [String] = []
            var expected: [String] = []
            switch job {
            case .appSessions:
                for o in rows {
                    let types = (o["event_types"] as? [String: Any] ?? [:]).map { "\($0.key)=\(($0.value as? NSNumber)?.int64Value ?? -1)" }.sorted()
                    actual.append("\(o["key"] as? String ?? "?") \(nanos(stringValue(o, "session_start") ?? "")) \(nanos(stringValue(o, "session_end") ?? "")) \(intField(o, "events")) \(types)")
                }
                let gap: Int64 = 30 * 60 * 1_000_000_000
                var byUser: [String: [(Int64, String)]] = [:]
                for l in JobFx.lines(.appEvents) {
                    let user = try #require(stringField("user_id", in: l))
                    byUser[user, default: []].append((nanos(try #require(stringField("time_utc", in: l))), try #require(stringField("event_type", in: l))))
                }
                for (user, events) in byUser {
                    let sorted = events.sorted { $0.0 < $1.0 }
                    var i = 0
                    while i < sorted.count {
                        var j = i
                        while j + 1 < sorted.count && sorted[j + 1].0 - sorted[j].0 <= gap { j += 1 }
                        var types: [String: Int64] = [:]
                        for e in sorted[i...j] { types[e.1, default: 0] += 1 }
                        expected.append("\(user) \(sorted[i].0) \(sorted[j].0) \(j - i + 1) \(types.map { "\($0.key)=\($0.value)" }.sorted())")
                        i = j + 1
                    }
                }
            default:
                for o in rows {
                    actual.append("\(o["ticket_id"] as? String ?? "?") \(o["user_id"] as? String ?? "?") \(nanos(stringValue(o, "ticket_time") ?? "")) \(o["ride_id"] as? String ?? "null") \(stringValue(o, "ride_time").map(nanos).map(String.init) ?? "null")")
                }
                var rides: [String: [(time: Int64, id: String)]] = [:]  // per user, in log order
                for l in JobFx.lines(.rides) {
                    rides[try #require(stringField("user_id", in: l)), default: []].append((nanos(try #require(stringField("time_utc", in: l))), try #require(stringField("ride_id", in: l))))
                }
                for l in JobFx.lines(.tickets) {
                    let user = try #require(stringField("user_id", in: l))
                    let t = nanos(try #require(stringField("time_utc", in: l)))
                    var best: (time: Int64, id: String)?
                    for r in rides[user] ?? [] where r.time <= t && (best == nil || r.time >= best!.time) { best = r }
                    expected.append("\(try #require(stringField("ticket_id", in: l))) \(user) \(t) \(best?.id ?? "null") \(best.map { String($0.time) } ?? "null")")
                }
            }
            expectSameMultiset(actual.map { Array($0.utf8) }, expected.map { Array($0.utf8) }, "\(job.name): query rows against the plain computation")
        }

        /// `query JOB KEY` and `query JOB --ride RIDE` return exactly the rows of the full
        /// query with that key or ride.
        @Test func keyAndRideLookupsAreSlicesOfTheFullQuery() throws {
            for job in [ShippedJob.ridesPerCity, .ticketRideMatch] {
                let ws = try CLIWorkspace()
                let reference = try ws.referenceRun(job)
                let rows = try reference.query.map { ($0, try parseJSONObject($0)) }
                let keyField = job == .ridesPerCity ? "key" : "ticket_id"
                var keys = Array(Set(rows.compactMap { $0.1[keyField] as? String })).sorted()
                keys = Array(keys.prefix(3) + keys.suffix(2))
                for key in keys + ["no-such-key"] {
                    expectSameLines(try ws.query(job.name, [key]), sortedLines(rows.filter { $0.1[keyField] as? String == key }.map(\.0)),
                                    "query \(job.name) \(key)")
                }
                if job == .ticketRideMatch {
                    var counts: [String: Int] = [:]
                    for (_, o) in rows { if let r = o["ride_id"] as? String { counts[r, default: 0] += 1 } }
                    let many = counts.filter { $0.value > 1 }.map(\.key).sorted().prefix(3)
                    #expect(!many.isEmpty, "no ride has two tickets in the data")
                    for ride in Array(many) + Array(counts.keys.sorted().prefix(2)) + ["r-none"] {
                        expectSameLines(try ws.query(job.name, ["--ride", ride]), sortedLines(rows.filter { $0.1["ride_id"] as? String == ride }.map(\.0)),
                                        "query \(job.name) --ride \(ride)")
                    }
                }
            }
        }

        @Test func queriesDuringLiveProcessingShowEachWindowOnce() throws {
            let job = ShippedJob.ridesPerCity
            let ws = try CLIWorkspace()
            try ws.createRebuTopics()
            let file = try ws.jobFile(job)
            let rides = JobFx.lines(.rides)
            let daemon = try ws.start(["process", file])
            try waitUntil("the daemon to register \(job.name)", timeoutSeconds: 60, pollSeconds: 0.1) {
                guard daemon.isRunning else { throw CLIFailure(description: "\(daemon.result)") }
                return try ws.kappa(["query", job.name]).status == 0
            }
            // A steady trickle through a pipe, fed by another thread while this one
            // queries, keeps the tasks busy for seconds, so they checkpoint on their
            // interval, not in step with each other.
            let fifo = ws.tmp.path + "/rides.fifo"
            try #require(mkfifo(fifo, 0o600) == 0, "mkfifo")
            let feed = open(fifo, O_RDWR | O_CLOEXEC)  // opened first: the reader's open does not block
            try #require(feed >= 0, "open \(fifo)")
            let producer = try ws.start(["produce", "rides", "-"], stdinPath: fifo)
            let feeder = TrickleFeeder(fd: feed, lines: rides, batch: 50, pauseMillis: 20)
            feeder.start()

            var lastTotal: Int64 = 0
            var queries = 0
            var twice: [String] = []  // the first few violations of each kind
            var tooMany: [String] = []
            var shrank: [String] = []
            var violations = (twice: 0, tooMany: 0, shrank: 0)
            func check() throws {
                let r = try ws.ok(["query", job.name])
                let written = feeder.written
                queries += 1
                var seen: [String: [String]] = [:]
                var total: Int64 = 0
                for line in r.stdoutLines {
                    let o = try parseJSONObject(line)
                    let id = "\(o["key"] as? String ?? "?") \(stringValue(o, "window_start") ?? "?")"
                    seen[id, default: []].append("count \(intField(o, "count")) final \(o["final"] as? Bool ?? false)")
                    total += intField(o, "count")
                }
                let dup = seen.filter { $0.value.count > 1 }
                if !dup.isEmpty {
                    violations.twice += 1
                    if twice.count < 3 { twice.append("query \(queries): \(dup.count) windows shown twice, e.g. \(dup.first!.key): \(dup.first!.value)") }
                }
                if total > Int64(written) {
                    violations.tooMany += 1
                    if tooMany.count < 3 { tooMany.append("query \(queries): \(total) rides counted, \(written) produced") }
                }
                if total < lastTotal {
                    violations.shrank += 1
                    if shrank.count < 3 { shrank.append("query \(queries): \(total) rides counted, an earlier query counted \(lastTotal)") }
                }
                lastTotal = max(lastTotal, total)
            }

            while !feeder.isDone { try check() }
            try #require(feeder.written == rides.count, "the feeder stopped early: \(feeder.written) of \(rides.count) lines")
            try #require(try producer.waitForExit() == 0, "\(producer.result)")
            try ws.waitCaughtUp(job.name, version: 1, daemons: [daemon])
            try check()
            try stopCleanly(daemon)

            #expect(lastTotal == Int64(rides.count), "after catching up, query counts \(lastTotal) rides of \(rides.count)")
            #expect(violations.twice == 0, "\(violations.twice) of \(queries) queries showed a window twice: \(twice)")
            #expect(violations.tooMany == 0, "\(violations.tooMany) of \(queries) queries counted more rides than produced: \(tooMany)")
            #expect(violations.shrank == 0, "\(violations.shrank) of \(queries) queries counted fewer rides than an earlier one: \(shrank)")
        }
    }
}

/// Writes lines into a pipe from its own thread, `batch` lines at a time with a pause
/// after each, then closes it. `written` counts the lines written so far.
final class TrickleFeeder: @unchecked Sendable {
    private let fd: Int32
    private let lines: [[UInt8]]
    private let batch: Int
    private let pauseMillis: Int
    private let lock = NSLock()
    private var count = 0
    private var done = false

    init(fd: Int32, lines: [[UInt8]], batch: Int, pauseMillis: Int) {
        self.fd = fd
        self.lines = lines
        self.batch = batch
        self.pauseMillis = pauseMillis
    }

    var written: Int { lock.withLock { count } }
    var isDone: Bool { lock.withLock { done } }

    func start() {
        Thread { self.run() }.start()
    }

    private func run() {
        defer {
            close(fd)
            lock.withLock { done = true }
        }
        var i = 0
        while i < lines.count {
            let end = min(i + batch, lines.count)
            let bytes = joinLines(Array(lines[i..<end]))
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, bytes.count - off) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                off += n
            }
            i = end
            lock.withLock { count = end }
            usleep(UInt32(pauseMillis) * 1000)
        }
    }
}
