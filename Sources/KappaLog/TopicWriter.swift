import KappaCore
import KappaFormat

/// Appends records to a topic: routes each to its partition (`Partitioner`), builds
/// batches per partition, seals full ones, and hands sealed batches to that partition's
/// `PartitionWriter` once enough have gathered to make the lock and write worth it.
/// Opening it checks (and repairs) every partition's tail. Not thread-safe.
public final class TopicWriter {
    public let topic: String
    public let config: TopicConfig
    private var partitioner: Partitioner
    private let writers: [PartitionWriter]
    private let builders: [RecordBatchBuilder]
    private let sealed: [SealedBatches]
    private let codec = LZ4Codec()
    /// Sealed bytes per partition that trigger a write: large writes, few lock round trips.
    public var writeThresholdBytes = 1 << 20

    public private(set) var recordsAppended = 0

    public init(directory: DataDirectory, topic: String, fsync: FsyncPolicy = .default, clock: any WallClock = SystemClock()) throws(KappaError) {
        self.topic = topic
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
        if builder.isFull {
            sealed[p].seal(builder, codec: codec)
            if sealed[p].bytes >= writeThresholdBytes { try writers[p].append(sealed[p]) }
        }
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
