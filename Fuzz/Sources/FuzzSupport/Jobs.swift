import Foundation
import KappaCore
import KappaLog
import KappaStreams

/// The jobs and input topics whose task checkpoints and repartition records the
/// fuzzers decode: the shipped jobs (jobs/*.yaml, and the demo's 30-minute replay) over
/// the topic layouts the seed corpora were made with (see `tools/fuzz.sh seeds`). A
/// checkpoint only decodes into the plan it was written for, so the harness and the
/// seed generator agree on this list by index.
public struct FuzzJob: Sendable {
    public var definition: JobDefinition
    /// The inputs' configs (partitions, key field), in the definition's input order.
    public var configs: [TopicConfig]

    public var plan: JobPlan { JobPlan.make(definition, configs: Array(zip(definition.inputs, configs)).map { (topic: $0.0, config: $0.1) }) }

    public static let ridesPerCity = """
        name: rides-per-city
        inputs: [rides]
        window:      { key: city, time: time_utc, size: 1h, grace: 10m,
                       aggregates: [count, sum:fare, avg:fare, max:fare], emit: final }
        output: rides-per-city
        """
    public static let ridesPerCity30m = ridesPerCity.replacingOccurrences(of: "size: 1h", with: "size: 30m")
    public static let appSessions = """
        name: app-sessions
        inputs: [app_events]
        session:     { key: user_id, time: time_utc, gap: 30m, grace: 5m }
        output: app-sessions
        """
    public static let ticketRideMatch = """
        name: ticket-ride-match
        inputs: [tickets, rides]
        match:       { key: user_id, time: time_utc, tickets: tickets, rides: rides, grace: 10m }
        output: ticket-ride-matches
        """

    static func job(_ yaml: String, _ configs: [TopicConfig]) -> FuzzJob {
        guard let d = try? JobFile.parse(yaml, path: "fuzz-jobs") else { preconditionFailure("a shipped job file does not parse") }  // a programmer error
        return FuzzJob(definition: d, configs: configs)
    }

    static func topic(_ partitions: Int32, key: String = "user_id") -> TopicConfig { TopicConfig(partitions: partitions, keyField: key) }

    /// By index: the demo's (4 partitions keyed by user_id: rides-per-city re-keyed), a
    /// second layout (rides keyed by city: direct; app events by another field and 3
    /// ticket partitions: re-keyed), and checkpoint format 1's (3 partitions).
    public static let all: [FuzzJob] = [
        job(ridesPerCity, [topic(4)]),
        job(ridesPerCity30m, [topic(4)]),
        job(appSessions, [topic(4)]),
        job(ticketRideMatch, [topic(4), topic(4)]),
        job(ridesPerCity, [topic(4, key: "city")]),
        job(appSessions, [topic(4, key: "event_type")]),
        job(ticketRideMatch, [topic(3), topic(4, key: "city")]),
        job(ridesPerCity, [topic(3)]),
        job(appSessions, [topic(3)]),
        job(ticketRideMatch, [topic(3), topic(3)]),
    ]

    /// The index of the job with this definition and plan, if any.
    public static func index(of definition: JobDefinition, plan: JobPlan) -> Int? {
        all.firstIndex { $0.definition == definition && $0.plan == plan }
    }
}

/// The input layout of `fuzz-checkpoint`: a selector byte — job (`FuzzJob.all`, low 4
/// bits), task (next 2 bits, modulo the plan's tasks), version (bit 6: 1 or 2), whether
/// the harness appends the CRC-32C (bit 7 clear) or the input carries its own — then the
/// checkpoint's bytes.
public enum CheckpointCase {
    public static let rawBit: UInt8 = 0x80

    public static func selector(job: Int, task: Int32, version: Int) -> UInt8 {
        precondition(job < 16 && task >= 0 && version >= 1 && version <= 2)
        return UInt8(job) | UInt8(task & 3) << 4 | UInt8(version - 1) << 6
    }

    public static func decode(_ selector: UInt8) -> (job: FuzzJob, task: Int32, version: Int, appendCRC: Bool) {
        let job = FuzzJob.all[Int(selector & 0x0F) % FuzzJob.all.count]
        let task = Int32(selector >> 4 & 3) % job.plan.tasks
        return (job, task, 1 + Int(selector >> 6 & 1), selector & rawBit == 0)
    }

    /// A real checkpoint file as a seed: its body without the CRC (the harness appends it).
    public static func input(selector: UInt8, checkpoint: [UInt8]) -> [UInt8] { [selector] + checkpoint.dropLast(4) }
}

/// The input layout of `fuzz-repartition`: the job (`FuzzJob.all`, whose plan gives the
/// number of sources and the window's fields), a u16-length record key (the window key
/// of a contribution), then the record's value.
public enum RepartitionCase {
    public static func input(job: Int, key: [UInt8]?, value: [UInt8]) -> [UInt8] {
        var b = FuzzInputBuilder()
        b.byte(UInt8(job))
        b.chunk(key ?? [])
        b.raw(value)
        return b.bytes
    }
}
