import KappaCore
import KappaLog

/// What a version's task checkpoints hold, read together without opening anything for
/// writing: per task the `TaskStatus` (the input offsets and stream times its results
/// reflect) and the end of its output partition at that checkpoint, plus every open
/// (not yet final) row. For readers that serve a store (`kappa serve`'s HTTP API): the
/// output records below `outputEnd` and the open rows are exactly the results of the
/// checkpoint whose status is given — a task cuts its output back to `outputEnd` if it
/// restarts, so nothing below it is ever taken back.
public struct StoreSnapshot: Sendable {
    public struct Task: Sendable, Equatable {
        public var task: Int32
        public var status: TaskStatus
        /// Output records of this task below this offset belong to this checkpoint.
        public var outputEnd: Offset
        /// Size of the checkpoint file (the state size).
        public var checkpointBytes: Int
    }

    /// Tasks that have a checkpoint, by task number.
    public var tasks: [Task]
    /// Open rows; window partials still held by sources are merged into their windows.
    public var openRows: [ResultReader.Row]
}

extension JobTask {
    /// Reads every task checkpoint of the version (see `StoreSnapshot`).
    public static func storeSnapshot(directory: DataDirectory, definition: JobDefinition, version: Int) throws(KappaError) -> StoreSnapshot {
        let plan = try JobPlan.make(definition, directory: directory)
        let registry = JobRegistry(directory: directory)
        var states: [TaskState] = []
        var tasks: [StoreSnapshot.Task] = []
        for task in 0..<plan.tasks {
            let path = registry.checkpointPath(definition.name, version, task: task)
            guard directory.fileSystem.exists(path) else { continue }
            let s = TaskState(definition: definition, version: version, task: task, plan: plan)
            var size = 0
            let ends = try readCheckpoint(path, directory.fileSystem) { (raw) throws(StateReader.Failure) in
                size = raw.count
                return try s.decode(raw)
            }
            states.append(s)
            tasks.append(StoreSnapshot.Task(task: task, status: s.status(), outputEnd: ends.output, checkpointBytes: size))
        }
        return StoreSnapshot(tasks: tasks, openRows: openRows(states, definition))
    }

    /// The open rows of these task states; window partials still held by the sources are
    /// merged with the owners' windows.
    static func openRows(_ states: [TaskState], _ definition: JobDefinition) -> [ResultReader.Row] {
        guard case .window(let w) = definition.operation else { return states.flatMap { $0.openRows() } }
        var merged: [String: WindowResult] = [:]
        func add(_ key: String, _ start: TimestampNanos, _ state: AggregateState, _ lineage: Lineage) {
            let id = key + "\u{1F}\(start)"
            if var r = merged[id] {
                r.state.merge(state)
                r.lineage.merge(lineage)
                merged[id] = r
            } else {
                merged[id] = WindowResult(key: key, windowStart: start, windowEnd: start + w.sizeNanos, state: state, lineage: lineage, final: false)
            }
        }
        for s in states {
            for c in s.openPartials() { add(c.key, c.windowStart, c.state, c.lineage) }
            if case .window(let merger) = s.op { for r in merger.openResults() { add(r.key, r.windowStart, r.state, r.lineage) } }
        }
        return merged.values.sorted { ($0.windowStart, $0.key) < ($1.windowStart, $1.key) }.map {
            ResultReader.Row(identity: ResultReader.identity($0.key, $0.windowStart), key: $0.key, json: $0.json(w, fields: w.fields), rideId: nil)
        }
    }
}
