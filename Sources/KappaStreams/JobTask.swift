import KappaCore
import KappaFormat
import KappaJSON
import KappaLog

/// One task of one job version (see `JobPlan`): it reads partition `task` of each input
/// (its *sources*), judges lateness against each source's own stream time, and either
/// feeds the operator itself (direct inputs, and keys it owns) or sends the record on to
/// the key's owner through `JOB.vN.repartition`. As an owner it reads partition `task`
/// of that topic, drops the copies a restarted sender sends again, keeps the watermark
/// of its sources, and writes results to partition `task` of the output topic (late
/// events and dead letters likewise).
///
/// Exactly-once: a checkpoint (`JobTask+Checkpoint`) holds the operator state, the input
/// and repartition offsets it reflects and the end offset of each partition the task
/// writes, in one atomically replaced file. Output becomes visible to readers only when
/// the task publishes the committed marker after a checkpoint; on restart, anything
/// written after the checkpoint is truncated, the state is loaded and the inputs are
/// read again from the checkpointed offsets. What a task re-sends after a restart
/// carries the sequence numbers it had the first time (input offsets for forwarded
/// events; a per-source counter for window partials, deterministic in the source's
/// order), so the owners drop the copies.
///
/// Not thread-safe: one thread drives a task.
public final class JobTask {
    public var definition: JobDefinition { state.definition }
    public var version: Int { state.version }
    public var task: Int32 { state.task }
    public var plan: JobPlan { state.plan }
    let state: TaskState
    let directory: DataDirectory
    let registry: JobRegistry
    let clock: any WallClock
    let fsync: FsyncPolicy

    /// Per source (parallel to `state.sources`): its reader and when it last had news.
    var readers: [PartitionReader]
    var lastActivityNanos: [Int64]
    var repartitionReader: PartitionReader?
    let sender: RepartitionSender?
    let output: TaskOutput
    let late: TaskOutput
    let deadLetter: TaskOutput
    var op: TaskState.Operator { state.op }
    /// Field 0 is the time, 1 the key; then a window's numeric fields, a session's type
    /// field, or a match's ticket id. Match rides have their own extractor.
    let extractor: JSONFieldExtractor
    let rideExtractor: JSONFieldExtractor?
    let codec = LZ4Codec()
    let scratch = ByteWriter(capacity: 1 << 20)
    let padded = ByteWriter(capacity: 4096)
    /// The batch being read came from a Kafka client (`kappa serve`): its values were
    /// not validated when written, so they are parsed in full (invalid JSON goes to the
    /// dead-letter topic) rather than lazily.
    var batchFromKafkaClient = false
    let encoded = ByteWriter(capacity: 256)
    /// The numeric fields of the event being folded in (window jobs).
    let values: UnsafeMutableBufferPointer<Decimal9?>
    /// A numeric key's digits.
    let numericKey = ByteWriter(capacity: 32)
    /// A numeric id's or type's digits.
    let textScratch = ByteWriter(capacity: 32)
    let fieldCount: Int
    let headerJob: RecordHeader
    let headerVersion: RecordHeader
    let lineageTopic: [UInt8]
    /// A result record being built: its value, and its headers with the fixed ones (job,
    /// version) encoded once, up to `resultHeadersFixed`.
    let resultValue = ByteWriter(capacity: 1024)
    let resultHeaders = EncodedHeaders()
    let resultHeadersFixed: (bytes: Int, count: Int)
    /// A window job's aggregates as they appear in results (nil for other jobs).
    let aggregateLayout: AggregateLayout?

    public var processed: Int64 { state.processed }
    public var deadLetters: Int64 { state.deadLetters }
    public var lateWritten: Int64 { state.lateWritten }
    var changedSinceCheckpoint = false
    /// A checkpoint of this task exists (loaded at start or written since).
    var hasCheckpoint = false
    var lastSyncNanos: Int64
    /// When the runner last checkpointed this task (monotonic clock).
    var lastCheckpointNanos: Int64 = monotonicNanos()

    /// `repartitionWriter`: the writer of the repartition topic this process's tasks
    /// share (see `SharedTopicWriter`); a task given none opens its own.
    init(directory: DataDirectory, definition: JobDefinition, version: Int, task: Int32, plan: JobPlan,
         fsync: FsyncPolicy = .default, clock: any WallClock = SystemClock(), repartitionWriter: SharedTopicWriter?) throws(KappaError) {
        state = TaskState(definition: definition, version: version, task: task, plan: plan)
        self.directory = directory
        self.registry = JobRegistry(directory: directory)
        self.clock = clock
        self.fsync = fsync
        lastSyncNanos = clock.nowNanos()
        output = try TaskOutput(directory: directory, topicPartition: TopicPartition(JobRegistry.outputTopic(definition, version), task), fsync: fsync)
        late = try TaskOutput(directory: directory, topicPartition: TopicPartition(JobRegistry.lateTopic(definition, version), task), fsync: fsync)
        deadLetter = try TaskOutput(directory: directory, topicPartition: TopicPartition(JobRegistry.deadLetterTopic(definition, version), task), fsync: fsync)
        lineageTopic = Array(definition.inputs.joined(separator: "+").utf8)
        var paths = [definition.timeField, definition.keyField]
        switch definition.operation {
        case .window(let w):
            paths += w.fields
            fieldCount = w.fields.count
            rideExtractor = nil
        case .session(let s):
            paths.append(s.typeField)
            fieldCount = 0
            rideExtractor = nil
        case .match(let m):
            // Tickets and rides each look up only their own id: a field absent from a
            // record costs a scan of the whole record.
            paths.append(m.ticketIdField)
            rideExtractor = try JSONFieldExtractor(paths: [definition.timeField, definition.keyField, m.rideIdField])
            fieldCount = 0
        }
        extractor = try JSONFieldExtractor(paths: paths)
        var readers: [PartitionReader] = []
        for s in state.sources { readers.append(try PartitionReader(directory: directory, topicPartition: TopicPartition(s.topic, s.partition))) }
        self.readers = readers
        lastActivityNanos = Array(repeating: clock.nowNanos(), count: readers.count)
        if plan.repartitioned {
            let topic = JobRegistry.repartitionTopic(definition, version)
            let shared: SharedTopicWriter
            if let repartitionWriter { shared = repartitionWriter } else { shared = try SharedTopicWriter(directory: directory, topic: topic) }
            sender = RepartitionSender(shared: shared)
            repartitionReader = try PartitionReader(directory: directory, topicPartition: TopicPartition(topic, task))
        } else {
            sender = nil
        }
        values = .allocate(capacity: fieldCount)
        values.initialize(repeating: nil)
        headerJob = RecordHeader(key: "kappa.job", value: Array(definition.name.utf8))
        headerVersion = RecordHeader(key: "kappa.version", value: Array(String(version).utf8))
        let fixed = resultHeaders
        for h in [headerJob, headerVersion] { h.value.withUnsafeBytes { fixed.append(key: h.key, value: $0) } }
        resultHeadersFixed = fixed.mark
        if case .window(let w) = definition.operation { aggregateLayout = AggregateLayout(w) } else { aggregateLayout = nil }
        try restore()
    }

    deinit { values.deallocate() }

    public convenience init(directory: DataDirectory, definition: JobDefinition, version: Int, task: Int32,
                            fsync: FsyncPolicy = .default, clock: any WallClock = SystemClock()) throws(KappaError) {
        try self.init(directory: directory, definition: definition, version: version, task: task,
                      plan: try JobPlan.make(definition, directory: directory), fsync: fsync, clock: clock, repartitionWriter: nil)
    }

    var isRepartitioned: Bool { sender != nil }

    // MARK: running

    /// Reads up to about `budget` records from each source (and from the repartition
    /// topic), runs the operator, writes results. Returns how many records were read.
    public func step(budget: Int = 4096) throws(KappaError) -> Int {
        let now = clock.nowNanos()
        let sourceCount = state.sources.count
        var got = Array(repeating: 0, count: sourceCount)
        if sourceCount == 1 {
            got[0] = try drain(source: 0, budget: budget)
        } else {
            // Read the source that is behind in event time, a batch at a time, so one
            // input does not run far ahead of the others (Kafka Streams picks the
            // partition with the smallest timestamp the same way). Results do not depend
            // on this order; memory and speed do.
            var exhausted = Array(repeating: false, count: sourceCount)
            var n = 0
            while n < budget * sourceCount {
                var pick = -1
                for i in 0..<sourceCount where !exhausted[i] {
                    if pick < 0 || (state.sources[i].streamTime?.rawValue ?? .min) < (state.sources[pick].streamTime?.rawValue ?? .min) { pick = i }
                }
                guard pick >= 0 else { break }
                let k = try drain(source: pick, budget: 1, batches: 1)
                if k == 0 { exhausted[pick] = true } else { exhausted = exhausted.map { _ in false } }
                got[pick] += k
                n += k
            }
        }
        for i in 0..<sourceCount { noteActivity(i, got: got[i], now: now) }
        var n = got.reduce(0, +)
        try afterInputs()
        if let sender {
            try sender.flush()
            n += try drainRepartition(budget: budget * 4)
        }
        closeReady()
        try output.writeFull()
        try late.writeFull()
        try deadLetter.writeFull()
        if n > 0 { changedSinceCheckpoint = true }
        return n
    }

    private func noteActivity(_ i: Int, got: Int, now: Int64) {
        if got > 0 {
            lastActivityNanos[i] = now
            state.sources[i].idle = false
        } else if let timeout = definition.idleTimeoutNanos, now - lastActivityNanos[i] >= timeout {
            state.sources[i].idle = true
        }
    }

    /// How many records the match drain looks up at once.
    static let matchGroup = 16

    private func drain(source i: Int, budget: Int, batches: Int = .max) throws(KappaError) -> Int {
        var n = 0
        var batchesRead = 0
        let reader = readers[i]
        var position = state.sources[i].position
        defer { state.sources[i].position = position }
        while n < budget, batchesRead < batches, var records = try reader.nextRecords(from: position, codec: codec, scratch: scratch) {
            batchesRead += 1
            let compressed = records.header.compression == .lz4
            batchFromKafkaClient = records.fromKafkaClient
            // The operator is bound once per batch, not once per record.
            switch op {
            case .window(let merger):
                let pre = state.sources[i].pre!
                n += try forEach(&records, from: &position) { windowEvent($0, source: i, compressed: compressed, pre, merger) }
            case .session(let s):
                n += try forEach(&records, from: &position) { sessionEvent($0, source: i, compressed: compressed, s) }
            case .match(let m):
                let isTicket = state.sources[i].role == .tickets
                let extractor = isTicket ? self.extractor : rideExtractor!
                // Records in groups of `matchGroup`, so that the matcher's lookups are
                // started before they are needed and overlap one another (see
                // `TicketRideMatcher.prefetchUser`), from the record keys: first every
                // user's slot in the key index, then (those slots on their way) every
                // user's id and rides, then the records. The id found is the record's
                // user's when its key is its user (`matchEvent` checks).
                n += try withUnsafeTemporaryAllocation(of: RecordView.self, capacity: Self.matchGroup) { (group) throws(KappaError) -> Int in
                    try withUnsafeTemporaryAllocation(of: Int32?.self, capacity: Self.matchGroup) { (known) throws(KappaError) -> Int in
                        var n = 0
                        while true {
                            var k = 0
                            while k < Self.matchGroup, let r = try records.next() {
                                group.initializeElement(at: k, to: r)
                                k += 1
                            }
                            if k == 0 { return n }
                            for j in 0..<k { if let key = group[j].key { m.prefetchUser(key) } }
                            for j in 0..<k { known.initializeElement(at: j, to: group[j].key.flatMap { m.prefetchRides($0) }) }
                            for j in 0..<k {
                                matchEvent(group[j], source: i, compressed: compressed, m, isTicket, extractor, knownUser: known[j])
                                position = group[j].offset + 1
                            }
                            n += k
                        }
                    }
                }
            }
        }
        state.processed += Int64(n)
        return n
    }

    /// Feeds every record of the batch to `body`, advancing `position`.
    @inline(__always)
    private func forEach(_ records: inout BatchRecords, from position: inout Offset, _ body: (RecordView) -> Void) throws(KappaError) -> Int {
        var n = 0
        while let record = try records.next() {
            body(record)
            position = record.offset + 1
            n += 1
        }
        return n
    }

    /// After a round of input: windows close what their sources' stream times have
    /// closed; every source reports its stream time — to the owners through the
    /// repartition topic when it is re-keyed, here when it is read directly.
    private func afterInputs() throws(KappaError) {
        // Events already forwarded go before any watermark of their source.
        sender?.closeBundles()
        for i in state.sources.indices {
            if let pre = state.sources[i].pre, case .window(let merger) = op {
                pre.closeReady { (p: PartialRef) in route(p, source: i, merger: merger) }
            }
            guard let st = state.sources[i].streamTime else { continue }
            let now = TaskState.ReportedWatermark(streamTime: st, idle: state.sources[i].idle)
            guard state.sources[i].reported != now else { continue }
            state.sources[i].reported = now
            changedSinceCheckpoint = true
            state.observe(source: state.sources[i].id, now)
            if state.sources[i].rekeyed, let sender {
                RepartitionRecord.encodeWatermark(source: state.sources[i].id, streamTime: st, idle: now.idle, into: encoded)
                // The owners other than this task; this one has just observed it.
                for p in 0..<plan.tasks where p != task {
                    sender.send(to: p, key: nil, value: encoded.bytes, timestamp: TimestampNanos(millis: st.millis))
                }
            }
        }
        if case .match = op { state.refreshWatermarks() }
    }

    /// Emits what the watermark has made final.
    private func closeReady() {
        switch op {
        case .window(let merger):
            merger.closeReady(watermark: state.progress[0].watermark) { (r: ResultRef) in writeWindow(r) }
        case .session(let s):
            s.closeReadyRaw(watermark: state.progress[0].watermark) { key, session in writeSession(key: key, session) }
        case .match(let m):
            state.refreshWatermarks()
            m.closeReadyRefs(idleRides: state.progress[0].allIdle) { writeMatch($0) }
        }
    }
}
