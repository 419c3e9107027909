import CSQLite
import KappaCore
import Synchronization

/// `HistoryStore` on SQLite (the system's libsqlite3): one table
/// `rows(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID` — a B-tree ordered by `k` with
/// `memcmp`, so a user's entries are one range and a page is one index seek plus a
/// short walk: O(log n) in the number of rows.
///
/// **Durability.** Write-ahead log (`journal_mode=WAL`) with `synchronous=NORMAL`: a
/// commit is appended to `index.sqlite-wal` without an fsync, so it survives kill -9 of
/// the process (the bytes are in the page cache) and, after a power loss, the database
/// is consistent and may lack the last commits — which the index re-derives from the log
/// (its offsets are rows of the same transactions). Checkpoints into the main file fsync.
///
/// **Concurrency.** One writer connection (the caller serialises commits) and a pool of
/// read-only connections; each `read` is one read transaction on one of them (WAL
/// readers see the last commit before they began, and never block the writer).
///
/// **Memory.** Each connection's page cache is bounded (`cache_size`), so memory does not
/// grow with the index; the pool keeps at most `idleReadersMax` readers.
final class SQLiteHistoryStore: HistoryStore, @unchecked Sendable {
    let path: String
    private let writer: SQLiteConnection
    private let idle = Mutex<[SQLiteConnection]>([])
    /// Concurrent pages beyond this open a connection for the call (~100 µs) and close it.
    static let idleReadersMax = 8
    /// The writer's page cache: holds the B-tree's inner pages and the leaves a commit
    /// touches, so an insert rarely reads from the file.
    static let writerCacheKiB = 64 << 10
    static let readerCacheKiB = 4 << 10

    init(path: String) throws(KappaError) {
        self.path = path
        writer = try SQLiteConnection(path: path, readOnly: false)
        try writer.execute("PRAGMA journal_mode=WAL")
        try writer.execute("PRAGMA synchronous=NORMAL")
        try writer.execute("PRAGMA cache_size=-\(Self.writerCacheKiB)")
        try writer.execute("CREATE TABLE IF NOT EXISTS rows(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
    }

    func commit(_ rows: RowBatch) throws(KappaError) {
        guard rows.count > 0 else { return }
        try writer.execute("BEGIN IMMEDIATE")
        do {
            let insert = try writer.statement("INSERT OR REPLACE INTO rows(k, v) VALUES(?1, ?2)")
            for i in rows.sortedIndices() {
                try insert.bind(1, rows.key(i))
                try insert.bind(2, rows.value(i))
                try insert.stepDone()
            }
            try writer.execute("COMMIT")
        } catch {
            writer.rollback()
            throw error
        }
    }

    func read<T>(_ body: (any HistorySnapshot) throws(KappaError) -> T) throws(KappaError) -> T {
        let connection = try takeReader()
        try connection.execute("BEGIN")
        let result: T
        do {
            result = try body(SQLiteSnapshot(connection: connection))
        } catch {
            connection.rollback()
            giveBack(connection)
            throw error
        }
        try connection.execute("COMMIT")
        giveBack(connection)
        return result
    }

    private func takeReader() throws(KappaError) -> SQLiteConnection {
        if let c = idle.withLock({ $0.popLast() }) { return c }
        let c = try SQLiteConnection(path: path, readOnly: true)
        try c.execute("PRAGMA cache_size=-\(Self.readerCacheKiB)")
        return c
    }

    private func giveBack(_ c: SQLiteConnection) {
        idle.withLock { pool in
            if pool.count < Self.idleReadersMax { pool.append(c) }
        }
    }

    func diskBytes() -> Int64 {
        [path, path + "-wal", path + "-shm"].reduce(0) { total, p in
            var st = stat()
            return total + (stat(p, &st) == 0 ? Int64(st.st_size) : 0)
        }
    }

    func close() {
        idle.withLock { $0.removeAll() }
        writer.close()
    }
}

private struct SQLiteSnapshot: HistorySnapshot {
    let connection: SQLiteConnection

    func get(_ key: [UInt8]) throws(KappaError) -> [UInt8]? {
        let s = try connection.statement("SELECT v FROM rows WHERE k = ?1")
        try s.bind(1, key)
        defer { s.reset() }
        guard try s.stepRow() else { return nil }
        return Array(s.blob(0))
    }

    func scan(from lower: [UInt8], inclusive: Bool, below upper: [UInt8], limit: Int,
              _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws(KappaError) {
        let sql = inclusive ? "SELECT k, v FROM rows WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3"
                            : "SELECT k, v FROM rows WHERE k > ?1 AND k < ?2 ORDER BY k LIMIT ?3"
        let s = try connection.statement(sql)
        try s.bind(1, lower)
        try s.bind(2, upper)
        try s.bind(3, Int64(limit))
        defer { s.reset() }
        while try s.stepRow() { body(s.blob(0), s.blob(1)) }
    }
}

/// One SQLite connection and its prepared statements (kept, keyed by SQL text).
/// Not thread-safe: used by one thread at a time (the store hands it out).
final class SQLiteConnection: @unchecked Sendable {
    let path: String
    private var db: OpaquePointer?
    private var statements: [String: SQLiteStatement] = [:]

    init(path: String, readOnly: Bool) throws(KappaError) {
        self.path = path
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK else {
            let error = failure(rc, "open")
            sqlite3_close_v2(db)
            db = nil
            throw error
        }
        // Another process (a second `kappa history` while a server indexes) may hold the
        // write lock for one commit; wait rather than fail.
        sqlite3_busy_timeout(db, 10_000)
    }

    deinit { close() }

    func close() {
        statements.values.forEach { $0.finalize() }
        statements.removeAll()
        if db != nil { sqlite3_close_v2(db) }
        db = nil
    }

    func execute(_ sql: String) throws(KappaError) {
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw failure(rc, sql) }
    }

    func rollback() {
        // Best effort: the failure that led here is what the caller reports, and SQLite
        // rolls an unfinished transaction back on the next open.
        _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
    }

    func statement(_ sql: String) throws(KappaError) -> SQLiteStatement {
        if let s = statements[sql] { return s }
        var raw: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil)
        guard rc == SQLITE_OK, let raw else { throw failure(rc, sql) }
        let s = SQLiteStatement(raw, connection: self)
        statements[sql] = s
        return s
    }

    /// A failed call as a `KappaError`: damage (SQLITE_CORRUPT, SQLITE_NOTADB) is
    /// `corruptData`, a full disk keeps its errno, the rest is `io`.
    func failure(_ rc: Int32, _ what: String) -> KappaError {
        let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        let text = "history index (SQLite): \(what): \(message) (code \(rc))"
        switch rc & 0xFF {
        case SQLITE_CORRUPT, SQLITE_NOTADB: return KappaError(.corruptData, text, path: path)
        case SQLITE_FULL: return KappaError(.io, text, path: path, systemError: ENOSPC)
        default: return KappaError(.io, text, path: path)
        }
    }
}

/// A prepared statement. Blobs bound with `bind` must stay valid until the next `step`.
final class SQLiteStatement {
    private let raw: OpaquePointer
    private unowned let connection: SQLiteConnection

    init(_ raw: OpaquePointer, connection: SQLiteConnection) {
        self.raw = raw
        self.connection = connection
    }

    func finalize() { sqlite3_finalize(raw) }

    func bind(_ i: Int32, _ bytes: UnsafeRawBufferPointer) throws(KappaError) {
        // SQLITE_STATIC (nil): the bytes outlive the step that reads them.
        let rc = sqlite3_bind_blob(raw, i, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count), nil)
        guard rc == SQLITE_OK else { throw connection.failure(rc, "bind") }
    }

    /// Binds a copy of `bytes` (SQLITE_TRANSIENT).
    func bind(_ i: Int32, _ bytes: [UInt8]) throws(KappaError) {
        let rc = bytes.withUnsafeBytes { b in
            sqlite3_bind_blob(raw, i, b.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(b.count), SQLiteStatement.transient)
        }
        guard rc == SQLITE_OK else { throw connection.failure(rc, "bind") }
    }

    /// SQLITE_TRANSIENT: SQLite copies the bytes before the call returns.
    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    func bind(_ i: Int32, _ value: Int64) throws(KappaError) {
        let rc = sqlite3_bind_int64(raw, i, value)
        guard rc == SQLITE_OK else { throw connection.failure(rc, "bind") }
    }

    /// Runs a statement that returns no rows, and resets it.
    func stepDone() throws(KappaError) {
        let rc = sqlite3_step(raw)
        sqlite3_reset(raw)
        guard rc == SQLITE_DONE else { throw connection.failure(rc, "step") }
    }

    /// True when a row is ready, false when done.
    func stepRow() throws(KappaError) -> Bool {
        let rc = sqlite3_step(raw)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let error = connection.failure(rc, "step")
        sqlite3_reset(raw)
        throw error
    }

    func reset() {
        sqlite3_reset(raw)
        sqlite3_clear_bindings(raw)
    }

    func blob(_ column: Int32) -> UnsafeRawBufferPointer {
        let n = Int(sqlite3_column_bytes(raw, column))
        return UnsafeRawBufferPointer(start: sqlite3_column_blob(raw, column), count: n)
    }
}

#if canImport(Glibc)
import Glibc
#endif
