import Dispatch
import KappaCore
import KappaFormat
import KappaGroups
import KappaLog

/// Runs the tasks of one job version that this process owns. Tasks (see `JobPlan`) are
/// the partitions of the version's output topic, handed out by a consumer group named
/// `JOB.vN`: several processes
/// running the same version split its tasks, and when one dies the others take its
/// tasks over within a rebalance (their checkpoints make that exactly-once).
/// The caller drives it: `runOnce()` in a loop, waiting on the inputs when it returns 0.
/// Not thread-safe.
public final class JobRunner {
    public let definition: JobDefinition
    public let version: Int
    public let plan: JobPlan
    public var partitions: Int32 { plan.tasks }
    let directory: DataDirectory
    let member: GroupMember
    let fsync: FsyncPolicy
    let clock: any WallClock
    public private(set) var tasks: [Int32: JobTask] = [:]
    private var lastRebalanceNanos: Int64 = 0
    /// The repartition topic's writer, shared by this process's tasks (jobs that
    /// re-key an input).
    private var repartitionWriter: SharedTopicWriter?
    /// A busy task checkpoints at most this often; an idle one as soon as it has news.
    public var checkpointIntervalNanos: Int64 = 1_000_000_000
    public var rebalanceIntervalNanos: Int64 = 250_000_000
    /// How long one task may step within a round before the round moves on.
    public var sliceNanos: Int64 = 20_000_000
    /// Called after each checkpoint a round takes, with the task and how long the
    /// checkpoint took (for metrics); from the round's worker threads, so it must be
    /// thread-safe.
    public var onCheckpoint: (@Sendable (_ task: Int32, _ durationNanos: Int64) -> Void)?

    public init(directory: DataDirectory, definition: JobDefinition, version: Int, memberId: String,
                fsync: FsyncPolicy = .default, clock: any WallClock = SystemClock()) throws(KappaError) {
        self.directory = directory
        self.definition = definition
        self.version = version
        self.fsync = fsync
        self.clock = clock
        plan = try JobVersions.prepare(definition, version: version, directory: directory)
        let store = try GroupStore(directory: directory, group: "\(definition.name).v\(version)")
        member = try GroupMember(store: store, id: memberId, topics: [JobRegistry.outputTopic(definition, version)])
    }

    deinit { member.leave() }

    /// Takes and gives back tasks per the group's assignment (a released task is
    /// checkpointed first). Rate-limited; `force` skips the limit.
    public func rebalance(force: Bool = false) throws(KappaError) {
        let now = monotonicNanos()
        guard force || now - lastRebalanceNanos >= rebalanceIntervalNanos else { return }
        lastRebalanceNanos = now
        let change = try member.rebalance { (tp) throws(KappaError) in
            if let t = tasks[tp.partition], t.needsCheckpoint { try t.checkpoint() }
            tasks[tp.partition] = nil
        }
        for tp in change.acquired {
            if repartitionWriter == nil, plan.repartitioned {
                repartitionWriter = try SharedTopicWriter(directory: directory, topic: JobRegistry.repartitionTopic(definition, version))
            }
            tasks[tp.partition] = try JobTask(directory: directory, definition: definition, version: version, task: tp.partition,
                                              plan: plan, fsync: fsync, clock: clock, repartitionWriter: repartitionWriter)
        }
    }

    /// One round over every owned task; returns the records read. Tasks share nothing,
    /// so the round runs them on all cores; each task is driven by one thread at a time
    /// and steps until it has read nothing or has run for `sliceNanos` — slices rather
    /// than one step per round, so that a core does not wait at the end of every round
    /// for the slowest task's step. A task that has caught up checkpoints at once (live
    /// output is visible at once); a busy one after a full interval without one.
    @discardableResult
    public func runOnce(budget: Int = 4096) throws(KappaError) -> Int {
        try rebalance()
        let list = tasks.keys.sorted().map { tasks[$0]! }
        let interval = checkpointIntervalNanos
        let slice = sliceNanos
        let onCheckpoint = self.onCheckpoint
        var total = 0
        for (t, result) in zip(list, Self.concurrently(list, { (t) throws(KappaError) -> Int in
            let start = monotonicNanos()
            var total = 0
            while true {
                let n = try t.step(budget: budget)
                total += n
                let now = monotonicNanos()
                if t.needsCheckpoint && (n == 0 || now - t.lastCheckpointNanos >= interval) {
                    try t.checkpoint()
                    t.lastCheckpointNanos = now
                    onCheckpoint?(t.task, monotonicNanos() - now)
                }
                if n == 0 || now - start >= slice { break }
            }
            return total
        })) {
            switch result {
            case .success(let n): total += n
            case .failure(let e): throw stopped(t, e)
            }
        }
        return total
    }

    /// Runs `body` once per task, on all cores at once — tasks share nothing, and each is
    /// driven by one thread at a time — and returns the outcomes in `list`'s order.
    static func concurrently<R>(_ list: [JobTask], _ body: (JobTask) throws(KappaError) -> R) -> [Result<R, KappaError>] {
        let results = Transfer(UnsafeMutableBufferPointer<Result<R, KappaError>>.allocate(capacity: list.count))
        defer { results.value.deallocate() }
        // Each iteration is the only user of its task and of its result slot.
        let shared = Transfer(list)
        withoutActuallyEscaping(body) { body in
            let run = Transfer(body)
            DispatchQueue.concurrentPerform(iterations: list.count) { i in
                do throws(KappaError) {
                    results.value.initializeElement(at: i, to: .success(try run.value(shared.value[i])))
                } catch {
                    results.value.initializeElement(at: i, to: .failure(error))
                }
            }
        }
        let out = Array(results.value)
        _ = results.value.deinitialize()
        return out
    }

    /// A task's failure as the daemon reports it: which task, why, and that nothing after
    /// its last checkpoint counts — its outputs are cut back to it when it starts again.
    /// A failed write (disk full, I/O error) left no torn batch behind (the log undoes it).
    func stopped(_ task: JobTask, _ e: KappaError) -> KappaError {
        var out = e
        let at = task.inputPositions.map { "\($0.0):\($0.1)" }.joined(separator: ", ")
        let advice = e.isDiskFull ? "; free space, then start it again: it resumes from its last checkpoint"
            : "; it resumes from its last checkpoint when started again"
        out.message = "\(definition.name).v\(version) task \(task.task) stopped (input at \(at); its last checkpoint stands): \(e.message)\(advice)"
        return out
    }

    public func checkpointAll() throws(KappaError) {
        // A task with nothing new since its last checkpoint has that checkpoint on disk
        // already; one that never checkpointed writes one (so `jobs describe` shows it).
        for p in tasks.keys.sorted() where tasks[p]!.needsCheckpoint || !tasks[p]!.hasCheckpoint { try tasks[p]!.checkpoint() }
    }

    /// Set by a process that exits right after `stop` (a replay): the tasks' operator
    /// state (a match's list per user, open windows and sessions) is then left for the
    /// exit to reclaim instead of being freed object by object — ~50 ms of one core at
    /// the end of a 1M-ride match replay. Files and writers still close normally.
    public var keepsStateUntilExit = false

    /// Checkpoints and leaves the group (the clean stop).
    public func stop() throws(KappaError) {
        // The last checkpoints on all cores: a match's is its every user's latest ride.
        let due = tasks.keys.sorted().map { tasks[$0]! }.filter { $0.needsCheckpoint || !$0.hasCheckpoint }
        for (t, result) in zip(due, Self.concurrently(due, { (t) throws(KappaError) in try t.checkpoint() })) {
            if case .failure(let e) = result { throw stopped(t, e) }
        }
        if keepsStateUntilExit {
            for t in tasks.values { _ = Unmanaged.passRetained(t.state) }
        }
        tasks.removeAll()
        member.leave()
    }

    /// Directories to watch for new input.
    public var watchedDirectories: [String] {
        tasks.values.flatMap { $0.readPartitions.map(directory.partitionPath) }
    }

    /// Records read so far and records in the inputs now, over the owned tasks.
    public func progress() throws(KappaError) -> (done: Int64, total: Int64) {
        var done: Int64 = 0
        var total: Int64 = 0
        for t in tasks.values {
            for (tp, position) in t.inputPositions {
                let status = try PartitionStatus.read(directory, tp)
                done += position - status.startOffset
                total += status.endOffset - status.startOffset
            }
        }
        return (done, total)
    }
}

/// Creating a version's topics and checking its inputs.
public enum JobVersions {
    /// Checks that the inputs exist; creates the version's output and internal topics if
    /// missing. Returns the plan (tasks = partitions of each of those topics).
    @discardableResult
    public static func prepare(_ def: JobDefinition, version: Int, directory: DataDirectory) throws(KappaError) -> JobPlan {
        let plan = try JobPlan.make(def, directory: directory)
        let n = plan.tasks
        let outputKey: String
        if case .match(let m) = def.operation { outputKey = m.ticketIdField } else { outputKey = def.keyField }
        try ensure(JobRegistry.outputTopic(def, version), TopicConfig(partitions: n, keyField: outputKey, transactional: true), directory)
        try ensure(JobRegistry.lateTopic(def, version), TopicConfig(partitions: n, keyField: def.keyField, transactional: true), directory)
        try ensure(JobRegistry.deadLetterTopic(def, version), TopicConfig(partitions: n, keyField: def.keyField, transactional: true, rawValues: true), directory)
        if plan.repartitioned {
            // Uncompressed: its records are small varint-packed binary that LZ4 shrinks by a
            // quarter at most, and it is read once, right after it is written (page cache).
            // Rolled by size only: no retention applies to it, and a roll per week of event
            // time (the default) cost each partition three new files and their fsyncs per
            // week of history replayed.
            try ensure(JobRegistry.repartitionTopic(def, version),
                       TopicConfig(partitions: n, compression: .none, segmentMillis: Self.neverRollMillis, keyField: def.keyField), directory)
        }
        return plan
    }

    /// Checks that the inputs exist; returns the plan.
    @discardableResult
    public static func checkInputs(_ def: JobDefinition, directory: DataDirectory) throws(KappaError) -> JobPlan {
        try JobPlan.make(def, directory: directory)
    }

    static func ensure(_ topic: String, _ config: TopicConfig, _ directory: DataDirectory) throws(KappaError) {
        guard !directory.topicExists(topic) else { return }
        do {
            try directory.createTopic(topic, config: config)
        } catch where error.code == .alreadyExists {}  // another process made it first
    }

    /// A segment age longer than the whole range of event times (1677–2262).
    static let neverRollMillis = Int64.max / 1_000_000

    /// Deletes a version's topics and checkpoints.
    public static func drop(_ def: JobDefinition, version: Int, directory: DataDirectory) throws(KappaError) {
        for t in [JobRegistry.outputTopic(def, version), JobRegistry.lateTopic(def, version), JobRegistry.deadLetterTopic(def, version),
                  JobRegistry.repartitionTopic(def, version)] where directory.topicExists(t) {
            try directory.deleteTopic(t)
        }
        try directory.fileSystem.removeTree(JobRegistry(directory: directory).versionPath(def.name, version))
        try directory.fileSystem.removeTree(directory.groupsPath + "/\(def.name).v\(version)")
    }
}
