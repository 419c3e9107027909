import KappaCore
import KappaLog

/// How a job version's records flow between its tasks: how many tasks it has, which of
/// its inputs each task reads directly, and which are re-keyed through the version's
/// repartition topic (`JOB.vN.repartition`) so that every key has one owner task.
///
/// - Tasks: as many as the input with the most partitions (Kafka Streams' rule). Task
///   `t` reads partition `t` of every input that has one, and owns partition `t` of the
///   output, late, dead-letter and repartition topics. A key's owner is
///   `murmur2(key) mod tasks` — where `kappa produce` puts a record keyed by it.
/// - An input is read *directly* when it is partitioned by the job's key field and has
///   exactly `tasks` partitions: then partition `t` holds exactly the keys task `t`
///   owns, and nothing crosses between tasks. Otherwise it is *re-keyed*: each task
///   sends what it reads to the key's owner. Windows and sessions re-key all their
///   inputs when one needs it (all of a task's events then meet in one place); a match
///   re-keys only the input (tickets or rides) that needs it.
/// - Sources: every input partition is one *source*, numbered globally
///   (`sourceId`), with its own stream time; lateness is judged against it where the
///   event is read. An owner's results wait for the smallest stream time among the
///   sources that can send it records (its *watermark*): its own partitions of direct
///   inputs, and every partition of re-keyed ones. That is what makes final results
///   independent of how fast each partition is read.
///
/// Pure: a function of the definition and the inputs' topic configs, which never change
/// after creation — so every process, and every restart, computes the same plan.
public struct JobPlan: Equatable, Sendable {
    public enum Route: String, Equatable, Sendable, Codable {
        case direct
        case rekeyed
    }

    public struct Input: Equatable, Sendable {
        public var topic: String
        public var partitions: Int32
        public var route: Route
        /// Global id of this input's partition 0; partition p is `firstSource + p`.
        public var firstSource: Int32
        /// The field the topic is partitioned by (`''`: unknown or keyless).
        public var keyField: String
    }

    public let tasks: Int32
    public let inputs: [Input]

    public var repartitioned: Bool { inputs.contains { $0.route == .rekeyed } }
    public var sourceCount: Int32 { inputs.reduce(0) { $0 + $1.partitions } }

    public init(tasks: Int32, inputs: [Input]) {
        precondition(tasks > 0 && inputs.allSatisfy { $0.partitions >= 1 && $0.partitions <= tasks })
        self.tasks = tasks
        self.inputs = inputs
    }

    /// The plan of `def` over the inputs as they exist in `directory`.
    public static func make(_ def: JobDefinition, directory: DataDirectory) throws(KappaError) -> JobPlan {
        var configs: [(String, TopicConfig)] = []
        for t in def.inputs {
            guard directory.topicExists(t) else {
                throw KappaError(.notFound, "job \(def.name): input topic '\(t)' does not exist (create it with: kappa topics create \(t) --partitions N)")
            }
            configs.append((t, try directory.topicConfig(t)))
        }
        return make(def, configs: configs)
    }

    public static func make(_ def: JobDefinition, configs: [(topic: String, config: TopicConfig)]) -> JobPlan {
        let tasks = configs.map(\.config.partitions).max()!
        func aligned(_ c: TopicConfig) -> Bool { c.partitionKeyField == def.keyField && c.partitions == tasks }
        let rekeyAll: Bool
        switch def.operation {
        case .window, .session: rekeyAll = !configs.allSatisfy { aligned($0.config) }
        case .match: rekeyAll = false
        }
        var inputs: [Input] = []
        var next: Int32 = 0
        for (topic, c) in configs {
            let route: Route = rekeyAll || !aligned(c) ? .rekeyed : .direct
            inputs.append(Input(topic: topic, partitions: c.partitions, route: route, firstSource: next, keyField: c.partitionKeyField))
            next += c.partitions
        }
        return JobPlan(tasks: tasks, inputs: inputs)
    }

    public func sourceId(input: Int, partition: Int32) -> Int32 {
        precondition(partition >= 0 && partition < inputs[input].partitions)
        return inputs[input].firstSource + partition
    }

    /// The input and partition of a global source id, nil when out of range.
    public func source(_ id: Int32) -> (input: Int, partition: Int32)? {
        for (i, input) in inputs.enumerated() where id >= input.firstSource && id < input.firstSource + input.partitions {
            return (i, id - input.firstSource)
        }
        return nil
    }

    /// The sources whose stream times task `task`'s results wait for, among `inputs`
    /// (indices): its own partition of a direct input, every partition of a re-keyed one.
    public func sources(of task: Int32, inputs subset: [Int]) -> [Int32] {
        var out: [Int32] = []
        for i in subset {
            switch inputs[i].route {
            case .direct: out.append(sourceId(input: i, partition: task))
            case .rekeyed: out += (0..<inputs[i].partitions).map { sourceId(input: i, partition: $0) }
            }
        }
        return out
    }

    /// The task that owns `key`.
    @inline(__always)
    public func owner(of key: UnsafeRawBufferPointer) -> Int32 { Partitioner.partition(forKey: key, partitions: tasks) }

    /// One line per input for people: how it is read and why.
    public func explanation(keyField: String) -> [String] {
        inputs.map { i in
            switch i.route {
            case .direct:
                return "\(i.topic): read directly (partitioned by '\(keyField)', \(i.partitions) partitions)"
            case .rekeyed:
                let why = i.keyField != keyField
                    ? "partitioned by '\(i.keyField.isEmpty ? "no known field" : i.keyField)', not '\(keyField)'"
                    : (i.partitions != tasks ? "\(i.partitions) partitions, the job has \(tasks) tasks" : "another input of the job is re-keyed")
                return "\(i.topic): re-keyed by '\(keyField)' through the repartition topic (\(why))"
            }
        }
    }
}
