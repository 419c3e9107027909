import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaFormat
import KappaIngest
import KappaJSON
import KappaLog
import KappaStreams

/// `kappa produce TOPIC [FILE|-]`: JSON Lines in, records out. Each line is validated
/// as JSON, its key and event time extracted, and the line itself stored as the value.
struct ProduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Append JSON Lines from a file or stdin to a topic.",
        discussion: """
        Each line must be a JSON object with the key field (routes it to a partition with \
        Kafka's murmur2) and the time field (epoch seconds, exact to the nanosecond, or \
        ISO-8601). A bad line is reported with its line number; --on-error decides what \
        happens next: fail (default) writes every good line before it and nothing after, \
        skip reports and continues, dead-letter stores the raw line in TOPIC.dead-letter \
        with the reason in its headers and continues.
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "Topic to append to.") var topic: String
    @Argument(help: "Input file; '-' or nothing reads stdin.") var file: String?
    @Option(name: .customLong("key-field"), help: "Field whose value is the record key ('' for no key: round-robin). Default: the topic's key field (user_id unless created otherwise).") var keyField: String?
    @Option(name: .customLong("time-field"), help: "Field holding the event time.") var timeField: String = "time_utc"
    @Option(name: .customLong("on-error"), help: "fail | skip | dead-letter") var onError: String = "fail"
    @Option(help: "always | interval | never: when appends are fsynced (default interval, 1 s).") var fsync: String = "interval"
    @Option(name: .customLong("max-line-bytes"), help: "Longest accepted line.") var maxLineBytes: Int = Limits.lineBytesDefault

    typealias OnError = Ingest.OnError

    func validate() throws {
        guard OnError(rawValue: onError) != nil else { throw ValidationError("--on-error must be fail, skip or dead-letter") }
        guard FsyncPolicy(name: fsync) != nil else { throw ValidationError("--fsync must be always, interval or never") }
        guard maxLineBytes > 0, maxLineBytes <= 64 << 20 else { throw ValidationError("--max-line-bytes must be 1...\(64 << 20)") }
    }

    func run() throws {
        try runReportingErrors {
            let dir = DataDirectory(root: data.path)
            let policy = FsyncPolicy(name: fsync)!
            try JobRegistry(directory: dir).refuseOutsideWrites(to: topic)
            let writer = try TopicWriter(directory: dir, topic: topic, fsync: policy, sealInBackground: true)
            // A topic created by a Kafka client has no JSON key field: no key unless one is given.
            let keyField = self.keyField ?? (writer.config.isKeyedByKafkaClients ? "" : writer.config.partitionKeyField)
            if let given = self.keyField, !given.isEmpty, !writer.config.isKeyedByKafkaClients, given != writer.config.partitionKeyField {
                Stderr.line("kappa: warning: \(topic) is keyed by '\(writer.config.partitionKeyField)' (topics create --key-field); jobs will assume that, not '\(given)'")
            }
            // Tails repaired when the partitions were opened, and later by appends that
            // found another producer's torn write, and indexes rebuilt: each reported once.
            var reported = 0, warned = 0
            func reportRecoveries() {
                let all = writer.recoveries
                for r in all.dropFirst(reported) { Stderr.line("kappa: " + r.description) }
                reported = all.count
                let warnings = writer.warnings
                for w in warnings.dropFirst(warned) { Stderr.line("kappa: warning: " + w) }
                warned = warnings.count
            }
            reportRecoveries()
            defer { reportRecoveries() }
            StopSignal.install()
            let input = try openInput()
            defer { if input.fd != 0 { close(input.fd) } }
            var ingest = Ingest(directory: dir, topic: topic, writer: writer, policy: policy, onError: OnError(rawValue: onError)!,
                                fields: try EventFields(keyField: keyField.isEmpty ? nil : keyField, timeField: timeField, lineBytesMax: maxLineBytes),
                                source: input.name, report: Stderr.line, shouldStop: { StopSignal.isRequested })
            let reader = LineReader(fd: input.fd, path: input.name, lineBytesMax: maxLineBytes, padding: JSONFieldExtractor.padding,
                                    interrupted: { StopSignal.isRequested })
            let started = monotonicNanos()
            try ingest.run(reader)
            let seconds = Double(monotonicNanos() - started) / 1e9
            var summary = "produced \(ingest.written) records to \(topic) (\(writer.partitions) partitions) in \(format2(seconds))s, \(formatRate(ingest.written, seconds: seconds)) records/s"
            if ingest.keyless > 0 { summary += "; \(ingest.keyless) keyless (null '\(keyField)', spread round-robin)" }
            if ingest.bad > 0 { summary += "; \(ingest.bad) bad line\(ingest.bad == 1 ? "" : "s") \(ingest.onError == .skip ? "skipped" : "sent to \(topic).dead-letter")" }
            Stderr.line(summary)
        }
    }

    private func openInput() throws(KappaError) -> (fd: Int32, name: String) {
        guard let file, file != "-" else { return (0, "stdin") }
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KappaError.io("open", path: file, errno: errno) }
        return (fd, file)
    }
}
