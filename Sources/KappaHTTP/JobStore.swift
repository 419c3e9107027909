import Foundation
import KappaCore
import KappaLog
import KappaStreams
import Logging
import NIOConcurrencyHelpers

/// The stores of every job's current version, kept up to date by a refresher thread
/// (`run`), for the HTTP API. A view is built whole before it is published, and a switch
/// to another version (`kappa jobs switch`, `replay --switch`) replaces the view under
/// the lock in one step: a request sees the old version or the new one, never a mix.
///
/// Ready once every job that has a current version has its view loaded (`/readyz`).
///
/// Concurrency: `read` runs its body under the lock (keep it short: lookups and
/// encoding a page); the refresher reads files outside the lock and applies the result
/// under it.
final class JobStore: @unchecked Sendable {
    let directory: DataDirectory
    let logger: Logger
    private let lock = NIOLock()
    private var views: [String: JobView] = [:]
    /// Jobs with a current version whose view is not loaded (yet, or because loading failed).
    private var pending: [String: String] = [:]
    private var stopped = false
    private var loadedOnce = false
    /// How often the refresher looks for new checkpoints and switches.
    let refreshIntervalNanos: UInt64

    init(directory: DataDirectory, logger: Logger, refreshIntervalNanos: UInt64 = 100_000_000) {
        self.directory = directory
        self.logger = logger
        self.refreshIntervalNanos = refreshIntervalNanos
    }

    enum Lookup {
        case view(JobView)
        /// The job exists and has a current version, but its store is not loaded yet.
        case loading(String)
        case unknown
    }

    /// Runs `body` under the lock with the job's current view.
    func read<T>(_ job: String, _ body: (Lookup) throws -> T) rethrows -> T {
        try lock.withLock {
            if let v = views[job] { return try body(.view(v)) }
            if let why = pending[job] { return try body(.loading(why)) }
            return try body(.unknown)
        }
    }

    /// Runs `body` under the lock with every loaded view.
    func readAll<T>(_ body: ([String: JobView]) throws -> T) rethrows -> T {
        try lock.withLock { try body(views) }
    }

    /// Nil when ready; else why not.
    var notReady: String? {
        lock.withLock {
            if !loadedOnce { return "the job stores are being loaded" }
            guard let (job, why) = pending.min(by: { $0.key < $1.key }) else { return nil }
            return "job \(job): \(why)"
        }
    }

    func stop() { lock.withLock { stopped = true } }

    /// The refresher loop (a thread of its own: it reads files).
    func run() {
        while !lock.withLock({ stopped }) {
            refreshOnce()
            lock.withLock { loadedOnce = true }
            usleep(UInt32(refreshIntervalNanos / 1000))
        }
    }

    /// One pass: follows switches and new jobs, then new checkpoints of each view.
    func refreshOnce() {
        let registry = JobRegistry(directory: directory)
        let names: [String]
        do { names = try registry.names() } catch {
            logger.warning("cannot list jobs", metadata: ["error": "\(error)"])
            return
        }
        var current: [String: (Int, JobDefinition)] = [:]
        for name in names {
            do {
                guard let r = try registry.load(name), let c = r.current, let v = r.version(c) else { continue }
                current[name] = (c, v.definition)
            } catch {
                lock.withLock { pending[name] = "\(error)" }
            }
        }
        let existing = lock.withLock { views }
        // Jobs dropped or without a current version any more.
        lock.withLock {
            for name in views.keys where current[name] == nil { views[name] = nil }
            for name in pending.keys where current[name] == nil && !names.contains(name) { pending[name] = nil }
        }
        for (name, (version, def)) in current.sorted(by: { $0.key < $1.key }) {
            if let view = existing[name], view.version == version {
                refresh(view)
                continue
            }
            load(name, version: version, definition: def)
        }
    }

    private func refresh(_ view: JobView) {
        do {
            if let delta = try view.readDelta() { lock.withLock { view.apply(delta) } }
        } catch {
            logger.warning("cannot refresh the store", metadata: ["job": "\(view.job)", "version": "\(view.version)", "error": "\(error)"])
        }
    }

    /// Builds a version's view whole, then publishes it (replacing another version's).
    private func load(_ name: String, version: Int, definition: JobDefinition) {
        lock.withLock { if views[name] == nil { pending[name] = "the store of v\(version) is being loaded" } }
        do {
            let view = try JobView(directory: directory, job: name, version: version, definition: definition)
            // A checkpoint whose output is not committed yet: try a few times right away.
            for _ in 0..<50 {
                if let delta = try view.readDelta() {
                    view.apply(delta)
                    break
                }
                if view.tasks.isEmpty, try JobTask.storeSnapshot(directory: directory, definition: definition, version: version).tasks.isEmpty { break }
                usleep(10_000)
            }
            lock.withLock {
                views[name] = view
                pending[name] = nil
            }
            logger.info("job store loaded", metadata: ["job": "\(name)", "version": "\(version)", "rows": "\(view.final.count + view.open.count)"])
        } catch {
            lock.withLock { pending[name] = "its store cannot be loaded: \(error)" }
            logger.warning("cannot load the store", metadata: ["job": "\(name)", "version": "\(version)", "error": "\(error)"])
        }
    }
}
