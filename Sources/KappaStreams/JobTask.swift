import KappaCore
import KappaFormat
import KappaJSON
import KappaLog

/// One task of one job version: partition number `task` of every input. It reads its
/// input partitions, runs the operator, writes results to partition `task` of the output
/// topic (late events and dead letters likewise), and checkpoints.
///
/// Exactly-once: a checkpoint (`TaskCheckpoint`) holds the operator state, the input
/// offsets it reflects and the end offset of each partition the task writes, in one
/// atomically replaced file. Output becomes visible to readers only when the task
/// publishes the committed marker after a checkpoint; on restart, anything written after
/// the checkpoint is truncated, the state is loaded and the inputs are read again from
/// the checkpointed offsets. Windowed jobs that repartition send contributions through
/// `JOB.vN.repartition`, which many tasks write; there the receiving task drops the
/// copies a restarted sender re-sends (by source and sequence number).
///
/// Not thread-safe: one thread drives a task.
public final class JobTask {
    public let definition: JobDefinition
    public let version: Int
    public let task: Int32
    public let partitions: Int32
    let directory: DataDirectory
    let registry: JobRegistry
    let clock: any WallClock
    let fsync: FsyncPolicy

    struct Input {
        var topic: String
        var reader: PartitionReader
        var position: Offset
        var lastActivityNanos: Int64
        var idle = false
    }

    enum Operator {
        case window(WindowPreAggregator, WindowMerger)
        case session(Sessionizer)
        case match(TicketRideMatcher)
    }

    var inputs: [Input]
    var repartitionInput: Input?
    let output: TaskOutput
    let late: TaskOutput
    let deadLetter: TaskOutput
    let repartition: SharedTopicWriter?
    let op: Operator
    let extractor: JSONFieldExtractor
    /// For match jobs, the extractor of ride records (`extractor` reads tickets).
    var rideExtractor: JSONFieldExtractor?
    let codec = LZ4Codec()
    let scratch = ByteWriter(capacity: 1 << 20)
    let padded = ByteWriter(capacity: 4096)
    /// The batch being read came from a Kafka client (`kappa serve`): its values were
    /// not validated when written, so they are parsed in full (invalid JSON goes to the
    /// dead-letter topic) rather than lazily.
    private var batchFromKafkaClient = false
    let encoded = ByteWriter(capacity: 256)
    /// The numeric fields of the event being folded in (window jobs).
    let values: UnsafeMutableBufferPointer<Decimal9?>
    /// A numeric key's digits.
    let numericKey = ByteWriter(capacity: 32)
    let fieldCount: Int
    let headerJob: RecordHeader
    let headerVersion: RecordHeader

    public internal(set) var processed: Int64 = 0
    public internal(set) var deadLetters: Int64 = 0
    public internal(set) var lateWritten: Int64 = 0
    var lastWatermark: (Int64, Bool)?
    var changedSinceCheckpoint = false
    /// A checkpoint of this task exists (loaded at start or written since).
    var hasCheckpoint = false
    var lastSyncNanos: Int64
    /// When the runner last checkpointed this task (monotonic clock).
    var lastCheckpointNanos: Int64 = monotonicNanos()

    /// `repartitionWriter`: the writer of the repartition topic this process's tasks
    /// share (see `SharedTopicWriter`); a task given none opens its own.
    init(directory: DataDirectory, definition: JobDefinition, version: Int, task: Int32, partitions: Int32,
         fsync: FsyncPolicy = .default, clock: any WallClock = SystemClock(), repartitionWriter: SharedTopicWriter?) throws(KappaError) {
        self.directory = directory
        self.definition = definition
        self.version = version
        self.task = task
        self.partitions = partitions
        self.registry = JobRegistry(directory: directory)
        self.clock = clock
        self.fsync = fsync
        lastSyncNanos = clock.nowNanos()
        let now = clock.nowNanos()
        inputs = []
        for topic in definition.inputs {
            let reader = try PartitionReader(directory: directory, topicPartition: TopicPartition(topic, task))
            inputs.append(Input(topic: topic, reader: reader, position: .zero, lastActivityNanos: now))
        }
        output = try TaskOutput(directory: directory, topicPartition: TopicPartition(JobRegistry.outputTopic(definition, version), task), fsync: fsync)
        late = try TaskOutput(directory: directory, topicPartition: TopicPartition(JobRegistry.lateTopic(definition, version), task), fsync: fsync)
        deadLetter = try TaskOutput(directory: directory, topicPartition: TopicPartition(JobRegistry.deadLetterTopic(definition, version), task), fsync: fsync)
        var paths = [definition.timeField, definition.keyField]
        switch definition.operation {
        case .window(let w):
            paths += w.fields
            fieldCount = w.fields.count
            let repartitioned = try Self.needsRepartition(definition, directory: directory)
            op = Self.makeOperator(definition, task: task, partitions: partitions, repartitioned: repartitioned)
            if repartitioned {
                let topic = JobRegistry.repartitionTopic(definition, version)
                if let shared = repartitionWriter {
                    repartition = shared
                } else {
                    repartition = try SharedTopicWriter(directory: directory, topic: topic)
                }
                repartitionInput = Input(topic: topic, reader: try PartitionReader(directory: directory, topicPartition: TopicPartition(topic, task)),
                                         position: .zero, lastActivityNanos: now)
            } else {
                repartition = nil
            }
        case .session(let s):
            paths.append(s.typeField)
            fieldCount = 0
            op = Self.makeOperator(definition, task: task, partitions: partitions, repartitioned: false)
            repartition = nil
        case .match(let m):
            // Tickets and rides each look up only their own id: a field absent from a
            // record costs a scan of the whole record.
            paths.append(m.ticketIdField)
            rideExtractor = try JSONFieldExtractor(paths: [definition.timeField, definition.keyField, m.rideIdField])
            fieldCount = 0
            op = Self.makeOperator(definition, task: task, partitions: partitions, repartitioned: false)
            repartition = nil
        }
        values = .allocate(capacity: fieldCount)
        values.initialize(repeating: nil)
        extractor = try JSONFieldExtractor(paths: paths)
        headerJob = RecordHeader(key: "kappa.job", value: Array(definition.name.utf8))
        headerVersion = RecordHeader(key: "kappa.version", value: Array(String(version).utf8))
        try restore()
    }

    deinit { values.deallocate() }

    public convenience init(directory: DataDirectory, definition: JobDefinition, version: Int, task: Int32, partitions: Int32,
                            fsync: FsyncPolicy = .default, clock: any WallClock = SystemClock()) throws(KappaError) {
        try self.init(directory: directory, definition: definition, version: version, task: task, partitions: partitions,
                      fsync: fsync, clock: clock, repartitionWriter: nil)
    }

    /// Windowed jobs whose key is not the field their inputs are partitioned by go
    /// through a repartition topic, so that each (key, window) has one owner.
    public static func needsRepartition(_ def: JobDefinition, directory: DataDirectory) throws(KappaError) -> Bool {
        guard case .window = def.operation else { return false }
        for t in def.inputs where try directory.topicConfig(t).partitionKeyField != def.keyField { return true }
        return false
    }

    var isRepartitioned: Bool { repartition != nil }

    static func makeOperator(_ def: JobDefinition, task: Int32, partitions: Int32, repartitioned: Bool) -> Operator {
        switch def.operation {
        case .window(let w):
            return .window(WindowPreAggregator(spec: w, source: task), WindowMerger(spec: w, sourceCount: repartitioned ? Int(partitions) : 1))
        case .session(let s): return .session(Sessionizer(spec: s))
        case .match(let m): return .match(TicketRideMatcher(spec: m))
        }
    }

    // MARK: running

    /// Reads up to `budget` records from each input (and the repartition topic), runs the
    /// operator, writes results. Returns how many records were read.
    public func step(budget: Int = 4096) throws(KappaError) -> Int {
        var n = 0
        let now = clock.nowNanos()
        if case .match(let m) = op {
            // Read the topic that is behind in event time, a batch at a time, so tickets
            // do not run far ahead of the rides they wait for (Kafka Streams picks the
            // partition with the smallest timestamp the same way). Results do not depend
            // on this order; memory and speed do.
            var got = [0, 0]
            var exhausted = [false, false]
            let ridesIndex = inputs.firstIndex { $0.topic == m.spec.rides }!
            while n < budget * 2 && !(exhausted[0] && exhausted[1]) {
                let ridesBehind = (m.ridesStreamTime ?? .min) <= (m.ticketsStreamTime ?? .min)
                var i = ridesBehind ? ridesIndex : 1 - ridesIndex
                if exhausted[i] { i = 1 - i }
                let k = try drain(input: i, budget: 1, batches: 1)
                if k == 0 { exhausted[i] = true } else { exhausted = [false, false] }
                got[i] += k
                n += k
            }
            for i in inputs.indices { noteActivity(i, got: got[i], now: now) }
        } else {
            for i in inputs.indices {
                let got = try drain(input: i, budget: budget)
                noteActivity(i, got: got, now: now)
                n += got
            }
        }
        afterInputs()
        if isRepartitioned {
            try repartition!.flush()
            n += try drainRepartition(budget: budget * 4)
        }
        if n > 0 { changedSinceCheckpoint = true }
        return n
    }

    private func noteActivity(_ i: Int, got: Int, now: Int64) {
        if got > 0 {
            inputs[i].lastActivityNanos = now
            inputs[i].idle = false
        } else if let timeout = definition.idleTimeoutNanos, now - inputs[i].lastActivityNanos >= timeout {
            inputs[i].idle = true
        }
    }

    private func drain(input i: Int, budget: Int, batches: Int = .max) throws(KappaError) -> Int {
        var n = 0
        var batchesRead = 0
        let tp = inputs[i].reader.topicPartition
        var position = inputs[i].position
        defer { inputs[i].position = position }
        while n < budget, batchesRead < batches, let batch = try inputs[i].reader.nextBatch() {
            if batch.header.nextOffset <= position || batch.header.isControl { continue }
            batchesRead += 1
            let compressed = batch.header.compression == .lz4
            batchFromKafkaClient = TopicConfig.cameFromKafkaClient(batch.bytes)
            do throws(BatchDecodeError) {
                var records = try RecordBatchDecoder.records(of: batch.bytes, header: batch.header, codec: codec, scratch: scratch)
                // The operator is bound once per batch, not once per record.
                switch op {
                case .window(let pre, let merger):
                    n += try forEach(&records, from: &position) { windowEvent($0, input: i, compressed: compressed, pre, merger) }
                case .session(let s):
                    n += try forEach(&records, from: &position) { sessionEvent($0, input: i, compressed: compressed, s) }
                case .match(let m):
                    let isTicket = inputs[i].topic == m.spec.tickets
                    let extractor = isTicket ? self.extractor : rideExtractor!
                    n += try forEach(&records, from: &position) { matchEvent($0, input: i, compressed: compressed, m, isTicket, extractor) }
                }
            } catch {
                throw KappaError(.corruptData, "undecodable batch: \(error.message)", topicPartition: tp, offset: batch.header.baseOffset)
            }
        }
        processed += Int64(n)
        return n
    }

    /// Feeds every record at or after `position` to `body`, advancing `position`.
    @inline(__always)
    private func forEach(_ records: inout RecordIterator, from position: inout Offset, _ body: (RecordView) -> Void) throws(BatchDecodeError) -> Int {
        var n = 0
        while let record = try records.next() {
            guard record.offset >= position else { continue }
            body(record)
            position = record.offset + 1
            n += 1
        }
        return n
    }

    /// A view of `value` with 64 readable bytes after it, as the JSON parser needs.
    @inline(__always)
    private func paddedValue(_ value: UnsafeRawBufferPointer, compressed: Bool) -> UnsafeRawBufferPointer {
        if compressed { return value }  // inside the inflated batch, which keeps slack after it
        padded.removeAll()
        padded.reserve(value.count + JSONFieldExtractor.padding)
        padded.append(value)
        return padded.bytes
    }

    /// Extracts what every operator needs — the event time (field 0) and the key's
    /// UTF-8 bytes (field 1), valid until the next parse — or sends the record to the
    /// dead-letter topic with the reason.
    @inline(__always)
    private func event(_ record: RecordView, input i: Int, compressed: Bool, _ extractor: JSONFieldExtractor)
        -> (time: Int64, key: UnsafeRawBufferPointer)? {
        do {
            // Records `kappa produce` wrote were validated then: read only the fields the
            // job uses. A Kafka client's may be anything: validate them in full.
            if batchFromKafkaClient {
                try extractor.parse(paddedValue(record.value, compressed: compressed))
            } else {
                try extractor.parseLazily(paddedValue(record.value, compressed: compressed))
            }
        } catch {
            sendToDeadLetter(record, input: i, reason: "invalid JSON: \(error.message)")
            return nil
        }
        let time: Int64
        switch EventFields.time(of: extractor.field(0), name: definition.timeField) {
        case .success(let t): time = t.rawValue
        case .failure(let bad):
            sendToDeadLetter(record, input: i, reason: bad.description)
            return nil
        }
        switch extractor.field(1) {
        case .string(let bytes): return (time, bytes)
        case .number(_, let raw): return (time, raw)
        case .integer(let v):
            var digits: [UInt8] = []
            appendInteger(v, to: &digits)
            numericKey.removeAll()
            numericKey.append(digits)
            return (time, numericKey.bytes)
        default:
            sendToDeadLetter(record, input: i, reason: "missing key field '\(definition.keyField)'")
            return nil
        }
    }

    private func windowEvent(_ record: RecordView, input i: Int, compressed: Bool, _ pre: WindowPreAggregator, _ merger: WindowMerger) {
        guard let (time, key) = event(record, input: i, compressed: compressed, extractor) else { return }
        for f in 0..<fieldCount {
            switch extractor.field(2 + f) {
            case .integer(let v): values[f] = Decimal9(integer: v)
            case .number(let d, _): values[f] = Decimal9(double: d)
            default: values[f] = nil
            }
        }
        let onTime = pre.add(key: key, time: time, values: UnsafeBufferPointer(values), partition: task, offset: record.offset.rawValue) { c in
            route(c, merger: merger)
        }
        if !onTime { sendToLate(record, input: i, time: time, streamTime: pre.streamTime) }
    }

    private func sessionEvent(_ record: RecordView, input i: Int, compressed: Bool, _ s: Sessionizer) {
        guard let (time, key) = event(record, input: i, compressed: compressed, extractor) else { return }
        if !s.add(key: String(decoding: key, as: UTF8.self), time: time, type: extractor.field(2).text, partition: task, offset: record.offset.rawValue) {
            sendToLate(record, input: i, time: time, streamTime: s.streamTime)
        }
    }

    private func matchEvent(_ record: RecordView, input i: Int, compressed: Bool, _ m: TicketRideMatcher, _ isTicket: Bool,
                            _ extractor: JSONFieldExtractor) {
        guard let (time, user) = event(record, input: i, compressed: compressed, extractor) else { return }
        guard let id = extractor.field(2).text else {
            sendToDeadLetter(record, input: i, reason: "missing field '\(isTicket ? m.spec.ticketIdField : m.spec.rideIdField)'")
            return
        }
        let offset = record.offset.rawValue
        let onTime = isTicket ? m.addTicket(user: user, id: id, time: time, offset: offset) : m.addRide(user: user, id: id, time: time, offset: offset)
        if !onTime { sendToLate(record, input: i, time: time, streamTime: isTicket ? m.ticketsStreamTime : m.ridesStreamTime) }
    }

    /// Sends a contribution to the task that owns its key (or merges it here).
    private func route(_ c: Contribution, merger: WindowMerger) {
        guard let repartition else {
            if let update = merger.apply(c) { writeWindow(update) }
            return
        }
        RepartitionRecord.encodeContribution(c, into: encoded)
        var key = c.key
        key.withUTF8 { k in
            let kb = UnsafeRawBufferPointer(k)
            let r = Partitioner.partition(forKey: kb, partitions: partitions)
            // Cannot fail: append only buffers and seals until flush().
            try? repartition.append(partition: r, key: kb, value: encoded.bytes, timestamp: TimestampNanos(c.windowStart))
        }
    }

    /// After a round of input: close what stream time has closed; tell the other tasks
    /// how far this one's input has got.
    private func afterInputs() {
        switch op {
        case .window(let pre, let merger):
            pre.closeReady { c in route(c, merger: merger) }
            if let repartition, let st = pre.streamTime {
                let idle = definition.idleTimeoutNanos != nil && inputs.allSatisfy(\.idle)
                if lastWatermark == nil || lastWatermark! != (st, idle) {
                    lastWatermark = (st, idle)
                    changedSinceCheckpoint = true
                    RepartitionRecord.encodeWatermark(source: task, streamTime: st, idle: idle, into: encoded)
                    for r in 0..<partitions {
                        try? repartition.append(partition: r, key: nil, value: encoded.bytes, timestamp: TimestampNanos(st))
                    }
                }
            } else if repartition == nil, let st = pre.streamTime {
                merger.observe(source: 0, streamTime: st)
                merger.closeReady { writeWindow($0) }
            }
        case .session(let s):
            s.closeReady { key, session in writeSession(key: key, session) }
        case .match(let m):
            let ridesIdle = inputs.first { $0.topic == m.spec.rides }?.idle ?? false
            m.closeReady(idleRides: ridesIdle) { writeMatch($0) }
        }
    }

    private func drainRepartition(budget: Int) throws(KappaError) -> Int {
        guard var input = repartitionInput, case .window(_, let merger) = op else { return 0 }
        defer { repartitionInput = input }
        var n = 0
        let fields = fieldCount
        while n < budget, let batch = try input.reader.nextBatch() {
            if batch.header.nextOffset <= input.position { continue }
            do throws(BatchDecodeError) {
                var records = try RecordBatchDecoder.records(of: batch.bytes, header: batch.header, codec: codec, scratch: scratch)
                while let record = try records.next() {
                    guard record.offset >= input.position else { continue }
                    input.position = record.offset + 1
                    n += 1
                    let decoded: RepartitionRecord
                    do throws(StateReader.Failure) {
                        decoded = try RepartitionRecord.decode(key: record.key, value: record.value, fields: fields)
                    } catch {
                        throw BatchDecodeError("repartition record at offset \(record.offset): \(error.description)")
                    }
                    switch decoded {
                    case .contribution(let c):
                        if let update = merger.apply(c) { writeWindow(update) }
                    case .watermark(let source, let st, let idle):
                        merger.observe(source: source, streamTime: st)
                        if idle { merger.idleSources.insert(Int(source)) } else { merger.idleSources.remove(Int(source)) }
                    }
                }
            } catch {
                throw KappaError(.corruptData, error.message, topicPartition: input.reader.topicPartition, offset: batch.header.baseOffset)
            }
        }
        merger.closeReady { writeWindow($0) }
        return n
    }

    // MARK: writing results

    private func lineageHeader(_ l: Lineage, topic: String) -> RecordHeader {
        RecordHeader(key: "kappa.input", value: Array(l.header(topic: topic).utf8))
    }

    private func writeWindow(_ r: WindowResult) {
        guard case .window(let pre, _) = op else { return }
        output.append(key: Array(r.key.utf8), value: r.json(pre.spec, fields: pre.spec.fields), timestamp: TimestampNanos(r.windowEnd),
                      headers: [headerJob, headerVersion, lineageHeader(r.lineage, topic: definition.inputs.joined(separator: "+"))])
    }

    private func writeSession(key: String, _ s: Session) {
        output.append(key: Array(key.utf8), value: s.json(key: key), timestamp: TimestampNanos(s.end),
                      headers: [headerJob, headerVersion, lineageHeader(s.lineage, topic: definition.inputs.joined(separator: "+"))])
    }

    private func writeMatch(_ m: MatchResult) {
        guard case .match(let op) = op else { return }
        var lineage = "\(op.spec.tickets)/\(task):\(m.ticketOffset)"
        if let ro = m.rideOffset { lineage += ",\(op.spec.rides)/\(task):\(ro)" }
        output.append(key: Array(m.ticketId.utf8), value: m.json(), timestamp: TimestampNanos(m.ticketTime),
                      headers: [headerJob, headerVersion, RecordHeader(key: "kappa.input", value: Array(lineage.utf8))])
    }

    private func sendToLate(_ record: RecordView, input i: Int, time: Int64, streamTime: Int64?) {
        lateWritten += 1
        late.append(key: record.key.map { Array($0) }, value: record.value, timestamp: TimestampNanos(time), headers: [
            headerJob, headerVersion,
            RecordHeader(key: "kappa.input", value: Array("\(inputs[i].topic)/\(task):\(record.offset)".utf8)),
            RecordHeader(key: "kappa.stream-time", value: Array((streamTime.map { TimestampNanos($0).decimalSeconds } ?? "").utf8)),
        ])
    }

    private func sendToDeadLetter(_ record: RecordView, input i: Int, reason: String) {
        deadLetters += 1
        deadLetter.append(key: record.key.map { Array($0) }, value: record.value, timestamp: record.timestamp, headers: [
            headerJob, headerVersion,
            RecordHeader(key: "kappa.input", value: Array("\(inputs[i].topic)/\(task):\(record.offset)".utf8)),
            RecordHeader(key: "kappa.error", value: Array(reason.utf8)),
        ])
    }
}
