import KappaCore
import KappaFormat
import KappaLog

/// Checkpoints: the task's `TaskState` and the end offsets of what it wrote, in one
/// atomically replaced file (layout in `TaskState`), then its outputs made visible.
extension JobTask {
    var checkpointPath: String { registry.checkpointPath(definition.name, version, task: task) }
    var statusPath: String { registry.statusPath(definition.name, version, task: task) }

    /// Flushes every output, then writes the checkpoint, then makes the outputs visible.
    /// The order is what makes a crash at any point safe: see the type's contract.
    public func checkpoint() throws(KappaError) {
        try sender?.flush()
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
            // What the checkpoint says was sent or written must survive with it.
            try sender?.sync()
            try output.sync()
            try late.sync()
            try deadLetter.sync()
            lastSyncNanos = now
        }
        let w = ByteWriter(capacity: 1 << 16)
        state.encode(ends: TaskState.OutputEnds(output: output.end, late: late.end, deadLetter: deadLetter.end), into: w)
        let fs = directory.fileSystem
        try fs.makeDirectories(registry.versionPath(definition.name, version) + "/tasks")
        try fs.writeAtomically(w.bytes, to: checkpointPath, sync: durable)
        // Beside it, for `jobs describe`: what the checkpoint holds. A second file, so a
        // kill -9 between the two renames leaves the status of the checkpoint before;
        // `restore()` puts it right.
        try fs.writeAtomically(statusBytes, to: statusPath, sync: false)
        try output.publish()
        try late.publish()
        try deadLetter.publish()
        changedSinceCheckpoint = false
        hasCheckpoint = true
    }

    /// The status file's content: the state's status, one JSON line.
    var statusBytes: [UInt8] { state.status().json() + [0x0A] }

    /// Loads the last checkpoint (or starts from offset 0), cuts the outputs back to it,
    /// makes the status file describe it and positions the readers.
    func restore() throws(KappaError) {
        var ends = TaskState.OutputEnds()
        if directory.fileSystem.exists(checkpointPath) {
            ends = try Self.readCheckpoint(checkpointPath, directory.fileSystem) { (raw) throws(StateReader.Failure) in try state.decode(raw) }
            hasCheckpoint = true
        }
        try output.rollBack(to: ends.output)
        try late.rollBack(to: ends.late)
        try deadLetter.rollBack(to: ends.deadLetter)
        try restoreStatus()
        for i in readers.indices { try readers[i].seek(to: state.sources[i].position) }
        if let r = repartitionReader, let p = state.repartitionPosition { try r.seek(to: p) }
    }

    /// Rewrites the status file when it does not describe the checkpoint just loaded. A
    /// kill -9 after the checkpoint's rename and before the status's (a directory fsync
    /// apart when the checkpoint is synced) leaves the status of the checkpoint before;
    /// a task with nothing new to read never checkpoints again, so without this the
    /// status — and the lag `jobs describe` computes from it — would stay behind forever
    /// while the task sits caught up. A status without a checkpoint (a power loss kept
    /// the one and not the other) describes nothing and goes.
    func restoreStatus() throws(KappaError) {
        let fs = directory.fileSystem
        guard hasCheckpoint else {
            if fs.exists(statusPath) { try fs.remove(statusPath) }
            return
        }
        let bytes = statusBytes
        var current: [UInt8]?
        do {
            // Read only when it may be equal: a file of another size is rewritten unread.
            let file = try fs.openFile(statusPath, mode: .readOnly)
            if try file.size() == Int64(bytes.count) { current = try file.readAll(limit: bytes.count) }
        } catch where error.code == .notFound {}
        guard current != bytes else { return }
        try fs.writeAtomically(bytes, to: statusPath, sync: false)
    }

    /// The open (not yet final) results of a version, from its task checkpoints, read
    /// without opening anything for writing (for `kappa query` while a daemon runs).
    /// Window partials still held by the sources are merged with the owners' windows.
    public static func openResults(directory: DataDirectory, definition: JobDefinition, version: Int) throws(KappaError) -> [ResultReader.Row] {
        try storeSnapshot(directory: directory, definition: definition, version: version).openRows
    }

    /// Reads a checkpoint file and decodes it with `body`; a decoding failure is a
    /// `corruptData` error naming the file.
    static func readCheckpoint<T>(_ path: String, _ fs: any FileSystem, _ body: (UnsafeRawBufferPointer) throws(StateReader.Failure) -> T) throws(KappaError) -> T {
        let bytes = try fs.openFile(path, mode: .readOnly).readAll(limit: 1 << 30)
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 8)
        defer { raw.deallocate() }
        raw.copyBytes(from: bytes)
        do throws(StateReader.Failure) {
            return try body(UnsafeRawBufferPointer(rebasing: raw[0..<bytes.count]))
        } catch {
            throw KappaError(.corruptData, "task checkpoint is unusable: \(error.description)", path: path)
        }
    }

    /// What `jobs describe` and the status line show of this task.
    public func status() -> TaskStatus { state.status() }

    /// The largest stream time among this task's input partitions.
    public var streamTime: TimestampNanos? { state.sources.compactMap(\.streamTime).max() }

    /// Input offsets now (for progress and lag).
    public var inputPositions: [(TopicPartition, Offset)] {
        zip(readers, state.sources).map { ($0.topicPartition, $1.position) }
    }

    /// Every partition the task reads: its inputs' and the repartition topic's.
    public var readPartitions: [TopicPartition] { readers.map(\.topicPartition) + (repartitionReader.map { [$0.topicPartition] } ?? []) }

    /// Something happened since the last checkpoint: records were read, results written
    /// (an idle timeout can release results with no new input), or a watermark sent.
    public var needsCheckpoint: Bool { changedSinceCheckpoint || output.unpublished || late.unpublished || deadLetter.unpublished }
}
