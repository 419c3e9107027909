import CRocksDB
import KappaCore

/// `HistoryStore` on RocksDB (Debian's librocksdb-dev, through its C API): an LSM tree
/// whose keys are compared bytewise, in the directory `path` (RocksDB's own files:
/// `CURRENT`, `MANIFEST-*`, `*.sst` tables, `*.log` write-ahead log, `LOG` info log).
///
/// **Durability.** A commit is one `WriteBatch` appended to RocksDB's write-ahead log
/// without fsync: atomic, and kept across kill -9 (the bytes are in the page cache);
/// after a power loss RocksDB recovers a prefix of the commits (point-in-time recovery),
/// never part of one. `close` flushes the memtable into a table, so the next open need
/// not replay the log.
///
/// **Damage.** Every block read is checked against its checksum (`verify_checksums`),
/// and opening checks the manifest and table footers (`paranoid_checks`): damage is an
/// error naming the file ("Corruption: …" → `.corruptData`), never rows — unlike a
/// B-tree without page checksums, which can lose a subtree without noticing.
///
/// **Memory** is bounded whatever the index's size: two memtables of `writeBufferBytes`
/// at most, and one LRU block cache of `blockCacheBytes` that also holds the tables'
/// index partitions (their small top levels pinned: ~8 KiB per 64 MiB table); at most
/// `openFilesMax` tables open.
///
/// **Concurrency.** The handle is thread-safe; each `read` uses a snapshot, so it sees
/// one committed state. The caller serialises commits. RocksDB runs its own background
/// threads (flushes, compactions): the only threads of the index.
final class RocksDBHistoryStore: HistoryStore, @unchecked Sendable {
    let path: String
    private let db: OpaquePointer
    private let options: OpaquePointer
    private let tableOptions: OpaquePointer
    private let cache: OpaquePointer
    private let writeOptions: OpaquePointer
    /// A memtable this size is ~700k entries: flushes (and so compactions) stay rare
    /// while catching up, and the log replayed after kill -9 stays short.
    static let writeBufferBytes = 32 << 20
    /// Holds the tables' index partitions and the data blocks of recently read users.
    static let blockCacheBytes = 32 << 20
    /// Index partitions of this size: a page reads one per table it seeks in.
    static let indexPartitionBytes: UInt64 = 4 << 10
    static let openFilesMax: Int32 = 256
    /// Enough for a few days of warnings, never more.
    static let infoLogBytesMax = 1 << 20

    init(path: String) throws(KappaError) {
        self.path = path
        options = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(options, 1)
        rocksdb_options_set_paranoid_checks(options, 1)
        rocksdb_options_set_compression(options, Int32(rocksdb_lz4_compression))
        rocksdb_options_set_write_buffer_size(options, Self.writeBufferBytes)
        rocksdb_options_set_max_write_buffer_number(options, 2)
        rocksdb_options_set_max_open_files(options, Self.openFilesMax)
        rocksdb_options_increase_parallelism(options, 2)
        rocksdb_options_set_info_log_level(options, 2)  // warnings and errors
        rocksdb_options_set_max_log_file_size(options, Self.infoLogBytesMax)
        rocksdb_options_set_keep_log_file_num(options, 2)
        tableOptions = rocksdb_block_based_options_create()
        cache = rocksdb_cache_create_lru(Self.blockCacheBytes)
        rocksdb_block_based_options_set_block_cache(tableOptions, cache)
        // A partitioned index: a table's index is a small top level (pinned in the cache)
        // over 4 KiB partitions, cached like data blocks. With one index block per table
        // (the default), a 64 MiB table's index block is ~1 MiB — more than one shard of
        // the LRU cache holds — so every seek read and inflated it again: a page cost
        // grew with the index (measured: RocksDB took 35 % of a page's CPU at 10M events).
        rocksdb_block_based_options_set_index_type(tableOptions, Int32(rocksdb_block_based_table_index_type_two_level_index_search))
        rocksdb_block_based_options_set_metadata_block_size(tableOptions, Self.indexPartitionBytes)
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(tableOptions, 1)
        rocksdb_block_based_options_set_pin_top_level_index_and_filter(tableOptions, 1)
        rocksdb_options_set_block_based_table_factory(options, tableOptions)
        writeOptions = rocksdb_writeoptions_create()
        var err: UnsafeMutablePointer<CChar>?
        let handle = rocksdb_open(options, path, &err)
        guard let handle, err == nil else {
            let message = Self.take(err) ?? "no handle"
            rocksdb_writeoptions_destroy(writeOptions)
            rocksdb_options_destroy(options)
            rocksdb_block_based_options_destroy(tableOptions)
            rocksdb_cache_destroy(cache)
            throw Self.failure(path, "open", message)
        }
        db = handle
    }

    func commit(_ rows: RowBatch) throws(KappaError) {
        guard rows.count > 0 else { return }
        let batch = rocksdb_writebatch_create()
        defer { rocksdb_writebatch_destroy(batch) }
        for i in 0..<rows.count {
            let k = rows.key(i), v = rows.value(i)
            rocksdb_writebatch_put(batch, k.baseAddress!.assumingMemoryBound(to: CChar.self), k.count,
                                   v.baseAddress!.assumingMemoryBound(to: CChar.self), v.count)
        }
        var err: UnsafeMutablePointer<CChar>?
        rocksdb_write(db, writeOptions, batch, &err)
        if let message = Self.take(err) { throw Self.failure(path, "write", message) }
    }

    func read<T>(_ body: (any HistorySnapshot) throws(KappaError) -> T) throws(KappaError) -> T {
        let snapshot = rocksdb_create_snapshot(db)
        let readOptions = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_snapshot(readOptions, snapshot)
        rocksdb_readoptions_set_verify_checksums(readOptions, 1)
        defer {
            rocksdb_readoptions_destroy(readOptions)
            rocksdb_release_snapshot(db, snapshot)
        }
        return try body(RocksDBSnapshot(store: self, readOptions: readOptions))
    }

    /// RocksDB's messages start with the kind of failure: "Corruption: …" is damage;
    /// "IO error: No space left on device" a full disk.
    static func failure(_ path: String, _ what: String, _ message: String) -> KappaError {
        let text = "history index (RocksDB): \(what): \(message)"
        if message.hasPrefix("Corruption") || message.hasPrefix("Invalid argument") { return KappaError(.corruptData, text, path: path) }
        if message.contains("No space left") { return KappaError(.io, text, path: path, systemError: ENOSPC) }
        return KappaError(.io, text, path: path)
    }

    fileprivate var handle: OpaquePointer { db }

    static func take(_ err: UnsafeMutablePointer<CChar>?) -> String? {
        guard let err else { return nil }
        defer { rocksdb_free(err) }
        return String(cString: err)
    }

    func diskBytes() -> Int64 {
        guard let dir = opendir(path) else { return 0 }
        defer { closedir(dir) }
        var total: Int64 = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            var st = stat()
            if name != ".", name != "..", stat(path + "/" + name, &st) == 0 { total += Int64(st.st_size) }
        }
        return total
    }

    func close() {
        // The memtable into a table: the next open starts without replaying the log.
        // Best effort — what is not flushed is in the write-ahead log all the same.
        let flush = rocksdb_flushoptions_create()
        rocksdb_flushoptions_set_wait(flush, 1)
        var err: UnsafeMutablePointer<CChar>?
        rocksdb_flush(db, flush, &err)
        _ = Self.take(err)
        rocksdb_flushoptions_destroy(flush)
        rocksdb_close(db)
        rocksdb_writeoptions_destroy(writeOptions)
        rocksdb_options_destroy(options)
        rocksdb_block_based_options_destroy(tableOptions)
        rocksdb_cache_destroy(cache)
    }
}

private struct RocksDBSnapshot: HistorySnapshot {
    let store: RocksDBHistoryStore
    let readOptions: OpaquePointer

    func get(_ key: [UInt8]) throws(KappaError) -> [UInt8]? {
        var err: UnsafeMutablePointer<CChar>?
        var length = 0
        let value = key.withUnsafeBytes { k in
            rocksdb_get(store.handle, readOptions, k.baseAddress!.assumingMemoryBound(to: CChar.self), k.count, &length, &err)
        }
        if let message = RocksDBHistoryStore.take(err) { throw RocksDBHistoryStore.failure(store.path, "get", message) }
        guard let value else { return nil }
        defer { rocksdb_free(value) }
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    func scan(from lower: [UInt8], inclusive: Bool, below upper: [UInt8], limit: Int,
              _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws(KappaError) {
        let it = rocksdb_create_iterator(store.handle, readOptions)
        defer { rocksdb_iter_destroy(it) }
        lower.withUnsafeBytes { rocksdb_iter_seek(it, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
        var n = 0
        while n < limit, rocksdb_iter_valid(it) != 0 {
            var kl = 0, vl = 0
            let k = UnsafeRawBufferPointer(start: rocksdb_iter_key(it, &kl), count: kl)
            if !inclusive && k.elementsEqual(lower) {
                rocksdb_iter_next(it)
                continue
            }
            guard Self.precedes(k, upper) else { break }
            body(k, UnsafeRawBufferPointer(start: rocksdb_iter_value(it, &vl), count: vl))
            n += 1
            rocksdb_iter_next(it)
        }
        var err: UnsafeMutablePointer<CChar>?
        rocksdb_iter_get_error(it, &err)
        if let message = RocksDBHistoryStore.take(err) { throw RocksDBHistoryStore.failure(store.path, "scan", message) }
    }

    /// `a < b` as unsigned bytes, a prefix first (RocksDB's bytewise comparator).
    static func precedes(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Bool {
        b.withUnsafeBytes { b in
            let c = a.count == 0 || b.count == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, min(a.count, b.count))
            return c < 0 || (c == 0 && a.count < b.count)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
