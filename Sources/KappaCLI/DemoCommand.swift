import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaIngest
import KappaJSON
import KappaLog
import RebuGenerator

/// `kappa demo`: the whole pipeline on generated data. Generates a deterministic Rebu
/// data set, creates `rides`, `tickets` and `app_events` with the same partition count
/// (so a user's events share a partition number: co-partitioning), produces each file
/// through the same path as `kappa produce`, runs the three jobs of SPEC section 9 and a
/// replay with 30-minute windows (`DemoJobs`), and prints a report.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Generate Rebu data, produce it, run the three jobs and a replay, and report.")

    @OptionGroup var data: DataOptions
    @Option(help: "App events to generate (rides and tickets follow at ~6% and ~0.6%).") var events: Int = 200_000
    @Option(help: "Generator seed: the same seed gives the same data.") var seed: UInt64 = 42
    @Option(help: "Partitions of each topic.") var partitions: Int32 = 4
    @Option(help: "Days of generated history (rides follow a weekly rhythm and grow 3% a week).") var days: Int = 120
    @Flag(help: "Delete the demo topics first if they exist.") var reset = false

    static let topics: [(RebuTopic, String)] = [(.rides, "rides"), (.tickets, "tickets"), (.appEvents, "app_events")]

    func validate() throws {
        guard events > 0, events <= 100_000_000 else { throw ValidationError("--events must be 1...100000000") }
        guard days >= 1, days <= 3650 else { throw ValidationError("--days must be 1...3650") }
        guard partitions >= 1, partitions <= Int32(Limits.partitionsMax) else { throw ValidationError("--partitions must be 1...\(Limits.partitionsMax)") }
    }

    func run() throws {
        try runReportingErrors {
            let dir = DataDirectory(root: data.path)
            for (_, name) in Self.topics where dir.topicExists(name) {
                guard reset else {
                    throw KappaError(.alreadyExists, "topic '\(name)' already exists in \(data.path); run 'kappa demo --reset' to replace the demo topics, or use another --data")
                }
                try dir.deleteTopic(name)
            }
            let inputDir = data.path + "/demo-input"
            Stderr.line("generating \(events) app events (seed \(seed)) into \(inputDir) ...")
            let summary: RebuSummary
            do {
                summary = try RebuGenerator.write(RebuConfig(seed: seed, appEvents: events, days: days, demand: .rebu), to: inputDir)
            } catch {
                throw KappaError(.io, "generating demo data failed: \(error)")
            }
            for (rebuTopic, name) in Self.topics {
                guard let file = summary[rebuTopic] else { continue }
                try dir.createTopic(name, config: TopicConfig(partitions: partitions))
                let started = monotonicNanos()
                let written = try produce(file.path, into: name, directory: dir)
                let seconds = Double(monotonicNanos() - started) / 1e9
                var bytes: Int64 = 0
                for p in 0..<partitions {
                    let s = try PartitionStatus.read(dir, TopicPartition(name, p))
                    bytes += s.bytes
                }
                Stderr.line("  \(name): \(written) records, \(file.bytes) input bytes -> \(bytes) bytes on disk (\(format2(Double(file.bytes) / Double(max(1, bytes))))x), \(format2(seconds))s, \(formatRate(written, seconds: seconds)) records/s")
            }
            Stderr.line("generated \(summary.users) users over \(summary.days) days")
            try DemoJobs(directory: dir, dataPath: data.path, days: summary.days).run()
        }
    }

    private func produce(_ path: String, into topic: String, directory: DataDirectory) throws(KappaError) -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KappaError.io("open", path: path, errno: errno) }
        defer { close(fd) }
        let writer = try TopicWriter(directory: directory, topic: topic, sealInBackground: true)
        var ingest = Ingest(directory: directory, topic: topic, writer: writer, policy: .default, onError: .fail,
                            fields: try EventFields(keyField: "user_id", timeField: "time_utc", lineBytesMax: Limits.lineBytesDefault),
                            source: path, report: Stderr.line)
        try ingest.run(LineReader(fd: fd, path: path, lineBytesMax: Limits.lineBytesDefault, padding: JSONFieldExtractor.padding))
        return ingest.written
    }
}
