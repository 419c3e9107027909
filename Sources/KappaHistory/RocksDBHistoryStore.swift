import CRocksDB
import Foundation
import KappaCore

/// `HistoryStore` on RocksDB (Debian's librocksdb-dev, C API): an LSM tree whose keys
/// are compared bytewise. A commit is one `WriteBatch` written to RocksDB's WAL without
/// fsync (atomic across kill -9; a power loss keeps a prefix of the commits). Reads use
/// a snapshot, so a `read` sees one committed state; block checksums are verified on
/// every read. Memory: one memtable (`writeBufferBytes`) and a bounded block cache.
/// The handle is thread-safe; the caller serialises commits.
final class RocksDBHistoryStore: HistoryStore, @unchecked Sendable {
    let path: String
    private let db: OpaquePointer
    private let options: OpaquePointer
    private let tableOptions: OpaquePointer
    private let cache: OpaquePointer
    private let writeOptions: OpaquePointer
    static let writeBufferBytes = 64 << 20
    static let blockCacheBytes = 32 << 20

    init(path: String) throws(KappaError) {
        self.path = path
        options = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(options, 1)
        rocksdb_options_set_paranoid_checks(options, 1)
        rocksdb_options_set_compression(options, Int32(rocksdb_lz4_compression))
        rocksdb_options_set_write_buffer_size(options, Self.writeBufferBytes)
        rocksdb_options_set_max_open_files(options, 256)
        rocksdb_options_increase_parallelism(options, 2)
        tableOptions = rocksdb_block_based_options_create()
        cache = rocksdb_cache_create_lru(Self.blockCacheBytes)
        rocksdb_block_based_options_set_block_cache(tableOptions, cache)
        rocksdb_options_set_block_based_table_factory(options, tableOptions)
        writeOptions = rocksdb_writeoptions_create()
        var err: UnsafeMutablePointer<CChar>?
        let handle = rocksdb_open(options, path, &err)
        if let message = Self.take(err) {
            throw KappaError(message.contains("Corruption") ? .corruptData : .io, "history index (RocksDB): open: \(message)", path: path)
        }
        db = handle!
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
        if let message = Self.take(err) { throw failure("write", message) }
    }

    func read<T>(_ body: (any HistorySnapshot) throws(KappaError) -> T) throws(KappaError) -> T {
        let snapshot = rocksdb_create_snapshot(db)
        let readOptions = rocksdb_readoptions_create()
        rocksdb_readoptions_set_snapshot(readOptions, snapshot)
        rocksdb_readoptions_set_verify_checksums(readOptions, 1)
        defer {
            rocksdb_readoptions_destroy(readOptions)
            rocksdb_release_snapshot(db, snapshot)
        }
        return try body(RocksDBSnapshot(store: self, readOptions: readOptions!))
    }

    fileprivate func failure(_ what: String, _ message: String) -> KappaError {
        KappaError(message.contains("Corruption") ? .corruptData : .io, "history index (RocksDB): \(what): \(message)", path: path)
    }

    fileprivate var handle: OpaquePointer { db }

    static func take(_ err: UnsafeMutablePointer<CChar>?) -> String? {
        guard let err else { return nil }
        defer { rocksdb_free(err) }
        return String(cString: err)
    }

    func diskBytes() -> Int64 {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return 0 }
        return names.reduce(0) { total, name in
            let size = (try? FileManager.default.attributesOfItem(atPath: path + "/" + name)[.size] as? NSNumber)?.int64Value ?? 0
            return total + size
        }
    }

    func close() {
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
        if let message = RocksDBHistoryStore.take(err) { throw store.failure("get", message) }
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
            let below = upper.withUnsafeBytes { u in
                let c = memcmp(k.baseAddress!, u.baseAddress!, min(k.count, u.count))
                return c < 0 || (c == 0 && k.count < u.count)
            }
            guard below else { break }
            body(k, UnsafeRawBufferPointer(start: rocksdb_iter_value(it, &vl), count: vl))
            n += 1
            rocksdb_iter_next(it)
        }
        var err: UnsafeMutablePointer<CChar>?
        rocksdb_iter_get_error(it, &err)
        if let message = RocksDBHistoryStore.take(err) { throw store.failure("scan", message) }
    }
}
