import KappaCore
import KappaFormat
import KappaLog

/// A task's checkpoint file, `DATA/jobs/JOB/vN/tasks/P.ckpt`, replaced atomically:
///
/// ```
/// "KPCK" format(1)  job version task kind
/// inputs: count, (topic, next offset)…   repartition: present, next offset
/// ends of the output, late and dead-letter partitions
/// counters (processed, dead letters, late), last watermark sent
/// operator state (see each operator's encode)
/// CRC-32C of everything above (4 bytes, big-endian)
/// ```
/// A checkpoint that fails its CRC or names another job, version or task is refused
/// with an error, never used.
extension JobTask {
    static let magic: [UInt8] = Array("KPCK".utf8)
    static let format: UInt8 = 1

    var checkpointPath: String { registry.checkpointPath(definition.name, version, task: task) }

    /// Flushes every output, then writes the checkpoint, then makes the outputs visible.
    /// The order is what makes a crash at any point safe: see the type's contract.
    public func checkpoint() throws(KappaError) {
        try repartition?.flush()
        try output.flush()
        try late.flush()
        try deadLetter.flush()
        let now = clock.nowNanos()
        let durable: Bool
        switch fsync {
        case .always: durable = true
        case .never: durable = false
        case .interval(let ms): durable = now - lastSyncNanos >= ms * 1_000_000
        }
        if durable {
            try output.sync()
            try late.sync()
            try deadLetter.sync()
            lastSyncNanos = now
        }
        let w = ByteWriter(capacity: 1 << 16)
        w.append(Self.magic)
        w.append(Self.format)
        w.put(definition.name)
        w.put(version)
        w.put(Int64(task))
        w.put(definition.kind)
        w.put(inputs.count)
        for i in inputs {
            w.put(i.topic)
            w.put(i.position.rawValue)
        }
        w.put(repartitionInput != nil)
        if let r = repartitionInput { w.put(r.position.rawValue) }
        w.put(output.end.rawValue)
        w.put(late.end.rawValue)
        w.put(deadLetter.end.rawValue)
        w.put(processed)
        w.put(deadLetters)
        w.put(lateWritten)
        w.put(lastWatermark != nil)
        if let (st, idle) = lastWatermark {
            w.put(st)
            w.put(idle)
        }
        switch op {
        case .window(let pre, let merger):
            pre.encode(into: w)
            merger.encode(into: w)
        case .session(let s): s.encode(into: w)
        case .match(let m): m.encode(into: w)
        }
        w.appendBigEndian(CRC32C.checksum(w.bytes))
        try FS.makeDirectories(registry.versionPath(definition.name, version) + "/tasks")
        try FS.writeAtomically(Array(w.bytes), to: checkpointPath, sync: durable)
        // Beside it, for `jobs describe`: what the checkpoint holds, as JSON.
        try FS.writeAtomically(Array(statusJSON().utf8) + [0x0A], to: statusPath, sync: false)
        try output.publish()
        try late.publish()
        try deadLetter.publish()
        changedSinceCheckpoint = false
        hasCheckpoint = true
    }

    /// Loads the last checkpoint (or starts from offset 0), cuts the outputs back to it
    /// and positions the readers.
    func restore() throws(KappaError) {
        var outputEnds: (Offset, Offset, Offset) = (.zero, .zero, .zero)
        if FS.exists(checkpointPath) {
            outputEnds = try Self.readCheckpoint(checkpointPath) { (raw) throws(StateReader.Failure) in try decode(raw) }
            hasCheckpoint = true
        }
        try output.rollBack(to: outputEnds.0)
        try late.rollBack(to: outputEnds.1)
        try deadLetter.rollBack(to: outputEnds.2)
        for i in inputs.indices { try inputs[i].reader.seek(to: inputs[i].position) }
        if let r = repartitionInput { try r.reader.seek(to: r.position) }
    }

    private func decode(_ raw: UnsafeRawBufferPointer) throws(StateReader.Failure) -> (Offset, Offset, Offset) {
        let c = try Self.decodeCheckpoint(raw, definition: definition, version: version, task: task,
                                          inputTopics: inputs.map(\.topic), hasRepartition: repartitionInput != nil, op: op)
        for i in inputs.indices { inputs[i].position = c.positions[i] }
        if let p = c.repartitionPosition { repartitionInput!.position = p }
        processed = c.processed
        deadLetters = c.deadLetters
        lateWritten = c.late
        lastWatermark = c.lastWatermark
        return c.ends
    }

    struct CheckpointContents {
        var positions: [Offset] = []
        var repartitionPosition: Offset?
        var ends: (Offset, Offset, Offset) = (.zero, .zero, .zero)
        var processed: Int64 = 0
        var deadLetters: Int64 = 0
        var late: Int64 = 0
        var lastWatermark: (Int64, Bool)?
    }

    /// Decodes a checkpoint into `op` (fresh operator objects) and the offsets it holds.
    static func decodeCheckpoint(_ raw: UnsafeRawBufferPointer, definition: JobDefinition, version: Int, task: Int32,
                                 inputTopics: [String], hasRepartition: Bool, op: Operator) throws(StateReader.Failure) -> CheckpointContents {
        guard raw.count > 9 else { throw StateReader.Failure(description: "file too short") }
        let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])
        let stored = raw.loadBigEndian(at: raw.count - 4, as: UInt32.self)
        guard CRC32C.checksum(body) == stored else { throw StateReader.Failure(description: "CRC-32C mismatch") }
        guard Array(body[0..<4]) == Self.magic, body[4] == Self.format else { throw StateReader.Failure(description: "not a checkpoint (magic or format)") }
        var r = StateReader(body)
        r.position = 5
        let name = try r.string()
        let v = try r.int()
        let t = try r.int64()
        let kind = try r.string()
        guard name == definition.name, v == version, t == Int64(task), kind == definition.kind else {
            throw StateReader.Failure(description: "it belongs to \(name) v\(v) task \(t) (\(kind))")
        }
        var c = CheckpointContents()
        let n = try r.count()
        guard n == inputTopics.count else { throw StateReader.Failure(description: "it has \(n) inputs, the job \(inputTopics.count)") }
        for i in 0..<n {
            let topic = try r.string()
            guard topic == inputTopics[i] else { throw StateReader.Failure(description: "input \(i) is \(topic), expected \(inputTopics[i])") }
            c.positions.append(Offset(try r.int64()))
        }
        if try r.bool() {
            guard hasRepartition else { throw StateReader.Failure(description: "unexpected repartition position") }
            c.repartitionPosition = Offset(try r.int64())
        }
        c.ends = (Offset(try r.int64()), Offset(try r.int64()), Offset(try r.int64()))
        c.processed = try r.int64()
        c.deadLetters = try r.int64()
        c.late = try r.int64()
        if try r.bool() { c.lastWatermark = (try r.int64(), try r.bool()) }
        switch op {
        case .window(let pre, let merger):
            try pre.decode(&r)
            try merger.decode(&r)
        case .session(let s): try s.decode(&r)
        case .match(let m): try m.decode(&r)
        }
        guard r.isAtEnd else { throw StateReader.Failure(description: "\(body.count - r.position) unexpected bytes at the end") }
        return c
    }

    /// The open (not yet final) results of a version, from its task checkpoints, read
    /// without touching anything (for `kappa query` while a daemon runs). Window
    /// partials still held by first stages are merged with the second stages' windows.
    public static func openResults(directory: DataDirectory, definition: JobDefinition, version: Int,
                                   partitions: Int32) throws(KappaError) -> [ResultReader.Row] {
        let repartitioned = try needsRepartition(definition, directory: directory)
        var ops: [Operator] = []
        for task in 0..<partitions {
            let op = makeOperator(definition, task: task, partitions: partitions, repartitioned: repartitioned)
            if try load(directory: directory, definition: definition, version: version, task: task, repartitioned: repartitioned, into: op) {
                ops.append(op)
            }
        }
        guard case .window(let w) = definition.operation else { return ops.flatMap { openResults($0) } }
        var merged: [String: WindowResult] = [:]
        func add(_ key: String, _ start: Int64, _ state: AggregateState, _ lineage: Lineage) {
            let id = key + "\u{1F}\(start)"
            if var r = merged[id] {
                r.state.merge(state)
                r.lineage.merge(lineage)
                merged[id] = r
            } else {
                merged[id] = WindowResult(key: key, windowStart: start, windowEnd: start + w.sizeNanos, state: state, lineage: lineage, final: false)
            }
        }
        for case .window(let pre, let merger) in ops {
            for c in pre.openPartials() { add(c.key, c.windowStart, c.state, c.lineage) }
            for r in merger.openResults() { add(r.key, r.windowStart, r.state, r.lineage) }
        }
        return merged.values.sorted { ($0.windowStart, $0.key) < ($1.windowStart, $1.key) }.map {
            ResultReader.Row(identity: ResultReader.identity($0.key, TimestampNanos($0.windowStart)), key: $0.key, json: $0.json(w, fields: w.fields), rideId: nil)
        }
    }

    private static func load(directory: DataDirectory, definition: JobDefinition, version: Int, task: Int32, repartitioned: Bool,
                             into op: Operator) throws(KappaError) -> Bool {
        let path = JobRegistry(directory: directory).checkpointPath(definition.name, version, task: task)
        guard FS.exists(path) else { return false }
        _ = try readCheckpoint(path) { (raw) throws(StateReader.Failure) in
            try decodeCheckpoint(raw, definition: definition, version: version, task: task,
                                 inputTopics: definition.inputs, hasRepartition: repartitioned, op: op)
        }
        return true
    }

    /// Reads a checkpoint file and decodes it with `body`; a decoding failure is a
    /// `corruptData` error naming the file.
    static func readCheckpoint<T>(_ path: String, _ body: (UnsafeRawBufferPointer) throws(StateReader.Failure) -> T) throws(KappaError) -> T {
        let bytes = try File(path: path, mode: .readOnly).readAll(limit: 1 << 30)
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 8)
        defer { raw.deallocate() }
        raw.copyBytes(from: bytes)
        do throws(StateReader.Failure) {
            return try body(UnsafeRawBufferPointer(rebasing: raw[0..<bytes.count]))
        } catch {
            throw KappaError(.corruptData, "task checkpoint is unusable: \(error.description)", path: path)
        }
    }

    /// What `jobs describe` shows of this task.
    public func statusJSON() -> String {
        var fields: [String] = ["\"task\":\(task)", "\"processed\":\(processed)", "\"late\":\(lateWritten)", "\"dead_letters\":\(deadLetters)"]
        fields.append("\"input_offsets\":{" + inputs.map { "\"\($0.topic)\":\($0.position)" }.joined(separator: ",") + "}")
        fields.append("\"idle_inputs\":[" + inputs.filter(\.idle).map { "\"\($0.topic)\"" }.joined(separator: ",") + "]")
        func ts(_ v: Int64?) -> String { v.map { "\"\(TimestampNanos($0).decimalSeconds)\"" } ?? "null" }
        switch op {
        case .window(let pre, let merger):
            fields.append("\"stream_time\":\(ts(pre.streamTime))")
            fields.append("\"watermark\":\(ts(merger.watermark))")
            fields.append("\"source_stream_times\":[" + merger.sourceStreamTimes.map(ts).joined(separator: ",") + "]")
            fields.append("\"open_windows\":\(pre.openWindows + merger.openWindows)")
        case .session(let s):
            fields.append("\"stream_time\":\(ts(s.streamTime))")
            fields.append("\"open_sessions\":\(s.openSessions)")
        case .match(let m):
            fields.append("\"rides_stream_time\":\(ts(m.ridesStreamTime))")
            fields.append("\"tickets_stream_time\":\(ts(m.ticketsStreamTime))")
            fields.append("\"pending_tickets\":\(m.stateSize.pendingTickets)")
            fields.append("\"rides_held\":\(m.stateSize.rides)")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// Input offsets now (for progress and lag).
    public var inputPositions: [(TopicPartition, Offset)] {
        inputs.map { ($0.reader.topicPartition, $0.position) } + (repartitionInput.map { [($0.reader.topicPartition, $0.position)] } ?? [])
    }

    /// Something happened since the last checkpoint: records were read, results written
    /// (an idle timeout can release results with no new input), or a watermark sent.
    public var needsCheckpoint: Bool { changedSinceCheckpoint || output.unpublished || late.unpublished || deadLetter.unpublished }

    static func openResults(_ op: Operator) -> [ResultReader.Row] {
        switch op {
        case .window(let pre, let merger):
            return merger.openResults().map {
                ResultReader.Row(identity: ResultReader.identity($0.key, TimestampNanos($0.windowStart)), key: $0.key,
                                 json: $0.json(pre.spec, fields: pre.spec.fields), rideId: nil)
            }
        case .session(let s):
            return s.openResults().map {
                ResultReader.Row(identity: ResultReader.identity($0.0, TimestampNanos($0.1.start)), key: $0.0, json: $0.1.json(key: $0.0), rideId: nil)
            }
        case .match(let m):
            return m.openResults().map { ResultReader.Row(identity: $0.ticketId, key: $0.ticketId, json: $0.json(), rideId: $0.rideId) }
        }
    }

    var statusPath: String { checkpointPath.replacingSuffix(".ckpt", with: ".status.json") }
}

extension String {
    func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self + replacement
    }
}
