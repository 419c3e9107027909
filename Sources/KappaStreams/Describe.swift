import Foundation
import KappaCore
import KappaGroups
import KappaJSON
import KappaLog

/// The JSON descriptions that `kappa topics list|describe`, `kappa jobs list|describe` and
/// the HTTP API (`/v1/topics`, `/v1/jobs`) print: one place, so the two front ends agree.
public enum Describe {
    /// `topics list`: one object per topic.
    public static func topic(_ name: String, _ c: TopicConfig) -> String {
        "{\"topic\":\(JSONEscape.quoted(name)),\"partitions\":\(c.partitions),\"compression\":\"\(c.compression)\",\"key_field\":\(JSONEscape.quoted(c.partitionKeyField))}"
    }

    /// `topics describe`: one object per partition.
    public static func partition(_ name: String, _ p: Int32, _ s: PartitionStatus, _ c: TopicConfig) -> String {
        "{\"topic\":\(JSONEscape.quoted(name)),\"partition\":\(p),\"start_offset\":\(s.startOffset),\"end_offset\":\(s.endOffset),\"recovery_point\":\(s.recoveryPoint.map { String($0.rawValue) } ?? "null"),\"records\":\(s.endOffset - s.startOffset),\"bytes\":\(s.bytes),\"segments\":\(s.segments),\"compression\":\"\(c.compression)\",\"retention_ms\":\(c.retentionMillis.map(String.init) ?? "null"),\"retention_bytes\":\(c.retentionBytes.map(String.init) ?? "null")}"
    }

    /// `jobs list`: one object per job.
    public static func job(_ name: String, _ r: JobRecord) -> String {
        let versions = r.versions.map { "\($0.version)" }.joined(separator: ",")
        let def = r.current.flatMap { r.version($0) }?.definition ?? r.latest?.definition
        return "{\"job\":\(JSONEscape.quoted(name)),\"kind\":\"\(def?.kind ?? "")\",\"current\":\(r.current.map(String.init) ?? "null"),\"versions\":[\(versions)],\"output\":\(JSONEscape.quoted(def?.output ?? ""))}"
    }

    /// `jobs describe`: one object per version: current or not, the plan, per task its
    /// checkpoint's status with the lag now, and notes on what holds results back.
    /// One task of a version as `jobs describe` shows it: its checkpoint's status (nil
    /// before the first checkpoint) with `lag` (records not yet read now, per input topic
    /// and repartition topic) and `owner` filled in.
    public struct TaskEntry: Sendable {
        public var task: Int32
        public var status: TaskStatus?
        public var lag: [String: Int64]
        public var owner: String?
        /// The status file could not be read.
        public var note: String?
    }

    /// The tasks of a version (nil plan: an input was deleted since).
    public static func tasks(_ def: JobDefinition, version: Int, dir: DataDirectory, registry: JobRegistry) throws(KappaError) -> (plan: JobPlan?, tasks: [TaskEntry]) {
        let store = try GroupStore(directory: dir, group: "\(def.name).v\(version)")
        // Inputs deleted since: nothing to show per task.
        let plan = def.inputs.allSatisfy(dir.topicExists) ? try JobPlan.make(def, directory: dir) : nil
        var entries: [TaskEntry] = []
        for p in 0..<(plan?.tasks ?? 0) {
            let path = registry.statusPath(def.name, version, task: p)
            var entry = TaskEntry(task: p, status: nil, lag: [:], owner: nil, note: nil)
            if dir.fileSystem.exists(path) {
                do throws(KappaError) {
                    entry.status = try TaskStatus.decode(try dir.fileSystem.openFile(path, mode: .readOnly).readAll(limit: 1 << 24), path: path)
                } catch {
                    // Not the checkpoint, only its description: say so, show the rest.
                    entry.note = "task \(p): \(error.message); it is rewritten at the task's next checkpoint"
                }
            }
            for input in plan!.inputs where p < input.partitions {
                let end = try PartitionStatus.read(dir, TopicPartition(input.topic, p)).endOffset
                entry.lag[input.topic] = end.rawValue - (entry.status?.inputOffsets[input.topic] ?? 0)
            }
            if plan!.repartitioned {
                let topic = JobRegistry.repartitionTopic(def, version)
                if dir.topicExists(topic) {
                    entry.lag[topic] = try PartitionStatus.read(dir, TopicPartition(topic, p)).endOffset.rawValue - (entry.status?.repartitionOffset ?? 0)
                }
            }
            entry.owner = try store.owner(TopicPartition(JobRegistry.outputTopic(def, version), p))
            entry.status?.lag = entry.lag
            entry.status?.owner = entry.owner
            entries.append(entry)
        }
        return (plan, entries)
    }

    public static func version(_ v: JobRecord.Version, record: JobRecord, dir: DataDirectory, registry: JobRegistry) throws(KappaError) -> String {
        let def = v.definition
        let (plan, entries) = try tasks(def, version: v.version, dir: dir, registry: registry)
        var tasks: [String] = []
        var notes: [String] = []
        for e in entries {
            if let note = e.note { notes.append(note) }
            guard let s = e.status else {
                let lags = e.lag.keys.sorted().map { "\(JSONEscape.quoted($0)):\(e.lag[$0]!)" }.joined(separator: ",")
                tasks.append("{\"task\":\(e.task),\"checkpoint\":null,\"lag\":{\(lags)},\"owner\":\(e.owner.map(JSONEscape.quoted) ?? "null")}")
                continue
            }
            tasks.append(String(decoding: s.json(), as: UTF8.self))
            notes += Self.notes(s, task: e.task, caughtUp: e.lag.values.allSatisfy { $0 == 0 })
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let defJSON = (try? String(decoding: encoder.encode(def), as: UTF8.self)) ?? "null"  // plain Codable values: cannot fail
        let planJSON = plan.map { plan in
            "{\"tasks\":\(plan.tasks),\"inputs\":[" + plan.inputs.map { i in
                "{\"topic\":\(JSONEscape.quoted(i.topic)),\"partitions\":\(i.partitions),\"key_field\":\(JSONEscape.quoted(i.keyField)),\"route\":\"\(i.route.rawValue)\"}"
            }.joined(separator: ",") + "],\"explanation\":[" + plan.explanation(keyField: def.keyField).map(JSONEscape.quoted).joined(separator: ",") + "]}"
        } ?? "null"
        return "{\"job\":\(JSONEscape.quoted(def.name)),\"version\":\(v.version),\"current\":\(record.current == v.version),\"kind\":\"\(def.kind)\",\"output_topic\":\(JSONEscape.quoted(JobRegistry.outputTopic(def, v.version))),\"caught_up\":\(v.caughtUpMillis != nil),\"plan\":\(planJSON),\"tasks\":[\(tasks.joined(separator: ","))],\"notes\":[\(notes.map(JSONEscape.quoted).joined(separator: ","))],\"definition\":\(defJSON)}"
    }

    /// What holds a caught-up task's results back, in words.
    public static func notes(_ s: TaskStatus, task p: Int32, caughtUp: Bool) -> [String] {
        var notes: [String] = []
        if !s.idleInputs.isEmpty { notes.append("task \(p): idle inputs no longer hold results back (idle_timeout)") }
        guard caughtUp else { return notes }
        let silent = s.sources.filter { $0.streamTime == nil && !$0.idle }.map(\.source)
        if !silent.isEmpty {
            notes.append("task \(p): results wait for every source partition to report a stream time; \(silent.joined(separator: ", ")) \(silent.count == 1 ? "has" : "have") no records yet (see idle_timeout)")
        }
        if let pending = s.pendingTickets, pending > 0 {
            notes.append("task \(p): \(pending) tickets wait for the rides' watermark to pass ticket time + grace; if rides stopped arriving, they wait until rides arrive (or idle_timeout)")
        }
        return notes
    }
}
