import KappaCore
import KappaFormat
import KappaLog
import NIOCore

/// Partition readers kept open between fetches, so a consumer reading a partition from
/// front to back costs one seek, not one per fetch. A reader is filed under the offset
/// the consumer will fetch next: where it stopped. When a fetch stopped because the next
/// batch did not fit, that batch (already read and checked) is kept with its reader and
/// served first next time.
///
/// At most `ServerLimits.cachedReadersMax` readers, least recently used dropped first
/// (each holds a 1 MiB buffer and two file descriptors). Owned by the broker's loop.
struct ReaderCache {
    struct Entry {
        var topicPartition: TopicPartition
        var reader: PartitionReader
        /// A whole, checked batch read but not yet served.
        var pending: ByteBuffer?
        var pendingHeader: RecordBatchHeader?

        /// The offset a fetch must ask for to continue with this reader.
        var nextOffset: Offset { pendingHeader?.baseOffset ?? reader.expectedOffset }
    }

    private var entries: [Entry] = []

    /// Removes and returns the reader that continues `tp` at `offset`, if one is cached.
    mutating func take(_ tp: TopicPartition, at offset: Offset) -> Entry? {
        guard let i = entries.lastIndex(where: { $0.topicPartition == tp && $0.nextOffset == offset }) else { return nil }
        return entries.remove(at: i)
    }

    mutating func put(_ entry: Entry) {
        entries.append(entry)
        if entries.count > ServerLimits.cachedReadersMax { entries.removeFirst() }
    }

    mutating func forget(topic: String) {
        entries.removeAll { $0.topicPartition.topic == topic }
    }
}
