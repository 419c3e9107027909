import KappaCore
import KappaFormat
import KappaLog

extension UserHistory {
    /// Reads what the source topics gained since the last call and indexes it; returns
    /// how many records it read (indexed or skipped), 0 when nothing was new. Reads about
    /// `budget` records (whole batches: up to one batch more), taking turns between
    /// partitions so that one large partition does not hold the others back; call it
    /// again until it returns 0 to catch up fully.
    ///
    /// Rows are committed with the partitions' offsets and the counts every
    /// `commitEntries` rows and at the end, so a crash loses at most what the next call
    /// reads again. A rebuild a page asked for, a source topic that disappeared, or an
    /// offset the log no longer reaches rebuilds the index first (with a warning).
    /// When nothing is new it costs a listing of the topics directory and one read of
    /// each source partition's published end.
    @discardableResult
    public func catchUp(budget: Int = 1_000_000) throws(KappaError) -> Int {
        precondition(budget > 0, "budget must be positive")
        return try indexerLock.withLock { _ throws(KappaError) -> Int in
            do throws(KappaError) {
                if indexer.stale { try reloadIndexer() }
                return try catchUpLocked(budget: budget)
            } catch {
                // The indexer's memory may be ahead of what was committed: start again
                // from the store's offsets next time (or from nothing, if it is damaged).
                indexer.stale = true
                noteIndexDamage(error)
                throw error
            }
        }
    }

    private func catchUpLocked(budget: Int) throws(KappaError) -> Int {
        if let reason = rebuildRequest.withLock({ r -> String? in defer { r = nil }; return r }) {
            try rebuildLocked(reason: reason)
        }
        if let reason = try refreshSources() { try rebuildLocked(reason: reason) }
        let partitions = indexer.sources.flatMap { topic, n in (0..<n).map { TopicPartition(topic, $0) } }.sorted()
        // Turns of this many records each, so partitions progress together.
        let turn = max(1, min(budget, options.commitEntries) / max(1, partitions.count))
        var read = 0
        var dirty = Set<TopicPartition>()
        while read < budget {
            var readThisRound = 0
            for tp in partitions where read < budget {
                let n = try index(tp, recordsMax: min(turn, budget - read))
                if n > 0 { dirty.insert(tp) }
                readThisRound += n
                read += n
                if indexer.rows.count >= options.commitEntries {
                    try commit(dirty)
                    dirty.removeAll()
                }
            }
            if readThisRound == 0 { break }
        }
        if !dirty.isEmpty { try commit(dirty) }
        return read
    }

    /// Commits the pending rows with the offsets of `dirty` partitions and the counts.
    private func commit(_ dirty: Set<TopicPartition>) throws(KappaError) {
        let rows = indexer.rows
        for tp in dirty {
            let key = HistoryKeys.progressKey(tp)
            rows.put(key, HistoryKeys.progressValue(indexer.progress[tp] ?? .start, key: key))
        }
        var meta = HistoryMeta(userField: options.userField, timeField: options.timeField)
        meta.counts = indexer.counts
        rows.put(HistoryKeys.metaKey, meta.encoded())
        try storeLock.withRead { () throws(KappaError) in try store.commit(rows) }
        rows.removeAll()
    }

    /// Re-reads the committed offsets and counts (after a failed catch-up).
    func reloadIndexer() throws(KappaError) {
        indexer.reset()
        indexer.stale = true
        let (meta, progress) = try storeLock.withRead { () throws(KappaError) in
            try store.read { (s) throws(KappaError) in (try Self.readMeta(s, path: path), try Self.readProgress(s, path: path)) }
        }
        indexer.progress = progress
        indexer.counts = meta?.counts ?? HistoryCounts()
        indexer.stale = false
    }

    /// Learns new topics; returns why the index must be rebuilt when an indexed topic
    /// is gone or its log went back below what was indexed.
    private func refreshSources() throws(KappaError) -> String? {
        let topics = Set(try directory.listTopics())
        for topic in topics where indexer.sources[topic] == nil && !indexer.ignored.contains(topic) {
            let config: TopicConfig
            do {
                config = try directory.topicConfig(topic)
            } catch where error.code == .notFound {
                continue  // deleted since the listing
            }
            if HistorySources.isSource(topic: topic, config: config) {
                indexer.sources[topic] = config.partitions
            } else {
                indexer.ignored.insert(topic)
            }
        }
        for tp in indexer.progress.keys where !topics.contains(tp.topic) {
            return "topic \(tp.topic) was deleted"
        }
        indexer.ignored.formIntersection(topics)
        return nil
    }

    /// Indexes whole batches of one partition from its next offset until about
    /// `recordsMax` records were read or it is caught up; returns the records read.
    private func index(_ tp: TopicPartition, recordsMax: Int) throws(KappaError) -> Int {
        var p = indexer.progress[tp] ?? .start
        let reader = try partitionReader(tp, at: p.nextOffset)
        var read = 0
        while read < recordsMax, var records = try reader.nextRecords(from: p.nextOffset, codec: indexer.codec, scratch: indexer.scratch) {
            guard let base = reader.currentSegmentBase else { break }
            let location = BatchLocation(segmentBase: base, position: records.position)
            let compressed = (records.header.compression ?? .none) != .none
            var locating = RecordLocating(records, codec: indexer.codec)
            while let (r, start, bytes) = try records.nextWithBytes() {
                add(r, tp, location, locate: { locating?.locator(start: start, bytes: bytes) },
                    validate: records.fromKafkaClient, padded: compressed)
                read += 1
            }
            p.nextOffset = records.header.nextOffset
            p.lastBatchBase = records.header.baseOffset
            p.lastBatchCRC = records.header.crc
        }
        if read == 0, let end = try reader.visibleEnd(), end.offset < p.nextOffset {
            rebuildRequest.withLock { $0 = "\(tp.readable) ends at offset \(end.offset), below the \(p.nextOffset) indexed" }
        }
        indexer.progress[tp] = p
        return read
    }

    private func add(_ r: RecordView, _ tp: TopicPartition, _ location: BatchLocation, locate: () -> RecordLocator?, validate: Bool, padded: Bool) {
        switch indexer.fields.read(value: r.value, timestamp: r.timestamp, validate: validate, isPadded: padded) {
        case .notJSON:
            indexer.counts.notJSON += 1
        case .withoutUser:
            indexer.counts.withoutUser += 1
        case .event(let user, let time, let timeFromRecord):
            indexer.counts.indexed += 1
            if timeFromRecord { indexer.counts.timeFromRecord += 1 }
            let rows = indexer.rows
            let start = rows.bytes.count
            let position = EntryPosition(time: time, topic: tp.topic, partition: tp.partition, offset: r.offset)
            let keyCount = HistoryKeys.appendEntry(user: user, position: position, location: location, locator: locate(), into: rows.bytes)
            rows.appended(from: start, keyCount: keyCount)
        }
    }

    private func partitionReader(_ tp: TopicPartition, at offset: Offset) throws(KappaError) -> PartitionReader {
        if let r = indexer.readers[tp] { return r }
        let r = try PartitionReader(directory: directory, topicPartition: tp)
        try r.seek(to: offset)
        indexer.readers[tp] = r
        return r
    }

    // MARK: - Following the log

    /// Catches up, then waits for the source partitions (and the topics directory) to
    /// change — inotify, so an append is indexed within milliseconds — and catches up
    /// again, until `shouldStop` returns true (checked at least every `idleWaitMillis`).
    /// What a server runs on a thread of its own.
    public func follow(idleWaitMillis: Int32 = 1000, budget: Int = 100_000, shouldStop: () -> Bool) throws(KappaError) {
        let watcher = TailWatcher()
        while !shouldStop() {
            if try catchUp(budget: budget) > 0 { continue }
            for dir in watchedDirectories() { watcher.watch(dir) }
            watcher.wait(timeoutMillis: idleWaitMillis)
        }
    }

    /// The directories whose changes may bring records to index.
    public func watchedDirectories() -> [String] {
        let sources = indexerLock.withLock { _ in indexer.sources }
        var dirs = [directory.topicsPath]
        for (topic, n) in sources.sorted(by: { $0.key < $1.key }) {
            dirs.append(directory.topicPath(topic))
            for p in 0..<n { dirs.append(directory.partitionPath(TopicPartition(topic, p))) }
        }
        return dirs
    }
}
