import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaFormat
import KappaJSON
import KappaLog

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

    enum OnError: String {
        case fail, skip
        case deadLetter = "dead-letter"
    }

    func validate() throws {
        guard OnError(rawValue: onError) != nil else { throw ValidationError("--on-error must be fail, skip or dead-letter") }
        guard FsyncPolicy(name: fsync) != nil else { throw ValidationError("--fsync must be always, interval or never") }
        guard maxLineBytes > 0, maxLineBytes <= 64 << 20 else { throw ValidationError("--max-line-bytes must be 1...\(64 << 20)") }
    }

    func run() throws {
        try runReportingErrors {
            let dir = DataDirectory(root: data.path)
            let policy = FsyncPolicy(name: fsync)!
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
                                source: input.name)
            let reader = LineReader(fd: input.fd, path: input.name, lineBytesMax: maxLineBytes, padding: JSONFieldExtractor.padding)
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

/// The produce loop: line → validate/extract → append, with bad-line handling.
struct Ingest {
    let directory: DataDirectory
    let topic: String
    let writer: TopicWriter
    let policy: FsyncPolicy
    let onError: ProduceCommand.OnError
    let fields: EventFields
    let source: String
    var written = 0
    /// Written without a key: the key field was null.
    var keyless = 0
    var bad = 0
    var deadLetters: TopicWriter?
    static let reportedBadLinesMax = 20

    init(directory: DataDirectory, topic: String, writer: TopicWriter, policy: FsyncPolicy, onError: ProduceCommand.OnError,
         fields: EventFields, source: String) {
        self.directory = directory
        self.topic = topic
        self.writer = writer
        self.policy = policy
        self.onError = onError
        self.fields = fields
        self.source = source
    }

    mutating func run(_ reader: LineReader) throws(KappaError) {
        while let line = try reader.next() {
            switch line {
            case .line(let number, let bytes):
                if isBlank(bytes) { continue }
                switch fields.extract(bytes) {
                case .success(let event):
                    try writing { () throws(KappaError) in try writer.append(key: event.key, value: bytes, timestamp: event.time, line: number) }
                    written += 1
                    if event.nullKey { keyless += 1 }
                case .failure(let reason):
                    try handleBad(number: number, raw: bytes, reason: reason)
                }
            case .tooLong(let number, let count, let prefix):
                try handleBad(number: number, raw: prefix, reason: .tooLong(bytes: count, limit: reader.lineBytesMax), truncated: true)
            }
            if reader.lastReadWasShort && reader.isBufferDrained { try writing { () throws(KappaError) in try writer.flush() } }  // interactive input: deliver now
            if StopSignal.isRequested { break }
        }
        try writing { () throws(KappaError) in try writer.close() }
        try deadLetters?.close()
    }

    /// Runs a write of the topic; an I/O failure (a full disk, EIO) becomes the error that
    /// says how much of the input is in the log and where to resume: the writer's groups
    /// are all-or-nothing, so exactly the records before the reported line are written.
    private func writing(_ body: () throws(KappaError) -> Void) throws(KappaError) {
        do {
            try body()
        } catch where error.code == .io {
            throw writeFailure(error)
        }
    }

    func writeFailure(_ error: KappaError) -> KappaError {
        let n = writer.acknowledgedRecords
        let what = error.isDiskFull ? "disk full" : "I/O error (\(error.message))"
        let records = "\(n) record\(n == 1 ? "" : "s")"
        let resume = writer.firstUnacknowledgedLine.map { "the first line not written is line \($0) of \(source)" }
            ?? "every line of \(source) is written"
        return KappaError(.io, "\(what) after writing \(records); \(resume)", topicPartition: error.topicPartition, offset: error.offset,
                          path: error.path, position: error.position, systemError: error.systemError)
    }

    private func isBlank(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for b in bytes where b != 0x20 && b != 0x09 { return false }
        return true
    }

    private mutating func handleBad(number: Int, raw: UnsafeRawBufferPointer, reason: BadEvent, truncated: Bool = false) throws(KappaError) {
        bad += 1
        switch onError {
        case .fail:
            try writing { () throws(KappaError) in try writer.close() }
            throw KappaError(.badInput, "\(source) line \(number): \(reason); wrote the \(written) record\(written == 1 ? "" : "s") before it and nothing after")
        case .skip:
            if bad <= Self.reportedBadLinesMax { Stderr.line("kappa: \(source) line \(number): \(reason) (skipped)") }
        case .deadLetter:
            if bad <= Self.reportedBadLinesMax { Stderr.line("kappa: \(source) line \(number): \(reason) (sent to \(topic).dead-letter)") }
            try deadLetterWriter().append(
                key: nil, value: raw, timestamp: TimestampNanos(SystemClock().nowNanos()),
                headers: [RecordHeader(key: "kappa.error", value: Array(reason.description.utf8)),
                          RecordHeader(key: "kappa.source", value: Array(source.utf8)),
                          RecordHeader(key: "kappa.line", value: Array(String(number).utf8))]
                    + (truncated ? [RecordHeader(key: "kappa.truncated", value: Array("true".utf8))] : []))
        }
        if bad == Self.reportedBadLinesMax + 1 && onError != .fail { Stderr.line("kappa: more bad lines; reporting only the count from here") }
    }

    private mutating func deadLetterWriter() throws(KappaError) -> TopicWriter {
        if let deadLetters { return deadLetters }
        let name = topic + ".dead-letter"
        if !directory.topicExists(name) {
            do throws(KappaError) {
                try directory.createTopic(name, config: TopicConfig(partitions: 1, rawValues: true))
            } catch let e where e.code == .alreadyExists {}  // another producer made it first
        }
        let w = try TopicWriter(directory: directory, topic: name, fsync: policy)
        deadLetters = w
        return w
    }
}
