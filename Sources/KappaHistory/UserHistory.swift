import KappaCore
import KappaFormat
import KappaLog
import Synchronization

/// Every user's raw events from every source topic, in event-time order, paged: the
/// index behind `GET /v1/users/{user_id}/events`. Derived state: the log is the truth,
/// and the index can always be deleted and built again from it.
///
/// **What it indexes.** Each record of each source topic (`HistorySources`: not a job's
/// own topic, not a dead-letter topic) whose value is a JSON object with a user field
/// (`user_id` unless configured), under its event time (`HistoryFields`: the time field
/// parsed exactly, else the record timestamp). Records without a user and values that
/// are not JSON are skipped and counted (`HistoryCounts`). An entry holds the record's
/// position — (user, time, topic, partition, offset) — and where its batch lies; the
/// value itself stays in the log and is fetched by offset when a page is read.
///
/// **On disk.** `DATA/history/`: `lock` (flock'ed by the process that has the index
/// open) and `index/`, a RocksDB database (`RocksDBHistoryStore`; row layouts in
/// `HistoryKeys` and `HistoryMeta`).
///
/// **Why RocksDB**, measured against SQLite (the system libsqlite3, one `WITHOUT ROWID`
/// B-tree table) on the same rows, on Rebu data with 20,000 users
/// (`Benchmarks/KappaBenchmarks/HistoryBenchmarks.swift`, shared 2-core machine):
///
/// | 10.66M events (712 MB of log)       | SQLite                   | RocksDB                   |
/// |-------------------------------------|--------------------------|---------------------------|
/// | build from scratch, CPU (wall)      | 40 s (84 s)              | 44 s (75 s)               |
/// | peak memory while building          | 130 MB                   | 199 MB (with 64 MB memtable; now 32) |
/// | index on disk                       | 801 MB, 75 B/entry       | 279 MB, 26 B/entry        |
/// | full page of 50, p50 at 1M → 10M    | 1.6 → 2.6 ms             | 1.8 → 2.8 ms              |
/// | flipped bytes in the index file     | a page silently missing entries (no page checksums; `PRAGMA quick_check` at open: 2.8 s at 10M) | error on read (block checksums) → rebuild |
///
/// Throughput and page latency are the same within this machine's noise (a page's cost
/// is the log reads, not the index seek). RocksDB wins on what is left: an index a third
/// the size (smaller than the log, where SQLite's is larger), and damage that is always
/// detected when read rather than served as a shorter history — "never served" holds by
/// construction. Its cost: Debian's librocksdb-dev (+7 packages, ~49 MB installed, no
/// build time: a system library like liblz4), and RocksDB's background threads.
///
/// **Consistency.** Entries, each partition's indexed offset and the counts are
/// committed in one transaction (`catchUp` commits every `commitEntries` rows and at its
/// end), so after kill -9 at any moment the index holds exactly the records below its
/// offsets, and the next `catchUp` resumes there: the result equals an uninterrupted
/// build. Opening checks the index against the log: the meta row (magic, version, user
/// and time fields) and, per partition, that the last batch indexed is still in the log
/// with the same CRC (a topic deleted and recreated, a tail lost to a power loss); any
/// mismatch, and any row that does not check out (row CRCs, RocksDB's block checksums), is
/// reported as a warning and the index is rebuilt from the log — never served. A page
/// also checks every record it returns against its entry (same user, same time).
///
/// **Costs.** A page is one seek in the LSM tree (O(log n) in the entries: a binary
/// search per level, each level's index blocks cached) plus, per entry, one batch read
/// and decode from the log (two `pread`s at the position the entry keeps; entries of one
/// batch decode it once): independent of the log's length. Memory is bounded (RocksDB's
/// memtables and block cache, one commit's rows, one reader per source partition, a few
/// fetchers); disk grows with the log (~26 bytes per entry).
///
/// **Concurrency.** `page`, `asOf` and `status` may be called from any number of
/// threads, also while `catchUp` runs; `catchUp` and `rebuild` are serialised
/// internally. One process at a time has the index open (the `lock` file): a second
/// `open` fails with `.conflict`.
public final class UserHistory: @unchecked Sendable {
    public struct Options: Sendable {
        /// The JSON field holding the user (a dotted path; the default `user_id`).
        public var userField = "user_id"
        /// The JSON field holding the event time (the default `time_utc`).
        public var timeField = "time_utc"
        /// Rows per transaction while catching up: bounds memory (~100 bytes a row) and
        /// what a crash makes the next catch-up read again.
        public var commitEntries = 50_000
        /// Told about every rebuild and other things a person should know.
        public var onWarning: @Sendable (String) -> Void = { _ in }

        public init() {}
    }

    public let directory: DataDirectory
    public let options: Options
    public var path: String { Self.path(directory) }
    public static func path(_ directory: DataDirectory) -> String { directory.root + "/history" }

    /// Guards `store` against a rebuild swapping it while pages read it.
    let storeLock = ReadWriteLock()
    nonisolated(unsafe) var store: any HistoryStore
    /// Serialises catch-ups and rebuilds; guards `indexer`.
    let indexerLock = Mutex<Void>(())
    nonisolated(unsafe) var indexer: IndexerState
    /// Set by a page that found an entry the log contradicts; the next catch-up rebuilds.
    let rebuildRequest = Mutex<String?>(nil)
    let queryContexts = Mutex<[QueryContext]>([])
    private let lockFile: FileLock
    let fields: HistoryFields

    /// Opens (creating or rebuilding as needed) the index of `directory`. Throws
    /// `.conflict` when another process has it open.
    public init(directory: DataDirectory, options: Options = Options()) throws(KappaError) {
        self.directory = directory
        self.options = options
        precondition(options.commitEntries > 0, "commitEntries must be positive")
        let fs = directory.fileSystem
        let root = Self.path(directory)
        try fs.makeDirectories(root)
        lockFile = try FileLock(path: root + "/lock", fileSystem: fs)
        guard try lockFile.tryLockExclusive() else {
            throw KappaError(.conflict, "the history index is in use by another process (kappa serve?)", path: root + "/lock")
        }
        fields = try HistoryFields(userField: options.userField, timeField: options.timeField)
        indexer = IndexerState(fields: try HistoryFields(userField: options.userField, timeField: options.timeField))
        let index = Self.indexPath(root)
        if fs.exists(index) && !fs.isDirectory(index) {
            options.onWarning("history index at \(root) is rebuilt from the log: \(index) is a file, not an index")
            try fs.remove(index)
        }
        do {
            store = try Self.openStore(root: root)
        } catch where error.code == .corruptData {
            options.onWarning("history index at \(root) is rebuilt from the log: it does not open: \(error)")
            try Self.removeStoreFiles(fs, root: root)
            store = try Self.openStore(root: root)
        }
        try load()
    }

    deinit {
        store.close()
        lockFile.unlock()
    }

    // MARK: - Freshness

    /// The indexed offsets: for each source partition, every record below its offset is
    /// in the index (and nothing at or above). What a page reflects, for `as_of`.
    public func asOf() throws(KappaError) -> [TopicPartition: Offset] {
        try storeLock.withRead { () throws(KappaError) in
            try store.read { (snapshot) throws(KappaError) in try Self.readProgress(snapshot, path: path).mapValues(\.nextOffset) }
        }
    }

    /// What the index holds: offsets, counts, bytes on disk.
    public func status() throws(KappaError) -> HistoryStatus {
        try storeLock.withRead { () throws(KappaError) in
            try store.read { (snapshot) throws(KappaError) -> HistoryStatus in
                let progress = try Self.readProgress(snapshot, path: path)
                let meta = try Self.readMeta(snapshot, path: path)
                return HistoryStatus(path: path, asOf: progress.mapValues(\.nextOffset), counts: meta?.counts ?? HistoryCounts(),
                                     diskBytes: store.diskBytes())
            }
        }
    }

    // MARK: - Opening, checking, rebuilding

    static func openStore(root: String) throws(KappaError) -> any HistoryStore {
        try RocksDBHistoryStore(path: indexPath(root))
    }

    static func indexPath(_ root: String) -> String { root + "/index" }

    /// Reads the meta row and the offsets into the indexer; rebuilds when the index is
    /// not this one or does not match the log.
    private func load() throws(KappaError) {
        let problem: String?
        do {
            problem = try checkAgainstLog()
        } catch where error.code == .corruptData && error.topicPartition == nil && error.path?.hasPrefix(path) == true {
            problem = "it is damaged: \(error)"  // the index's files; damage in the log is the log's error
        }
        if let problem { try rebuild(reason: problem) }
    }

    /// Why the index on disk cannot be used, or nil (and the indexer loaded).
    private func checkAgainstLog() throws(KappaError) -> String? {
        let (meta, progress) = try store.read { (snapshot) throws(KappaError) in
            (try Self.readMeta(snapshot, path: path), try Self.readProgress(snapshot, path: path))
        }
        guard let meta else {
            if progress.isEmpty {  // a new index
                indexer.reset()
                try writeMeta(HistoryMeta(userField: options.userField, timeField: options.timeField))
                return nil
            }
            return "it has offsets but no meta row"
        }
        guard meta.userField == options.userField, meta.timeField == options.timeField else {
            return "it was built for user field '\(meta.userField)' and time field '\(meta.timeField)', not '\(options.userField)' and '\(options.timeField)'"
        }
        for (tp, p) in progress.sorted(by: { $0.key < $1.key }) {
            if let mismatch = try LogCheck.mismatch(directory, tp, p) { return mismatch }
        }
        indexer.reset()
        indexer.progress = progress
        indexer.counts = meta.counts
        return nil
    }

    private func writeMeta(_ meta: HistoryMeta) throws(KappaError) {
        let rows = RowBatch()
        rows.put(HistoryKeys.metaKey, meta.encoded())
        try store.commit(rows)
    }

    /// Deletes the index and starts it again from the log (the next `catchUp`s fill it).
    /// Pages wait for the swap and then see an empty index growing from offset 0.
    public func rebuild(reason: String) throws(KappaError) {
        try indexerLock.withLock { _ throws(KappaError) in try rebuildLocked(reason: reason) }
    }

    func rebuildLocked(reason: String) throws(KappaError) {
        options.onWarning("history index at \(path) is rebuilt from the log: \(reason)")
        try storeLock.withWrite { () throws(KappaError) in
            store.close()
            queryContexts.withLock { $0.removeAll() }
            try Self.removeStoreFiles(directory.fileSystem, root: path)
            store = try Self.openStore(root: path)
        }
        indexer.reset()
        try writeMeta(HistoryMeta(userField: options.userField, timeField: options.timeField))
    }

    /// Deletes everything in the index directory but the lock.
    static func removeStoreFiles(_ fs: any FileSystem, root: String) throws(KappaError) {
        for name in try fs.list(root) where name != "lock" { try fs.removeTree(root + "/" + name) }
        try fs.syncDirectory(root)
    }

    // MARK: - Reading rows

    static func readMeta(_ snapshot: any HistorySnapshot, path: String) throws(KappaError) -> HistoryMeta? {
        guard let bytes = try snapshot.get(HistoryKeys.metaKey) else { return nil }
        switch HistoryMeta.decode(bytes) {
        case .success(let m): return m
        case .failure(let why): throw KappaError(.corruptData, "history index meta row: \(why.reason)", path: path)
        }
    }

    static func readProgress(_ snapshot: any HistorySnapshot, path: String) throws(KappaError) -> [TopicPartition: PartitionProgress] {
        var out: [TopicPartition: PartitionProgress] = [:]
        var bad: [UInt8]?
        try snapshot.scan(from: [HistoryKeys.progressTag], inclusive: true, below: HistoryKeys.progressEnd, limit: Int.max) { k, v in
            if let (tp, p) = HistoryKeys.decodeProgress(key: Array(k), value: Array(v)) {
                out[tp] = p
            } else if bad == nil {
                bad = Array(k)
            }
        }
        if let bad { throw KappaError(.corruptData, "history index offset row \(bad.prefix(64)) does not check out (CRC or layout)", path: path) }
        return out
    }
}

/// What `UserHistory.status` reports.
public struct HistoryStatus: Equatable, Sendable {
    public var path: String
    public var asOf: [TopicPartition: Offset]
    public var counts: HistoryCounts
    public var diskBytes: Int64
}

/// The indexer's memory: committed offsets and counts plus what the current catch-up
/// has read past them, the source topics, and one reader per source partition.
struct IndexerState {
    var progress: [TopicPartition: PartitionProgress] = [:]
    var counts = HistoryCounts()
    /// Source topics and their partition counts; topics seen and left out.
    var sources: [String: Int32] = [:]
    var ignored: Set<String> = []
    var readers: [TopicPartition: PartitionReader] = [:]
    /// A catch-up failed part way: memory may be ahead of the store; reload first.
    var stale = false
    let fields: HistoryFields
    let codec = LZ4Codec()
    let scratch = ByteWriter(capacity: 1 << 20)
    let rows = RowBatch()

    init(fields: HistoryFields) { self.fields = fields }

    mutating func reset() {
        progress = [:]
        counts = HistoryCounts()
        sources = [:]
        ignored = []
        readers = [:]
        stale = false
        rows.removeAll()
    }
}

/// Whether the log still holds what an index's offsets say was read.
enum LogCheck {
    /// Why the partition's log is not the one indexed, or nil when it is (or cannot be
    /// told: retention deleted the last batch indexed).
    static func mismatch(_ directory: DataDirectory, _ tp: TopicPartition, _ p: PartitionProgress) throws(KappaError) -> String? {
        guard p.nextOffset > .zero else { return nil }
        guard directory.topicExists(tp.topic) else { return "topic \(tp.topic) no longer exists" }
        let reader: PartitionReader
        do {
            reader = try PartitionReader(directory: directory, topicPartition: tp)
        } catch where error.code == .notFound {
            return "\(tp.readable) no longer exists"
        }
        if let end = try reader.visibleEnd(), end.offset < p.nextOffset {
            return "\(tp.readable) ends at offset \(end.offset), but the index has read it up to \(p.nextOffset) (a tail lost to a power loss, or the topic was recreated)"
        }
        guard p.lastBatchBase >= .zero else { return nil }
        if case .belowStart = try reader.seek(to: p.lastBatchBase) { return nil }
        guard let batch = try reader.nextBatch() else {
            return "\(tp.readable) no longer holds the batch at offset \(p.lastBatchBase) that the index read last"
        }
        guard batch.header.baseOffset == p.lastBatchBase, batch.header.crc == p.lastBatchCRC else {
            return "\(tp.readable) holds another batch at offset \(p.lastBatchBase) than the one the index read (CRC \(batch.header.crc), indexed \(p.lastBatchCRC)): the topic was recreated or its tail rewritten"
        }
        return nil
    }
}

/// A reader-writer lock (pthread): many pages at once, or one rebuild.
final class ReadWriteLock: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    init() { pthread_rwlock_init(lock, nil) }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func withRead<T>(_ body: () throws(KappaError) -> T) throws(KappaError) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func withWrite<T>(_ body: () throws(KappaError) -> T) throws(KappaError) -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

#if canImport(Glibc)
import Glibc
#endif
