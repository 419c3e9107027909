#if canImport(Glibc)
import Glibc
#endif
import KappaCore
import KappaJSON
import KappaLog
import KappaStreams

/// One version of one job as the HTTP API serves it: its rows (final ones from the output
/// topic, open ones from the task checkpoints), indexes for the routes (by identity, by
/// ride, counts per UTC day), and the checkpoints' statuses (`as_of`).
///
/// Invariants: the rows and the statuses come from the same checkpoints — a task's output
/// is read exactly up to the `outputEnd` its checkpoint names (see `StoreSnapshot`), and a
/// refresh that finds a checkpoint whose output is not yet committed leaves the view as
/// it was and tries again. `finalSorted` and `openSorted` hold the identities of `final`
/// and `open` in order; `open` holds no identity that `final` has.
///
/// Concurrency: `refresh` runs on the store's refresher thread only and applies its
/// changes under the store's lock; readers use the view only under that lock.
final class JobView: @unchecked Sendable {
    struct Row {
        var json: [UInt8]
        var final: Bool
        var rideId: String?
        /// Window jobs: the UTC day (days since the epoch) of window_start, and count.
        var day: Int64?
        var count: Int64?
    }

    let job: String
    let version: Int
    let definition: JobDefinition
    let directory: DataDirectory
    private(set) var tasks: [StoreSnapshot.Task] = []
    private(set) var final: [RowID: Row] = [:]
    private(set) var finalSorted: [RowID] = []
    private(set) var open: [RowID: Row] = [:]
    private(set) var openSorted: [RowID] = []
    private(set) var finalByRide: [String: [RowID]] = [:]
    private(set) var openByRide: [String: [RowID]] = [:]
    /// Window jobs: the sum of `count` over final rows, per UTC day.
    private(set) var finalDaily: [Int64: Int64] = [:]
    /// Refresher-only: how far each task's output was read, and the checkpoint files seen.
    private var consumed: [Int32: Offset] = [:]
    private var stamps: [Int32: FileStamp] = [:]
    private let parser: ResultReader.Parser
    private let dayExtractor: JSONFieldExtractor?
    let outputTopic: String
    let outputPartitions: Int32

    static let nanosPerDay: Int64 = 86_400 * 1_000_000_000

    init(directory: DataDirectory, job: String, version: Int, definition: JobDefinition) throws(KappaError) {
        self.directory = directory
        self.job = job
        self.version = version
        self.definition = definition
        parser = try ResultReader.Parser(definition)
        outputTopic = JobRegistry.outputTopic(definition, version)
        outputPartitions = try directory.topicConfig(outputTopic).partitions
        if case .window(let w) = definition.operation, w.aggregates.contains(where: { $0.kind == .count }) {
            dayExtractor = try JSONFieldExtractor(paths: ["window_start", "count"])
        } else {
            dayExtractor = nil
        }
    }

    /// A change read from disk, applied under the lock by `apply`.
    struct Delta {
        var tasks: [StoreSnapshot.Task]
        var consumed: [Int32: Offset]
        var stamps: [Int32: FileStamp]
        var finalRows: [(RowID, Row)]
        var openRows: [(RowID, Row)]
    }

    /// Reads what changed since the last refresh; nil when nothing did, or when a task's
    /// newest checkpoint is not committed yet (then the next refresh retries).
    func readDelta() throws(KappaError) -> Delta? {
        let registry = JobRegistry(directory: directory)
        var now: [Int32: FileStamp] = [:]
        for t in 0..<outputPartitions {
            now[t] = FileStamp(path: registry.checkpointPath(definition.name, version, task: t))
        }
        guard now != stamps else { return nil }
        let snapshot = try JobTask.storeSnapshot(directory: directory, definition: definition, version: version)
        var finalRows: [(RowID, Row)] = []
        var consumedNow = consumed
        for t in snapshot.tasks {
            let from = consumed[t.task] ?? .zero
            guard t.outputEnd > from else { continue }
            let reached = try ResultReader.forEachRow(directory: directory, parser: parser,
                                                      topicPartition: TopicPartition(outputTopic, t.task), from: from, to: t.outputEnd) { row, _ in
                finalRows.append((RowID(row), makeRow(row, final: true)))
            }
            // The checkpoint is written before its output is committed: not yet visible.
            guard reached >= t.outputEnd else { return nil }
            consumedNow[t.task] = t.outputEnd
        }
        let openRows = snapshot.openRows.map { (RowID($0), makeRow($0, final: false)) }
        return Delta(tasks: snapshot.tasks, consumed: consumedNow, stamps: now, finalRows: finalRows, openRows: openRows)
    }

    private func makeRow(_ row: ResultReader.Row, final: Bool) -> Row {
        var out = Row(json: row.json, final: final, rideId: row.rideId)
        if let x = dayExtractor {
            var padded = row.json
            padded.append(contentsOf: repeatElement(0, count: JSONFieldExtractor.padding))
            let ok = padded.withUnsafeBytes { raw in (try? x.parse(UnsafeRawBufferPointer(rebasing: raw[0..<row.json.count]))) != nil }
            if ok, let start = x.field(0).text, let t = try? EventTime.parse(start).get(), let count = x.field(1).text.flatMap({ Int64($0) }) {
                out.day = WindowMath.floorDiv(t.rawValue, Self.nanosPerDay)
                out.count = count
            }
        }
        return out
    }

    /// Applies a delta (under the store's lock).
    func apply(_ d: Delta) {
        tasks = d.tasks
        consumed = d.consumed
        stamps = d.stamps
        var added: [RowID] = []
        for (id, row) in d.finalRows {
            if let old = final[id] {
                // emit: updates — the last record of an identity wins.
                if let day = old.day, let c = old.count { finalDaily[day, default: 0] -= c }
                if let r = old.rideId { finalByRide[r]?.removeAll { $0 == id } }
            } else {
                added.append(id)
            }
            final[id] = row
            if let day = row.day, let c = row.count { finalDaily[day, default: 0] += c }
            if let r = row.rideId { finalByRide[r, default: []].append(id) }
        }
        if !added.isEmpty { finalSorted = Self.merge(finalSorted, added.sorted()) }
        open = [:]
        openByRide = [:]
        for (id, row) in d.openRows where final[id] == nil {
            open[id] = row
            if let r = row.rideId { openByRide[r, default: []].append(id) }
        }
        openSorted = open.keys.sorted()
    }

    static func merge(_ a: [RowID], _ b: [RowID]) -> [RowID] {
        var out: [RowID] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count && j < b.count {
            if a[i] < b[j] { out.append(a[i]); i += 1 } else { out.append(b[j]); j += 1 }
        }
        out.append(contentsOf: a[i...])
        out.append(contentsOf: b[j...])
        return out
    }

    // MARK: reading (under the lock)

    func row(_ id: RowID) -> Row? { final[id] ?? open[id] }

    /// Up to `limit` identities after `after` (all when nil), within `key` when given, in
    /// order; and whether more follow.
    func page(after: RowID?, key: String?, limit: Int) -> (ids: [RowID], more: Bool) {
        // Where the page starts: just after the cursor, or at the key's first row when the
        // cursor lies before the key (or there is none).
        var lower = after
        var inclusive = false
        if let key, after == nil || after!.key < key {
            lower = RowID(key: key, start: .min)
            inclusive = true
        }
        var i = Self.firstIndex(in: finalSorted, after: lower, inclusive: inclusive)
        var j = Self.firstIndex(in: openSorted, after: lower, inclusive: inclusive)
        var out: [RowID] = []
        // Merge the two sorted lists (they share no identity).
        while true {
            let a = i < finalSorted.count ? finalSorted[i] : nil
            let b = j < openSorted.count ? openSorted[j] : nil
            guard let next = [a, b].compactMap({ $0 }).min() else { return (out, false) }
            if let key, next.key != key { return (out, false) }
            if out.count == limit { return (out, true) }
            out.append(next)
            if next == a { i += 1 } else { j += 1 }
        }
    }

    /// The index of the first identity > `after` (or >= when inclusive).
    static func firstIndex(in sorted: [RowID], after: RowID?, inclusive: Bool) -> Int {
        guard let after else { return 0 }
        var lo = 0, hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid] < after || (!inclusive && sorted[mid] == after) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    func tickets(ofRide ride: String) -> [RowID] {
        ((finalByRide[ride] ?? []) + (openByRide[ride] ?? [])).sorted()
    }

    /// Counts per UTC day over final and open rows, and the days that still have open rows.
    func daily() -> (counts: [Int64: Int64], openDays: Set<Int64>) {
        var counts = finalDaily
        var openDays = Set<Int64>()
        for row in open.values {
            guard let day = row.day, let c = row.count else { continue }
            counts[day, default: 0] += c
            openDays.insert(day)
        }
        return (counts, openDays)
    }

    var hasDailyCounts: Bool { dayExtractor != nil }

    /// Sum of the checkpoint files' sizes (the state size).
    var stateBytes: Int { tasks.reduce(0) { $0 + $1.checkpointBytes } }
}

/// What identifies a file's current contents cheaply: checkpoints are replaced by rename,
/// so a new checkpoint is a new inode (and usually a new mtime and size).
struct FileStamp: Equatable {
    var inode: UInt64
    var mtimeNanos: Int64
    var size: Int64

    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        inode = UInt64(st.st_ino)
        mtimeNanos = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        size = Int64(st.st_size)
    }
}
