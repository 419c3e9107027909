import KappaCore
import KappaFormat
import KappaLog

/// Everything a task's checkpoint holds, and nothing that does I/O: per source (input
/// partition) its position, stream time, lateness count and the watermark last reported;
/// the repartition topic's position; what the task waits for (`SourceProgress` per
/// stream); the operator's state; counters. `JobTask` runs it; queries decode it from a
/// checkpoint without opening anything for writing.
///
/// The checkpoint layout (`encode`), replaced atomically as `DATA/jobs/JOB/vN/tasks/P.ckpt`:
///
/// ```
/// "KPCK" format(2)  job version task kind
/// sources: count, (input index, topic, next offset, stream time?, late, idle,
///                  reported watermark?)…
/// repartition: present, next offset
/// ends of the output, late and dead-letter partitions
/// counters: processed, dead letters, late
/// progress: count, (each stream's SourceProgress)…
/// operator: windows: each source's WindowPreAggregator, then the WindowMerger;
///           sessions: the Sessionizer; matches: the TicketRideMatcher
/// CRC-32C of everything above (4 bytes, big-endian)
/// ```
/// Format 1 (before inputs could be re-keyed for sessions and matches) is still read:
/// one stream time per task, which maps onto the sources of a single-input job or of a
/// match. A checkpoint that fails its CRC, names another job, version or task, or does
/// not fit the job's plan is refused with an error, never used.
final class TaskState {
    let definition: JobDefinition
    let version: Int
    let task: Int32
    let plan: JobPlan

    /// Which stream a source feeds: a window's or session's events, or a match's rides
    /// or tickets.
    enum Role: Int {
        case events = 0
        case rides = 1
        case tickets = 2

        /// Index in `progress`.
        var stream: Int { self == .tickets ? 1 : 0 }
    }

    struct ReportedWatermark: Equatable {
        var streamTime: TimestampNanos
        var idle: Bool
    }

    /// One input partition the task reads.
    struct Source {
        let input: Int  // index in `definition.inputs`
        let id: Int32  // global, `JobPlan.sourceId`
        let topic: String
        let partition: Int32
        let role: Role
        let rekeyed: Bool
        var position: Offset = .zero
        /// Stream time and lateness (sessions and matches; windows judge in `pre`).
        var clock: StreamClock
        /// The window job's first stage for this source.
        let pre: WindowPreAggregator?
        var idle = false
        /// The last stream time (and idle flag) reported to the owners.
        var reported: ReportedWatermark?

        var streamTime: TimestampNanos? { pre?.streamTime ?? clock.streamTime }
    }

    enum Operator {
        case window(WindowMerger)
        case session(Sessionizer)
        case match(TicketRideMatcher)
    }

    /// The end offsets of the partitions a task writes, as a checkpoint records them.
    struct OutputEnds: Equatable {
        var output: Offset = .zero
        var late: Offset = .zero
        var deadLetter: Offset = .zero
    }

    var sources: [Source]
    var repartitionPosition: Offset?
    /// Per stream (`Role.stream`): the sources this task's results wait for.
    var progress: [SourceProgress]
    /// Where a source's records go in this task: its stream (`progress` index), its slot
    /// there, and the input partition it reads (for lineage).
    struct SourceSlot {
        var stream: Int
        var slot: Int
        var partition: Int32
    }

    /// By global source id; nil when this task does not hear from that source.
    let sourceSlots: [SourceSlot?]
    let op: Operator
    var processed: Int64 = 0
    var deadLetters: Int64 = 0
    var lateWritten: Int64 = 0

    static let magic: [UInt8] = Array("KPCK".utf8)
    static let format: UInt8 = 2

    init(definition: JobDefinition, version: Int, task: Int32, plan: JobPlan) {
        precondition(task >= 0 && task < plan.tasks)
        self.definition = definition
        self.version = version
        self.task = task
        self.plan = plan
        var grace: Int64 = 0
        var roles: [Role] = Array(repeating: .events, count: definition.inputs.count)
        switch definition.operation {
        case .window(let w):
            op = .window(WindowMerger(spec: w))
        case .session(let s):
            grace = s.graceNanos
            op = .session(Sessionizer(spec: s))
        case .match(let m):
            grace = m.graceNanos
            op = .match(TicketRideMatcher(spec: m))
            roles = definition.inputs.map { $0 == m.rides ? .rides : .tickets }
        }
        var sources: [Source] = []
        for (i, input) in plan.inputs.enumerated() where task < input.partitions {
            let id = plan.sourceId(input: i, partition: task)
            var pre: WindowPreAggregator?
            if case .window(let w) = definition.operation { pre = WindowPreAggregator(spec: w, source: id) }
            sources.append(Source(input: i, id: id, topic: input.topic, partition: task, role: roles[i], rekeyed: input.route == .rekeyed,
                                  clock: StreamClock(graceNanos: grace), pre: pre))
        }
        precondition(!sources.isEmpty, "every task reads at least one input partition (tasks = the largest partition count)")
        self.sources = sources
        let streams = roles.contains(.tickets) ? 2 : 1
        var progress: [SourceProgress] = []
        var slots = [SourceSlot?](repeating: nil, count: Int(plan.sourceCount))
        for p in 0..<streams {
            let ids = plan.sources(of: task, inputs: definition.inputs.indices.filter { roles[$0].stream == p }).sorted()
            for (slot, id) in ids.enumerated() { slots[Int(id)] = SourceSlot(stream: p, slot: slot, partition: plan.source(id)!.partition) }
            progress.append(SourceProgress(sources: ids))
        }
        self.progress = progress
        sourceSlots = slots
        repartitionPosition = plan.repartitioned ? .zero : nil
    }

    /// Records a source's stream time if this task waits for it.
    func observe(source id: Int32, _ w: ReportedWatermark) {
        guard let s = sourceSlots[Int(id)] else { return }
        progress[s.stream].observe(slot: s.slot, streamTime: w.streamTime, idle: w.idle)
    }

    /// Hands a match its topics' watermarks.
    func refreshWatermarks() {
        guard case .match(let m) = op else { return }
        m.ridesWatermark = progress[0].watermark
        m.ticketsWatermark = progress[1].watermark
    }

    // MARK: encoding

    func encode(ends: OutputEnds, into w: ByteWriter) {
        w.append(Self.magic)
        w.append(Self.format)
        w.put(definition.name)
        w.put(version)
        w.put(Int64(task))
        w.put(definition.kind)
        w.put(sources.count)
        for s in sources {
            w.put(s.input)
            w.put(s.topic)
            w.put(s.position.rawValue)
            w.put(s.clock.streamTime)
            w.put(s.clock.lateEvents)
            w.put(s.idle)
            w.put(s.reported != nil)
            if let r = s.reported {
                w.put(r.streamTime.rawValue)
                w.put(r.idle)
            }
        }
        w.put(repartitionPosition != nil)
        if let r = repartitionPosition { w.put(r.rawValue) }
        w.put(ends.output.rawValue)
        w.put(ends.late.rawValue)
        w.put(ends.deadLetter.rawValue)
        w.put(processed)
        w.put(deadLetters)
        w.put(lateWritten)
        w.put(progress.count)
        for p in progress { p.encode(into: w) }
        switch op {
        case .window(let merger):
            for s in sources { s.pre!.encode(into: w) }
            merger.encode(into: w)
        case .session(let s): s.encode(into: w)
        case .match(let m): m.encode(into: w)
        }
        w.appendBigEndian(CRC32C.checksum(w.bytes))
    }

    // MARK: decoding

    /// Decodes a checkpoint into this (fresh) state; returns the output ends it records.
    func decode(_ raw: UnsafeRawBufferPointer) throws(StateReader.Failure) -> OutputEnds {
        guard raw.count > 9 else { throw StateReader.Failure(description: "file too short") }
        let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])
        let stored = raw.loadBigEndian(at: raw.count - 4, as: UInt32.self)
        guard CRC32C.checksum(body) == stored else { throw StateReader.Failure(description: "CRC-32C mismatch") }
        guard Array(body[0..<4]) == Self.magic else { throw StateReader.Failure(description: "not a checkpoint (magic)") }
        let format = body[4]
        guard format == 1 || format == Self.format else { throw StateReader.Failure(description: "unknown checkpoint format \(format)") }
        var r = StateReader(body)
        r.position = 5
        let name = try r.string()
        let v = try r.int()
        let t = try r.int64()
        let kind = try r.string()
        guard name == definition.name, v == version, t == Int64(task), kind == definition.kind else {
            throw StateReader.Failure(description: "it belongs to \(name) v\(v) task \(t) (\(kind))")
        }
        let ends = format == 1 ? try decodeLegacy(&r) : try decodeCurrent(&r)
        guard r.isAtEnd else { throw StateReader.Failure(description: "\(body.count - r.position) unexpected bytes at the end") }
        refreshWatermarks()
        return ends
    }

    private func decodeCurrent(_ r: inout StateReader) throws(StateReader.Failure) -> OutputEnds {
        let n = try r.count()
        guard n == sources.count else { throw StateReader.Failure(description: "it has \(n) sources, the job's plan \(sources.count) for this task") }
        for i in 0..<n {
            let input = try r.int()
            let topic = try r.string()
            guard input == sources[i].input, topic == sources[i].topic else {
                throw StateReader.Failure(description: "source \(i) is \(topic), expected \(sources[i].topic)")
            }
            sources[i].position = Offset(try r.int64())
            sources[i].clock = StreamClock(graceNanos: sources[i].clock.graceNanos, streamTime: try r.timestamp(), lateEvents: try r.int64())
            sources[i].idle = try r.bool()
            if try r.bool() { sources[i].reported = ReportedWatermark(streamTime: TimestampNanos(try r.int64()), idle: try r.bool()) }
        }
        try decodeRepartitionPosition(&r)
        let ends = OutputEnds(output: Offset(try r.int64()), late: Offset(try r.int64()), deadLetter: Offset(try r.int64()))
        processed = try r.int64()
        deadLetters = try r.int64()
        lateWritten = try r.int64()
        guard try r.count() == progress.count else { throw StateReader.Failure(description: "it has another number of streams") }
        for i in progress.indices { try progress[i].decode(&r) }
        switch op {
        case .window(let merger):
            for s in sources { try s.pre!.decode(&r) }
            try merger.decode(&r)
        case .session(let s): try s.decode(&r)
        case .match(let m): try m.decode(&r)
        }
        return ends
    }

    private func decodeRepartitionPosition(_ r: inout StateReader) throws(StateReader.Failure) {
        if try r.bool() {
            guard repartitionPosition != nil else { throw StateReader.Failure(description: "it has a repartition position; the job's plan has no repartition topic") }
            repartitionPosition = Offset(try r.int64())
        } else if repartitionPosition != nil {
            throw StateReader.Failure(description: "it was written without a repartition topic, but this job's inputs must be re-keyed (\(plan.explanation(keyField: definition.keyField).joined(separator: "; "))): this version's results were computed without re-keying and may be wrong; compute a new version with `kappa replay JOB.yaml`")
        }
    }

    /// Format 1: one task per partition of co-partitioned inputs, one stream time per
    /// task (two for matches), window partials numbered by task (= partition, which is
    /// the global source id of a single input).
    private func decodeLegacy(_ r: inout StateReader) throws(StateReader.Failure) -> OutputEnds {
        let n = try r.count()
        guard n == sources.count, n == definition.inputs.count else {
            throw StateReader.Failure(description: "a format-1 checkpoint of \(n) inputs does not fit this job's plan")
        }
        for i in 0..<n {
            let topic = try r.string()
            guard topic == sources[i].topic else { throw StateReader.Failure(description: "input \(i) is \(topic), expected \(sources[i].topic)") }
            sources[i].position = Offset(try r.int64())
        }
        try decodeRepartitionPosition(&r)
        let ends = OutputEnds(output: Offset(try r.int64()), late: Offset(try r.int64()), deadLetter: Offset(try r.int64()))
        processed = try r.int64()
        deadLetters = try r.int64()
        lateWritten = try r.int64()
        var reported: ReportedWatermark?
        if try r.bool() { reported = ReportedWatermark(streamTime: TimestampNanos(try r.int64()), idle: try r.bool()) }
        func single() throws(StateReader.Failure) {
            guard sources.count == 1 else {
                throw StateReader.Failure(description: "a format-1 checkpoint of a \(definition.kind) job with several inputs cannot be split per input; compute a new version with `kappa replay JOB.yaml`")
            }
        }
        switch op {
        case .window(let merger):
            try single()
            try sources[0].pre!.decode(&r)
            let legacy = try merger.decodeLegacy(&r)
            if legacy.streamTimes.count == 1 {  // not repartitioned: the task's own stream time
                if let st = legacy.streamTimes[0] { progress[0].observe(slot: 0, streamTime: st, idle: false) }
            } else {
                guard legacy.streamTimes.count == progress[0].sources.count else {
                    throw StateReader.Failure(description: "a format-1 checkpoint of \(legacy.streamTimes.count) sources does not fit this job's plan")
                }
                for slot in 0..<legacy.streamTimes.count {
                    if let st = legacy.streamTimes[slot] { progress[0].observe(slot: slot, streamTime: st, idle: false) }
                    if legacy.lastSequence[slot] > 0 { _ = progress[0].accept(slot: slot, sequence: legacy.lastSequence[slot]) }
                }
            }
            sources[0].reported = reported
        case .session(let s):
            try single()
            let st = try r.timestamp()
            let lateEvents = try r.int64()
            try s.decodeSessions(&r, closedWatermark: st)
            sources[0].clock = StreamClock(graceNanos: sources[0].clock.graceNanos, streamTime: st, lateEvents: lateEvents)
            if let st {
                sources[0].reported = ReportedWatermark(streamTime: st, idle: false)
                progress[0].observe(slot: 0, streamTime: st, idle: false)
            }
        case .match(let m):
            let c = try m.decodeLegacy(&r, partition: task)
            for i in sources.indices {
                let rides = sources[i].role == .rides
                let st = rides ? c.ridesStreamTime : c.ticketsStreamTime
                sources[i].clock = StreamClock(graceNanos: sources[i].clock.graceNanos, streamTime: st, lateEvents: rides ? c.lateRides : c.lateTickets)
                if let st {
                    sources[i].reported = ReportedWatermark(streamTime: st, idle: false)
                    observe(source: sources[i].id, sources[i].reported!)
                }
            }
        }
        return ends
    }

    // MARK: for people

    /// What `jobs describe` shows of this task.
    func status() -> TaskStatus {
        func ts(_ v: TimestampNanos?) -> String? { v?.decimalSeconds }
        var offsets: [String: Int64] = [:]
        for s in sources { offsets[s.topic] = s.position.rawValue }
        var waited: [TaskStatus.Source] = []
        for p in progress {
            for (slot, id) in p.sources.enumerated() {
                let (input, partition) = plan.source(id)!
                waited.append(TaskStatus.Source(source: "\(plan.inputs[input].topic)/\(partition)", streamTime: ts(p.streamTimes[slot]), idle: p.idle[slot]))
            }
        }
        var s = TaskStatus(task: task, processed: processed, late: lateWritten, deadLetters: deadLetters, inputOffsets: offsets,
                           repartitionOffset: repartitionPosition?.rawValue, idleInputs: sources.filter(\.idle).map(\.topic),
                           streamTime: ts(sources.compactMap(\.streamTime).max()), sources: waited,
                           duplicatesDropped: progress.reduce(0) { $0 + $1.duplicates }, lateAtOwner: 0)
        switch op {
        case .window(let merger):
            s.watermark = ts(progress[0].watermark)
            s.openWindows = sources.reduce(0) { $0 + ($1.pre?.openWindows ?? 0) } + merger.openWindows
            s.lateAtOwner = merger.lateContributions
        case .session(let sessionizer):
            s.watermark = ts(progress[0].watermark)
            s.openSessions = sessionizer.openSessions
            s.lateAtOwner = sessionizer.lateAtOwner
        case .match(let m):
            s.ridesWatermark = ts(progress[0].watermark)
            s.ticketsWatermark = ts(progress[1].watermark)
            s.pendingTickets = m.stateSize.pendingTickets
            s.ridesHeld = m.stateSize.rides
        }
        return s
    }

    /// Results not yet final, for queries. Window partials still held by the sources
    /// are returned separately (`openPartials`): the owner of each key merges them.
    func openRows() -> [ResultReader.Row] {
        switch op {
        case .window(let merger):
            return merger.openResults().map {
                ResultReader.Row(identity: ResultReader.identity($0.key, $0.windowStart), key: $0.key,
                                 json: $0.json(merger.spec, fields: merger.spec.fields), rideId: nil)
            }
        case .session(let s):
            return s.openResults().map {
                ResultReader.Row(identity: ResultReader.identity($0.0, $0.1.start), key: $0.0, json: $0.1.json(key: $0.0), rideId: nil)
            }
        case .match(let m):
            return m.openResults().map { ResultReader.Row(identity: $0.ticketId, key: $0.ticketId, json: $0.json(), rideId: $0.rideId) }
        }
    }

    func openPartials() -> [Contribution] { sources.flatMap { $0.pre?.openPartials() ?? [] } }
}
