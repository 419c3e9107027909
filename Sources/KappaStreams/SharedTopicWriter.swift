import KappaCore
import KappaFormat
import KappaLog
import Synchronization

/// The writers of one topic's partitions, shared by the tasks of a process that all
/// write it — a job version's repartition topic, which every task writes to every
/// partition. Each partition has its own lock, held only to write sealed batches: tasks
/// build and compress their batches alone (`RepartitionSender`) and meet here only to
/// append them. With a writer per task, each append found the tails moved by the other
/// tasks' writers and re-validated them (a directory listing, a rescan of the new
/// batches, rewritten index files): a tenth of a repartitioned replay's CPU. Writers in
/// other processes still coordinate through the partition's file lock as any two
/// producers do.
final class SharedTopicWriter: @unchecked Sendable {
    /// One partition's writer and the lock every use of it takes.
    final class Slot: @unchecked Sendable {
        private let lock = Mutex<Void>(())
        private let writer: PartitionWriter
        init(_ w: PartitionWriter) { writer = w }

        func withWriter<T>(_ body: (PartitionWriter) throws(KappaError) -> T) throws(KappaError) -> T {
            try lock.withLock { (_) throws(KappaError) -> T in try body(writer) }
        }
    }

    let topic: String
    let config: TopicConfig
    private let slots: [Slot]

    init(directory: DataDirectory, topic: String) throws(KappaError) {
        self.topic = topic
        config = try directory.topicConfig(topic)
        var slots: [Slot] = []
        for p in 0..<config.partitions {
            // fsync never here: `sync(partitions:)` makes what a checkpoint depends on durable.
            slots.append(Slot(try PartitionWriter(directory: directory, topicPartition: TopicPartition(topic, p), config: config, fsync: .never)))
        }
        self.slots = slots
    }

    var partitions: Int32 { config.partitions }

    /// Stamps and writes `sealed` (emptying it) at the end of `partition`.
    func append(partition: Int32, _ sealed: SealedBatches) throws(KappaError) {
        guard !sealed.isEmpty else { return }
        try slots[Int(partition)].withWriter { (w) throws(KappaError) in _ = try w.append(sealed) }
    }

    /// Forces what was written to `partitions` to stable storage.
    func sync(partitions: some Sequence<Int32>) throws(KappaError) {
        for p in partitions { try slots[Int(p)].withWriter { (w) throws(KappaError) in try w.syncNow() } }
    }
}

/// One task's side of the repartition topic: a batch builder per destination partition,
/// filled by `send` without locks or I/O, sealed (checksummed, compressed if the topic
/// is) by the task itself and appended through the process's `SharedTopicWriter`.
/// `flush()`, which the task calls after each step and before each checkpoint, appends
/// what a step sent: one lock and one write per destination. (Holding records back while
/// busy, to write larger batches, measured no faster — and it delays the watermarks that
/// let owners close results and drop state.) Not thread-safe: one task, one thread.
final class RepartitionSender {
    let shared: SharedTopicWriter
    private var builders: [RecordBatchBuilder?]
    /// Per destination, the events record being filled (`forward`).
    private var bundles: [EventBundle?]
    private let sealed: [SealedBatches]
    private let codec = LZ4Codec()
    /// Destinations written since the last `takeWritten()` (to sync before a checkpoint).
    private var written: Set<Int32> = []
    private let targetBytes: Int

    init(shared: SharedTopicWriter) {
        self.shared = shared
        let n = Int(shared.partitions)
        builders = Array(repeating: nil, count: n)
        bundles = Array(repeating: nil, count: n)
        sealed = (0..<n).map { _ in SealedBatches() }
        // Every task keeps a builder per destination, so batches shrink as the job grows:
        // about 16 MiB of builders per task at most, batches of 16–256 KiB.
        targetBytes = max(16 << 10, min(256 << 10, (16 << 20) / n))
    }

    /// Buffers one record for `partition`; written by the next `flush()`.
    @inline(__always)
    func send(to partition: Int32, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos) {
        let p = Int(partition)
        let builder: RecordBatchBuilder
        if let b = builders[p] { builder = b } else {
            builder = RecordBatchBuilder(compression: shared.config.codec, targetBytes: targetBytes)
            builders[p] = builder
        }
        builder.append(key: key, value: value, timestamp: timestamp)
        if builder.isFull { sealed[p].seal(builder, codec: codec) }
    }

    /// Adds one on-time event of `source` for `partition`'s owner to the events record
    /// being filled for it (a new one when the source or kind changes or it is full).
    @inline(__always)
    func forward(_ event: RepartitionRecord.Event, source: Int32, to partition: Int32, key: UnsafeRawBufferPointer, offset: Int64,
                 time: TimestampNanos, text: UnsafeRawBufferPointer?) {
        let p = Int(partition)
        let bundle: EventBundle
        if let b = bundles[p] { bundle = b } else {
            bundle = EventBundle()
            bundles[p] = bundle
        }
        if !bundle.isEmpty && (bundle.source != source || bundle.event != event || bundle.bytes.count >= EventBundle.bytesMax) {
            closeBundle(p)
        }
        if bundle.isEmpty { bundle.begin(source: source, event: event, offset: offset, time: time) }
        bundle.add(key: key, offset: offset, time: time, text: text)
    }

    private func closeBundle(_ p: Int) {
        guard let b = bundles[p], !b.isEmpty else { return }
        send(to: Int32(p), key: nil, value: b.finish(), timestamp: TimestampNanos(millis: b.firstTime.millis))
        b.reset()
    }

    /// Turns the events records being filled into records, before what must follow
    /// them (a watermark of their source) is sent.
    func closeBundles() {
        for p in bundles.indices { closeBundle(p) }
    }

    /// Seals what is buffered and appends it. After it returns, every record sent is in
    /// the topic and visible to the receiving tasks.
    func flush() throws(KappaError) {
        closeBundles()
        for p in builders.indices {
            if let b = builders[p], !b.isEmpty { sealed[p].seal(b, codec: codec) }
            try write(p)
        }
    }

    private func write(_ p: Int) throws(KappaError) {
        guard !sealed[p].isEmpty else { return }
        try shared.append(partition: Int32(p), sealed[p])
        written.insert(Int32(p))
    }

    /// Makes everything flushed so far durable (before a durable checkpoint).
    func sync() throws(KappaError) {
        try shared.sync(partitions: written.sorted())
        written.removeAll()
    }

    var isEmpty: Bool { bundles.allSatisfy { $0?.isEmpty ?? true } && builders.allSatisfy { $0?.isEmpty ?? true } && sealed.allSatisfy(\.isEmpty) }
}
