import KappaCore
import KappaLog
import Synchronization

/// One page of a user's history.
public struct HistoryPage: Sendable {
    public struct Entry: Equatable, Sendable {
        public var topic: String
        public var partition: Int32
        public var offset: Offset
        /// The event time the entry is ordered by (the time field, else the record
        /// timestamp).
        public var time: TimestampNanos
        /// The record's value as stored in the log (JSON; from a Kafka client, as sent).
        public var value: [UInt8]

        public var position: EntryPosition { EntryPosition(time: time, topic: topic, partition: partition, offset: offset) }
    }

    /// In (time, topic, partition, offset) order, all strictly after the request's cursor.
    public var entries: [Entry]
    /// Where this page ended: pass it to get the next page. Nil when the page read no
    /// entry (then the request's cursor still stands).
    public var cursor: String?
    /// True when the page is full: more entries may follow right now. False: the index
    /// held nothing more in the range when the page was read (later records may add some).
    public var hasMore: Bool
    /// The indexed offsets of the state the page was read from (`UserHistory.asOf`).
    public var asOf: [TopicPartition: Offset]
    /// Entries of the range whose records the log no longer holds (retention): left out.
    public var skippedGone: Int
}

/// A fetcher and a JSON reader for one page at a time, pooled across pages.
/// Handed to one page at a time (the pool gives it out exclusively).
final class QueryContext: @unchecked Sendable {
    let fetcher: RecordFetcher
    let fields: HistoryFields

    init(directory: DataDirectory, options: UserHistory.Options) throws(KappaError) {
        fetcher = RecordFetcher(directory: directory)
        fields = try HistoryFields(userField: options.userField, timeField: options.timeField)
    }
}

extension UserHistory {
    /// Entries per page at most: a page reads one batch from the log per entry.
    public static let pageEntriesMax = 1000
    /// Contexts kept for reuse (each holds open segment files and buffers).
    static let idleContextsMax = 8

    /// The user's entries with event time in `[from, to)` (either bound optional), in
    /// (time, topic, partition, offset) order, strictly after `cursor` if given, at most
    /// `limit` (1...`pageEntriesMax`), each with its record's value read from the log.
    ///
    /// **What a cursor walk guarantees.** Each page is read from one committed state of
    /// the index (its `asOf`): it holds exactly the first `limit` entries after the
    /// cursor among the records below those offsets. Positions only grow along a walk, so
    /// no entry is returned twice; an entry is missed by a walk only when it was indexed
    /// after the walk had passed its position — a record whose event time is earlier than
    /// the last one returned (a late event, or one in a partition the indexer reached
    /// later); a new walk from the start returns it. So a walk over times that only grow
    /// while records arrive in time order misses nothing. A cursor is a position, not a
    /// snapshot: it stays valid across restarts and rebuilds.
    ///
    /// Every record returned is checked against its entry (same user, same time); one
    /// that disagrees is index damage: a `.corruptData` error, and the next `catchUp`
    /// rebuilds the index. Entries whose records retention deleted are left out
    /// (`skippedGone`). Bad arguments are `.invalidArgument`.
    public func page(user: String, from: TimestampNanos? = nil, to: TimestampNanos? = nil, limit: Int,
                     cursor: String? = nil) throws(KappaError) -> HistoryPage {
        let userBytes = Array(user.utf8)
        guard !userBytes.isEmpty, userBytes.count <= HistoryKeys.userBytesMax else {
            throw KappaError(.invalidArgument, "user id must be 1...\(HistoryKeys.userBytesMax) bytes, got \(userBytes.count)")
        }
        guard limit >= 1, limit <= Self.pageEntriesMax else {
            throw KappaError(.invalidArgument, "limit must be 1...\(Self.pageEntriesMax), got \(limit)")
        }
        if let from, let to, to <= from {
            throw KappaError(.invalidArgument, "'to' (\(to.decimalSeconds)) must be after 'from' (\(from.decimalSeconds))")
        }
        let after = try cursor.map { (c) throws(KappaError) in try HistoryCursor.decode(c) }
        let range = KeyRange(user: userBytes, from: from, to: to, after: after)
        let context = try takeContext()
        defer { giveBack(context) }
        do {
            return try storeLock.withRead { () throws(KappaError) in
                try store.read { (snapshot) throws(KappaError) in
                    try readPage(snapshot, range: range, user: userBytes, limit: limit, context: context)
                }
            }
        } catch {
            noteIndexDamage(error)
            throw error
        }
    }

    /// An error from the index's own files (not the log's) that says they are damaged
    /// makes the next catch-up rebuild the index.
    func noteIndexDamage(_ error: KappaError) {
        guard error.code == .corruptData, error.topicPartition == nil, error.path?.hasPrefix(path) == true else { return }
        rebuildRequest.withLock { request in
            if request == nil { request = "history index is damaged: \(error)" }
        }
    }

    private func readPage(_ snapshot: any HistorySnapshot, range: KeyRange, user: [UInt8], limit: Int,
                          context: QueryContext) throws(KappaError) -> HistoryPage {
        let asOf = try Self.readProgress(snapshot, path: path).mapValues(\.nextOffset)
        var page = HistoryPage(entries: [], cursor: nil, hasMore: false, asOf: asOf, skippedGone: 0)
        var lower = range.lower
        var inclusive = range.inclusive
        // Rows whose records are gone are skipped; scan on, but not without end.
        var rowsLeft = limit * 100
        while page.entries.count < limit, rowsLeft > 0 {
            let want = min(limit - page.entries.count, rowsLeft)
            var rows: [EntryRow] = []
            var damaged: [UInt8]?
            try snapshot.scan(from: lower, inclusive: inclusive, below: range.upper, limit: want) { k, v in
                if let row = HistoryKeys.decodeEntry(key: k, value: v) { rows.append(row) } else if damaged == nil { damaged = Array(k) }
            }
            if let damaged { throw damage("entry row \(damaged.prefix(64)) does not check out (CRC or layout)") }
            for row in rows {
                if let entry = try fetch(row, user: user, context: context) {
                    page.entries.append(entry)
                } else {
                    page.skippedGone += 1
                }
                page.cursor = HistoryCursor.encode(row.position)
            }
            rowsLeft -= rows.count
            guard rows.count == want, let last = rows.last else { return page }
            lower = range.prefix + HistoryKeys.positionBytes(last.position)
            inclusive = false
        }
        page.hasMore = true
        return page
    }

    /// The entry's record, checked against the entry; nil when the log no longer holds it.
    private func fetch(_ row: EntryRow, user: [UInt8], context: QueryContext) throws(KappaError) -> HistoryPage.Entry? {
        let position = row.position
        let tp = TopicPartition(position.topic, position.partition)
        let record: FetchedRecord?
        do {
            record = try context.fetcher.record(tp, at: position.offset, hint: row.location, locator: row.locator)
        } catch where error.code == .notFound || error.code == .offsetOutOfRange {
            return nil  // the topic was deleted (the next catch-up rebuilds) or retention ran
        }
        guard let record else { return nil }
        let agrees = record.value.withUnsafeBytes { value -> Bool in
            switch context.fields.read(value: value, timestamp: record.timestamp, validate: record.fromKafkaClient, isPadded: false) {
            case .event(let u, let t, _): return t == position.time && u.elementsEqual(user)
            case .notJSON, .withoutUser: return false
            }
        }
        guard agrees else {
            throw damage("the entry at \(position) does not match the record in the log (another user or time)")
        }
        return HistoryPage.Entry(topic: position.topic, partition: position.partition, offset: position.offset, time: position.time, value: record.value)
    }

    /// Reports index damage and asks the next catch-up to rebuild.
    private func damage(_ what: String) -> KappaError {
        let message = "history index is damaged: \(what); it is rebuilt from the log on the next catch-up"
        rebuildRequest.withLock { $0 = message }
        return KappaError(.corruptData, message, path: path)
    }

    private func takeContext() throws(KappaError) -> QueryContext {
        if let c = queryContexts.withLock({ $0.popLast() }) { return c }
        return try QueryContext(directory: directory, options: options)
    }

    private func giveBack(_ c: QueryContext) {
        queryContexts.withLock { pool in
            if pool.count < Self.idleContextsMax { pool.append(c) }
        }
    }
}

/// The keys of one query: a user's entries from `from` (or after a cursor) to below `to`.
struct KeyRange {
    let prefix: [UInt8]
    let lower: [UInt8]
    let inclusive: Bool
    let upper: [UInt8]

    init(user: [UInt8], from: TimestampNanos?, to: TimestampNanos?, after: EntryPosition?) {
        prefix = HistoryKeys.userPrefix(user)
        let start = prefix + HistoryKeys.timeBytes(from ?? TimestampNanos(.min))
        if let after, from.map({ after.time >= $0 }) ?? true {
            lower = prefix + HistoryKeys.positionBytes(after)
            inclusive = false
        } else {
            lower = start
            inclusive = true
        }
        // Every key of this user at a time below `to`; without `to`, 0xFF after the time
        // bytes of the largest time is above every key of the user.
        upper = prefix + (to.map { HistoryKeys.timeBytes($0) } ?? (HistoryKeys.timeBytes(TimestampNanos(.max)) + [0xFF]))
    }
}

extension HistoryKeys {
    static func timeBytes(_ t: TimestampNanos) -> [UInt8] {
        let out = ByteWriter(capacity: 8)
        encodeTime(t, into: out)
        return Array(out.bytes)
    }

    static func positionBytes(_ p: EntryPosition) -> [UInt8] {
        let out = ByteWriter(capacity: 32 + p.topic.utf8.count)
        appendPosition(p, into: out)
        return Array(out.bytes)
    }
}
