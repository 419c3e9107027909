import Foundation
import Hummingbird
import KappaCore
import KappaHistory
import KappaJSON
import KappaLog
import Logging
import NIOConcurrencyHelpers

/// The user-history index (`KappaHistory.UserHistory`) as `kappa serve` runs it: opened on
/// a thread of its own (opening checks the index against the log and rebuilds it if they
/// disagree), caught up, then kept up to date as the log grows (`follow`: catchUp in a
/// loop, woken by inotify on appends). Ready once opened and caught up with the log as it
/// was at start; a failure to open (another process holds the index) is retried every few
/// seconds and reported by `/readyz` and the route.
///
/// Thread-safe: `page` runs on the API's pool while the indexer thread catches up.
final class UserHistoryService: @unchecked Sendable {
    let directory: DataDirectory
    let logger: Logger
    private let lock = NIOLock()
    private var history: UserHistory?
    private var caughtUpOnce = false
    private var problem: String? = "the user-history index is being opened"
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)
    private var thread: Thread?

    init(directory: DataDirectory, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// Nil when pages can be served from an index caught up with the log as it was at start.
    var notReady: String? {
        lock.withLock {
            if let problem { return problem }
            return caughtUpOnce ? nil : "the user-history index is catching up with the log"
        }
    }

    /// The indexer thread's nice value (Linux schedules threads, so it applies to this
    /// thread only).
    static let indexerNice: Int32 = 10

    func start() {
        let t = Thread { [self] in
            run()
            done.signal()
        }
        t.name = "kappa.http.history"
        thread = t
        t.start()
    }

    func stop() {
        lock.withLock { stopping = true }
        if thread != nil { done.wait() }
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    private func run() {
        // The index is derived state and may lag: when the machine is busy, requests and
        // appends (ingest, Kafka produce) go first (measured: indexing took a quarter of
        // serve's CPU during an HTTP ingest of 1M events, on 2 cores).
        Thread.current.name = "kappa-history"  // as `top -H` and `ps -L` show it
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, Self.indexerNice)  // 0: the calling thread (Linux)
        while !isStopping {
            do {
                let h = try open()
                while try h.catchUp(budget: 100_000) > 0 {
                    if isStopping { return }
                }
                lock.withLock { caughtUpOnce = true }
                logger.info("user-history index caught up", metadata: ["as_of": "\(((try? h.asOf()) ?? [:]).values.reduce(0) { $0 + $1.rawValue }) records"])
                try h.follow(idleWaitMillis: 200, budget: 100_000) { isStopping }
            } catch {
                lock.withLock { problem = "the user-history index is not available: \(error.description)" }
                logger.warning("user-history index", metadata: ["error": "\(error)"])
                for _ in 0..<30 where !isStopping { usleep(100_000) }
            }
        }
    }

    private func open() throws(KappaError) -> UserHistory {
        if let h = lock.withLock({ history }) { return h }
        var options = UserHistory.Options()
        let logger = self.logger
        options.onWarning = { logger.warning("\($0)") }
        let h = try UserHistory(directory: directory, options: options)
        lock.withLock {
            history = h
            problem = nil
        }
        return h
    }

    /// The index, or a 503 problem saying why not.
    func index() throws -> UserHistory {
        try lock.withLock {
            guard let history else { throw Problem.notReady(problem ?? "the user-history index is being opened") }
            return history
        }
    }
}

/// `GET /v1/users/{user_id}/events?from=T&to=T&limit=N&cursor=C`: the user's raw events from
/// every topic keyed by user, in event-time order, each with topic, partition and offset.
extension KappaAPI {
    func addUserRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/users/:user_id/events") { request, context in
            let user = try request.path(context, "user_id")
            let limit = try request.integer("limit", in: 1...min(options.pageLimitMax, UserHistory.pageEntriesMax), default: options.pageLimitDefault)!
            let from = try Self.time(request, "from")
            let to = try Self.time(request, "to")
            if let from, let to, to <= from { throw Problem.badParameter("to", "must be after 'from'") }
            let cursor = request.query("cursor")
            let index = try history.index()
            let page = try await blocking { () throws(KappaError) in
                do throws(KappaError) {
                    return try index.page(user: user, from: from, to: to, limit: limit, cursor: cursor)
                } catch where error.code == .invalidArgument && cursor != nil {
                    throw KappaError(.invalidArgument, "query parameter 'cursor': \(error.message)")
                }
            }
            if page.entries.isEmpty, cursor == nil, from == nil, to == nil {
                throw Problem.notFound("no events of user '\(user)' as of the index's offsets (it indexes every topic keyed by user)")
            }
            return json(Self.historyJSON(user, page))
        }
    }

    static func time(_ request: Request, _ name: String) throws -> TimestampNanos? {
        guard let text = request.query(name) else { return nil }
        guard let t = try? EventTime.parse(text).get() else {
            throw Problem.badParameter(name, "'\(text)' is not a time (epoch seconds like 1457741907.5, or ISO-8601 with a zone)")
        }
        return t
    }

    static func historyJSON(_ user: String, _ page: HistoryPage) -> [UInt8] {
        var out: [UInt8] = []
        out.append(contentsOf: "{\"user_id\":\(JSONEscape.quoted(user)),\"as_of\":{\"offsets\":{".utf8)
        let offsets = page.asOf.sorted { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }
        out.append(contentsOf: offsets.map { "\(JSONEscape.quoted("\($0.key.topic)/\($0.key.partition)")):\($0.value)" }.joined(separator: ",").utf8)
        out.append(contentsOf: "}},\"events\":[".utf8)
        for (i, e) in page.entries.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: "{\"topic\":\(JSONEscape.quoted(e.topic)),\"partition\":\(e.partition),\"offset\":\(e.offset),\"timestamp\":\"\(e.time.decimalSeconds)\",\"value\":".utf8)
            out.append(contentsOf: e.value.isEmpty ? Array("null".utf8) : e.value)
            out.append(UInt8(ascii: "}"))
        }
        let next = page.hasMore ? (page.cursor.map(JSONEscape.quoted) ?? "null") : "null"
        out.append(contentsOf: "],\"next_cursor\":\(next),\"skipped_gone\":\(page.skippedGone)}".utf8)
        return out
    }
}
