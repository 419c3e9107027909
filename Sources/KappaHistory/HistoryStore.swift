import KappaCore

/// The storage under the history index: an ordered map of byte-string keys to values
/// (compared as unsigned bytes), with atomic multi-row commits and consistent reads.
/// `HistoryKeys` defines what the rows are; the store knows nothing about them.
///
/// Contract:
/// - `commit` applies every row of the batch or none, also across kill -9 of the
///   process (a power loss may lose the last commits, never part of one).
/// - `read` runs its body against one committed state: rows committed while it runs
///   are not seen, whatever the body reads.
/// - One writer at a time (the caller serialises commits); any number of threads may
///   `read` concurrently with it and with each other.
/// - Bytes that do not check out (the store's own checksums or structure) are a
///   `KappaError(.corruptData)` naming the file, never rows.
protocol HistoryStore: AnyObject, Sendable {
    func commit(_ rows: RowBatch) throws(KappaError)
    func read<T>(_ body: (any HistorySnapshot) throws(KappaError) -> T) throws(KappaError) -> T
    /// Bytes on disk (all the store's files).
    func diskBytes() -> Int64
    /// Releases files and memory; nothing may be called after.
    func close()
}

/// One committed state of a `HistoryStore`, valid inside `read`.
protocol HistorySnapshot {
    func get(_ key: [UInt8]) throws(KappaError) -> [UInt8]?
    /// Calls `body` with each row whose key is at or after `lower` (after it, when not
    /// `inclusive`) and below `upper`, in key order, at most `limit` rows. The views are
    /// valid only during the call.
    func scan(from lower: [UInt8], inclusive: Bool, below upper: [UInt8], limit: Int,
              _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Void) throws(KappaError)
}

/// Rows to commit, packed in one buffer: a commit of tens of thousands of entries makes
/// no per-row allocation. Keys may repeat; the last put of a key wins (rows are applied
/// in put order).
final class RowBatch {
    let bytes = ByteWriter(capacity: 1 << 20)
    /// (start, key length, value length) per row, in put order.
    private(set) var rows: [(start: Int, keyCount: Int, valueCount: Int)] = []

    var count: Int { rows.count }

    func removeAll() {
        bytes.removeAll()
        rows.removeAll(keepingCapacity: true)
    }

    /// Records a row whose key and value were just appended to `bytes` from `start`.
    func appended(from start: Int, keyCount: Int) {
        precondition(keyCount > 0 && start + keyCount <= bytes.count)
        rows.append((start, keyCount, bytes.count - start - keyCount))
    }

    func put(_ key: [UInt8], _ value: [UInt8]) {
        let start = bytes.count
        bytes.append(key)
        bytes.append(value)
        appended(from: start, keyCount: key.count)
    }

    func key(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes.base + rows[i].start, count: rows[i].keyCount)
    }

    func value(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes.base + rows[i].start + rows[i].keyCount, count: rows[i].valueCount)
    }
}
