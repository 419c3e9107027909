import KappaCore
import KappaFormat
import KappaLog

/// One partition a task writes alone (its output, late-events or dead-letter partition)
/// with exactly-once visibility: records are appended as they come, but readers see
/// them only once `publish()` moves the partition's committed marker, which the task does
/// right after a checkpoint that records `end`. On restart, `rollBack(to:)` cuts away
/// whatever was written after the last checkpoint. Not thread-safe.
final class TaskOutput {
    let writer: PartitionWriter
    private let fileSystem: any FileSystem
    private let builder: RecordBatchBuilder
    private let sealed = SealedBatches()
    private let codec = LZ4Codec()
    private(set) var appended: Int64 = 0
    /// Records were appended since the last `publish()`.
    private(set) var unpublished = false
    /// The committed marker as it is on disk (a missing one reads as empty).
    private var published: CommittedMarker

    init(directory: DataDirectory, topicPartition: TopicPartition, fsync: FsyncPolicy) throws(KappaError) {
        let config = try directory.topicConfig(topicPartition.topic)
        writer = try PartitionWriter(directory: directory, topicPartition: topicPartition, config: config, fsync: fsync)
        fileSystem = directory.fileSystem
        builder = RecordBatchBuilder(compression: config.codec)
        published = try CommittedMarker.read(fileSystem, partitionDirectory: writer.directory)
    }

    /// Appends a result record: key and value bytes, headers in their wire form.
    func append(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos, headers: EncodedHeaders) {
        builder.append(key: key, value: value, timestamp: timestamp, headers: headers)
        appended += 1
        unpublished = true
        sealIfFull()
    }

    func append(key: [UInt8]?, value: [UInt8], timestamp: TimestampNanos, headers: [RecordHeader]) {
        value.withUnsafeBytes { append(key: key, value: $0, timestamp: timestamp, headers: headers) }
    }

    func append(key: [UInt8]?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos, headers: [RecordHeader]) {
        if let key {
            key.withUnsafeBytes { k in builder.append(key: k, value: value, timestamp: timestamp, headers: headers) }
        } else {
            builder.append(key: nil, value: value, timestamp: timestamp, headers: headers)
        }
        appended += 1
        unpublished = true
        sealIfFull()
    }

    /// Seals a full batch (appending never fails: it only buffers and compresses).
    private func sealIfFull() {
        guard builder.isFull else { return }
        sealed.seal(builder, codec: codec)
    }

    /// Writes sealed batches once a megabyte has gathered (the task calls it after each
    /// step): they are invisible to readers until `publish()` (and cut on restart), so
    /// memory need not hold a checkpoint interval's output.
    func writeFull() throws(KappaError) {
        if sealed.bytes >= 1 << 20 { try writer.append(sealed) }
    }

    /// Writes what is buffered; returns the partition's end offset.
    @discardableResult
    func flush() throws(KappaError) -> Offset {
        sealed.seal(builder, codec: codec)
        try writer.append(sealed)
        return writer.nextOffset
    }

    func sync() throws(KappaError) { try writer.syncNow() }

    var end: Offset { writer.nextOffset }

    /// Makes everything up to the current end visible to readers. A marker that would not
    /// change is not rewritten: a version's late-events and dead-letter partitions mostly
    /// stay empty, and each rewrite is a new file (write, rename).
    func publish() throws(KappaError) {
        let marker = writer.endMarker
        if marker != published {
            try marker.write(fileSystem, partitionDirectory: writer.directory)
            published = marker
        }
        unpublished = false
    }

    /// Discards records after `offset` (written after the last checkpoint) and publishes.
    func rollBack(to offset: Offset) throws(KappaError) {
        precondition(builder.isEmpty && sealed.isEmpty, "roll back happens before anything new is written")
        try writer.truncate(to: offset)
        try publish()
    }
}

