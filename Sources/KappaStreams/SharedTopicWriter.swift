import KappaCore
import KappaLog
import Synchronization

/// One `TopicWriter` shared by the tasks of a process that write the same topic — a
/// windowed job's repartition topic, which every task writes to every partition. Appends
/// and flushes from several threads take one lock. With a writer per task, each flush
/// found the tails moved by the other tasks' writers and re-validated them (a directory
/// listing, a rescan of the new batches, rewritten index files): a tenth of a
/// repartitioned replay's CPU. Writers in other processes still coordinate through the
/// partition lock as any two producers do.
final class SharedTopicWriter: @unchecked Sendable {
    private let writer: Mutex<TopicWriter>

    init(directory: DataDirectory, topic: String) throws(KappaError) {
        writer = Mutex(try TopicWriter(directory: directory, topic: topic, fsync: .never))
    }

    /// Buffers one record (written by the next `flush()`, whoever calls it).
    func append(partition: Int32, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos) throws(KappaError) {
        try writer.withLock { (w) throws(KappaError) in try w.append(partition: partition, key: key, value: value, timestamp: timestamp) }
    }

    func flush() throws(KappaError) {
        try writer.withLock { (w) throws(KappaError) in try w.flush() }
    }
}
