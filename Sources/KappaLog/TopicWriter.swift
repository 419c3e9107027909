import Dispatch
import KappaCore
import KappaFormat

/// Appends records to a topic: routes each to its partition (`Partitioner`), builds
/// batches per partition, seals full ones, and hands sealed batches to that partition's
/// `PartitionWriter` once enough have gathered to make the lock and write worth it.
/// Opening it checks (and repairs) every partition's tail.
///
/// With `sealInBackground`, a full batch is handed to a serial queue that compresses,
/// checksums and writes it while the caller goes on parsing: two cores for `produce`.
/// Ownership is what keeps that safe: a builder belongs to the caller until it is handed
/// over, and the sealed buffers and partition writers are touched only on the queue
/// (or by the caller after `flush` has drained it). At most `inFlightMax` batches wait,
/// which bounds memory. Not thread-safe for callers: one thread appends.
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
    /// The first error of a background seal or write; set on the queue, read after it drains.
    private var backgroundFailure: KappaError?
    /// Sealed bytes per partition that trigger a write: large writes, few lock round trips.
    public var writeThresholdBytes = 1 << 20

    public private(set) var recordsAppended = 0

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
    }

    public var partitions: Int32 { config.partitions }
    public var recoveries: [RecoveryEvent] { writers.flatMap(\.recoveries) }

    /// The partition a record with this key goes to (and advances round-robin for nil).
    public func partition(for key: UnsafeRawBufferPointer?) -> Int32 { partitioner.partition(for: key) }

    /// Buffers one record for `partition`. It is durable only after `flush()`.
    public func append(partition: Int32, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos,
                       headers: [RecordHeader] = []) throws(KappaError) {
        let p = Int(partition)
        let builder = builders[p]
        builder.append(key: key, value: value, timestamp: timestamp, headers: headers)
        recordsAppended += 1
        guard builder.isFull else { return }
        guard let sealQueue else {
            try sealAndMaybeWrite(builder, partition: p)
            return
        }
        if let failure = backgroundFailure { throw failure }
        builders[p] = RecordBatchBuilder(compression: config.codec)
        inFlight.wait()
        let handedOver = Transfer(builder)
        sealQueue.async { [self] in
            defer { inFlight.signal() }
            guard backgroundFailure == nil else { return }
            do throws(KappaError) {
                try sealAndMaybeWrite(handedOver.value, partition: p)
            } catch {
                backgroundFailure = error
            }
        }
    }

    private func sealAndMaybeWrite(_ builder: RecordBatchBuilder, partition p: Int) throws(KappaError) {
        sealed[p].seal(builder, codec: codec)
        if sealed[p].bytes >= writeThresholdBytes { try writers[p].append(sealed[p]) }
    }

    /// Waits for the background queue to finish what it was given; rethrows its error.
    private func drain() throws(KappaError) {
        sealQueue?.sync {}
        if let failure = backgroundFailure { throw failure }
    }

    /// Routes by key, then buffers. Returns the partition.
    @discardableResult
    public func append(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos,
                       headers: [RecordHeader] = []) throws(KappaError) -> Int32 {
        let p = partitioner.partition(for: key)
        try append(partition: p, key: key, value: value, timestamp: timestamp, headers: headers)
        return p
    }

    /// Seals every open batch and writes everything buffered. After it returns, every
    /// record appended so far is in the log and visible to readers.
    public func flush() throws(KappaError) {
        try drain()
        for p in 0..<Int(config.partitions) {
            sealed[p].seal(builders[p], codec: codec)
            try writers[p].append(sealed[p])
        }
    }

    /// Flushes, then syncs per the fsync policy.
    public func close() throws(KappaError) {
        try flush()
        for w in writers { try w.close() }
    }

    /// The next offset of each partition, as this writer last saw it.
    public var nextOffsets: [Offset] { writers.map(\.nextOffset) }
}
