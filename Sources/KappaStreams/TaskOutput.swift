import KappaCore
import KappaFormat
import KappaLog

/// One partition a task writes alone (its output, late-events or dead-letter partition)
/// with exactly-once visibility: records are appended as they come, but readers see
/// them only once `publish()` moves the partition's committed marker, which the task does
/// right after a checkpoint that records `end`. On restart, `rollBack(to:)` cuts away
/// whatever was written after the last checkpoint. Not thread-safe.
///
/// A partition that holds no log yet (a new version's, and most late-events and
/// dead-letter partitions stay so) is opened at its first write, not at the start:
/// opening creates its segment files, lock and published end, with their fsyncs — about
/// a third of the files a replay used to create. Until then its end is 0, there is
/// nothing to sync, publish or cut back, and a reader sees it empty, as a missing
/// committed marker says.
final class TaskOutput {
    private var opened: PartitionWriter?
    private let directory: DataDirectory
    private let topicPartition: TopicPartition
    private let config: TopicConfig
    private let fsync: FsyncPolicy
    private let fileSystem: any FileSystem
    private let builder: RecordBatchBuilder
    private let sealed = SealedBatches()
    private let codec = LZ4Codec()
    private(set) var appended: Int64 = 0
    /// Records were appended since the last `publish()`.
    private(set) var unpublished = false
    /// The committed marker as it is on disk (a missing one reads as empty).
    private var published = CommittedMarker.empty

    init(directory: DataDirectory, topicPartition: TopicPartition, fsync: FsyncPolicy) throws(KappaError) {
        config = try directory.topicConfig(topicPartition.topic)
        self.directory = directory
        self.topicPartition = topicPartition
        self.fsync = fsync
        fileSystem = directory.fileSystem
        builder = RecordBatchBuilder(compression: config.codec)
        let path = directory.partitionPath(topicPartition)
        if try Self.holdsLog(fileSystem, path) { _ = try writer() }
    }

    /// The partition has been opened for writing before: it has a segment or a
    /// published end (what a writer creates first).
    static func holdsLog(_ fs: any FileSystem, _ path: String) throws(KappaError) -> Bool {
        guard fs.isDirectory(path) else { return false }
        if fs.exists(PublishedEnd.path(path)) { return true }
        return try !SegmentFiles.bases(in: path, fileSystem: fs).isEmpty
    }

    /// The partition's writer, opened (and its tail recovered) on first use.
    private func writer() throws(KappaError) -> PartitionWriter {
        if let opened { return opened }
        let w = try PartitionWriter(directory: directory, topicPartition: topicPartition, config: config, fsync: fsync)
        published = try CommittedMarker.read(fileSystem, partitionDirectory: w.directory)
        opened = w
        return w
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
        if sealed.bytes >= 1 << 20 { try writer().append(sealed) }
    }

    /// Writes what is buffered; returns the partition's end offset.
    @discardableResult
    func flush() throws(KappaError) -> Offset {
        sealed.seal(builder, codec: codec)
        guard opened != nil || sealed.bytes > 0 else { return .zero }  // never written: empty
        try writer().append(sealed)
        return end
    }

    func sync() throws(KappaError) { try opened?.syncNow() }

    /// The partition's end offset (0 while it has never been written).
    var end: Offset { opened?.nextOffset ?? .zero }

    /// Makes everything up to the current end visible to readers. A marker that would not
    /// change is not rewritten (each rewrite is a new file: write, rename).
    func publish() throws(KappaError) {
        if let w = opened {
            let marker = w.endMarker
            if marker != published {
                try marker.write(fileSystem, partitionDirectory: w.directory)
                published = marker
            }
        }
        unpublished = false
    }

    /// Discards records after `offset` (written after the last checkpoint) and publishes.
    func rollBack(to offset: Offset) throws(KappaError) {
        precondition(builder.isEmpty && sealed.isEmpty, "roll back happens before anything new is written")
        // A partition never written holds nothing to cut; a checkpoint that counts
        // records in it opens it, and the writer reports the log that is not there.
        if opened != nil || offset != .zero { try writer().truncate(to: offset) }
        try publish()
    }
}
