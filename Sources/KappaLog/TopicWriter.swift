import Dispatch
import KappaCore
import KappaFormat
import Synchronization

/// Appends records to a topic: routes each to its partition (`Partitioner`), builds
/// batches per partition, and writes them in **groups**: a group is every record
/// appended since the previous group, across all partitions, and it reaches the log
/// all or nothing. A group is cut when `groupThresholdBytes` of records have gathered,
/// and by `flush()`/`close()`; cutting seals each partition's open batch, then the
/// group's partitions are locked in partition order, written, fsynced per the policy,
/// published, and released (`PartitionWriter.beginAppend` … `finishAppend`). If any
/// write fails, every partition of the group is undone.
///
/// So after a failure the log holds exactly the records of the groups before it: the
/// first `acknowledgedRecords` records appended, a prefix of the input in every
/// partition and across partitions, and `firstUnacknowledgedLine` (the `line` the
/// caller gave the first record not written) is where to resume. Groups after a failed
/// one are never written: the writer is dead, and every later call throws.
///
/// Opening it recovers every partition's tail (`PartitionWriter`).
///
/// With `sealInBackground`, full batches and groups are handed to a serial queue that
/// compresses, checksums and writes them while the caller goes on parsing: two cores for
/// `produce`. Ownership keeps that safe: a builder belongs to the caller until it is
/// handed over; sealed buffers and partition writers are touched only on the queue (or
/// by the caller after `drain` has emptied it). At most `inFlightMax` jobs wait, which
/// bounds memory. Not thread-safe for callers: one thread appends.
public final class TopicWriter: @unchecked Sendable {
    public let topic: String
    public let config: TopicConfig
    private var partitioner: Partitioner
    private let writers: [PartitionWriter]
    private var builders: [RecordBatchBuilder]
    private let sealed: [SealedBatches]
    private let codec = LZ4Codec()
    private let sealQueue: DispatchQueue?
    private static let inFlightMax = 8
    private let inFlight = DispatchSemaphore(value: TopicWriter.inFlightMax)

    /// Uncompressed record bytes that cut a group. Large groups mean large writes and few
    /// lock round trips; each cut seals a short batch per partition, and the group is
    /// held in memory until written. Default: 4 MiB per partition, 8 MiB to 256 MiB.
    public var groupThresholdBytes: Int
    private var groupBytes = 0
    private var groupRecords = 0
    private var groupFirstLine = 0

    /// Records handed to `append` so far.
    public private(set) var recordsAppended = 0
    /// Groups cut so far (a test mirrors where batches break).
    public private(set) var groupsCut = 0
    /// Records of the groups written and published: after a failure, exactly the ones in
    /// the log. Read it after `flush()` or `close()` returned or threw.
    public var acknowledgedRecords: Int { outcome.withLock { $0.acknowledged } }
    /// The `line` of the first record not written, after a failure (nil before one).
    public var firstUnacknowledgedLine: Int? { outcome.withLock { $0.firstUnacknowledgedLine } }

    /// What the writing side (queue or caller) reports back: shared, so behind a lock
    /// (taken per group and per full batch, never per record).
    private struct Outcome {
        var acknowledged = 0
        var firstUnacknowledgedLine: Int?
        /// The first error of a group.
        var failure: KappaError?
    }

    private let outcome = Mutex(Outcome())
    private var failure: KappaError? { outcome.withLock { $0.failure } }

    public init(directory: DataDirectory, topic: String, fsync: FsyncPolicy = .default, clock: any WallClock = SystemClock(),
                sealInBackground: Bool = false) throws(KappaError) {
        self.topic = topic
        sealQueue = sealInBackground ? DispatchQueue(label: "kappa.seal.\(topic)") : nil
        config = try directory.topicConfig(topic)
        partitioner = Partitioner(partitions: config.partitions)
        var ws: [PartitionWriter] = []
        for p in 0..<config.partitions {
            ws.append(try PartitionWriter(directory: directory, topicPartition: TopicPartition(topic, p), config: config, fsync: fsync, clock: clock))
        }
        writers = ws
        let codec = config.codec
        builders = (0..<config.partitions).map { _ in RecordBatchBuilder(compression: codec) }
        sealed = (0..<config.partitions).map { _ in SealedBatches() }
        groupThresholdBytes = min(256 << 20, max(8 << 20, Int(config.partitions) * (4 << 20)))
    }

    public var partitions: Int32 { config.partitions }
    public var recoveries: [RecoveryEvent] { writers.flatMap(\.recoveries) }
    public var warnings: [String] { writers.flatMap(\.warnings) }

    /// The partition a record with this key goes to (and advances round-robin for nil).
    public func partition(for key: UnsafeRawBufferPointer?) -> Int32 { partitioner.partition(for: key) }

    /// Buffers one record for `partition`. It is in the log only after the group it
    /// belongs to was written (`flush()`). `line` is the caller's name for where the
    /// record came from (`produce`: its input line), reported after a failure.
    public func append(partition: Int32, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos,
                       headers: [RecordHeader] = [], line: Int = 0) throws(KappaError) {
        let p = Int(partition)
        let builder = builders[p]
        let before = builder.recordsBytes
        builder.append(key: key, value: value, timestamp: timestamp, headers: headers)
        if groupRecords == 0 { groupFirstLine = line }
        groupRecords += 1
        groupBytes += builder.recordsBytes - before
        recordsAppended += 1
        if builder.isFull { try handOver(full: builder, partition: p) }
        if groupBytes >= groupThresholdBytes { try cutGroup() }
    }

    /// Routes by key, then buffers. Returns the partition.
    @discardableResult
    public func append(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos,
                       headers: [RecordHeader] = [], line: Int = 0) throws(KappaError) -> Int32 {
        let p = partitioner.partition(for: key)
        try append(partition: p, key: key, value: value, timestamp: timestamp, headers: headers, line: line)
        return p
    }

    /// A full batch is sealed now (in the background when so configured), not written.
    private func handOver(full builder: RecordBatchBuilder, partition p: Int) throws(KappaError) {
        if let failure { throw failure }
        builders[p] = RecordBatchBuilder(compression: config.codec)
        run(Transfer(builder)) { [self] handed in sealed[p].seal(handed.value, codec: codec) }
    }

    /// Hands every open batch and the group's bookkeeping over to be sealed and written.
    private func cutGroup() throws(KappaError) {
        if let failure { throw failure }
        guard groupRecords > 0 else { return }
        var open: [(Int, RecordBatchBuilder)] = []
        for p in builders.indices where !builders[p].isEmpty {
            open.append((p, builders[p]))
            builders[p] = RecordBatchBuilder(compression: config.codec)
        }
        let records = groupRecords, firstLine = groupFirstLine
        groupRecords = 0
        groupBytes = 0
        groupsCut += 1
        run(Transfer(open)) { [self] handed in
            for (p, builder) in handed.value { sealed[p].seal(builder, codec: codec) }
            do throws(KappaError) {
                try writeGroup(sealed.indices.filter { !sealed[$0].isEmpty })
                outcome.withLock { $0.acknowledged += records }
            } catch {
                outcome.withLock {
                    $0.failure = error
                    $0.firstUnacknowledgedLine = firstLine
                }
            }
        }
        if sealQueue == nil, let failure { throw failure }
    }

    /// Runs `job` on the queue (waiting for room), or at once without one. Jobs after a
    /// failure are skipped: nothing after a failed group may reach the log.
    private func run<T>(_ handed: Transfer<T>, _ job: @escaping (Transfer<T>) -> Void) {
        guard let sealQueue else {
            if failure == nil { job(handed) }
            return
        }
        inFlight.wait()
        let work = Transfer(job)  // the queue becomes the job's only user
        sealQueue.async { [self] in
            defer { inFlight.signal() }
            guard failure == nil else { return }
            work.value(handed)
        }
    }

    /// Writes the sealed batches of partitions `ps` as one: all locks (in partition
    /// order), all writes, the fsyncs the policy asks for, all publishes; any failure
    /// undoes every partition.
    private func writeGroup(_ ps: [Int]) throws(KappaError) {
        var begun: [Int] = []
        do {
            for p in ps {
                try writers[p].beginAppend()
                begun.append(p)
            }
            for p in ps { _ = try writers[p].writeLocked(sealed[p]) }
            for p in ps { try writers[p].syncIfDueLocked() }
            for p in ps { try writers[p].publishLocked() }
        } catch {
            var reported = error
            for p in begun {
                writers[p].abortAppend(after: error)
                if let undo = writers[p].undoFailure { reported = undo }
            }
            throw reported
        }
        for p in ps {
            writers[p].finishAppend()
            sealed[p].removeAll()
        }
    }

    /// Waits for the queue to finish what it was given; rethrows the first failure.
    private func drain() throws(KappaError) {
        sealQueue?.sync {}
        if let failure { throw failure }
    }

    /// Writes every record appended so far as a group and waits for it. After it
    /// returns, every record appended so far is in the log and visible to readers.
    public func flush() throws(KappaError) {
        if let failure { throw failure }
        try cutGroup()
        try drain()
    }

    /// Flushes, then syncs per the fsync policy (and throws what an acknowledged group
    /// left behind: a recovery point that could not move, a failed retention).
    public func close() throws(KappaError) {
        try flush()
        for w in writers { try w.close() }
    }

    /// The next offset of each partition, as this writer last saw it.
    public var nextOffsets: [Offset] { writers.map(\.nextOffset) }
}
