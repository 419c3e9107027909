import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaIngest
import KappaFormat
import KappaGroups
import KappaLog
import KappaStreams

/// `kappa consume TOPIC`: records as JSON Lines on stdout.
struct ConsumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Read a topic's records as JSON Lines.",
        discussion: """
        Without --group, reads the chosen partitions from --from-beginning, --offset N, or \
        (by default) the end. With --group G, the group's live members split the \
        partitions; each starts at G's committed offset (else the beginning with \
        --from-beginning, else the end) and commits what it has written to stdout every \
        second and on exit (at-least-once: after kill -9, up to a second of records is \
        read again by whoever takes the partition). Without --follow, exits once caught up.
        """)

    @OptionGroup var data: DataOptions
    @Argument var topic: String
    @Option(help: "Consumer group: share partitions with its other members, commit offsets.") var group: String?
    @Flag(name: .customLong("from-beginning"), help: "Start at the earliest offset (for a group: when it has no committed offset).") var fromBeginning = false
    @Option(help: "Start at this offset (in every chosen partition).") var offset: Int64?
    @Option(help: "Read only this partition.") var partition: Int32?
    @Option(help: "Stop after this many records.") var max: Int?
    @Flag(help: "Keep reading as records arrive; SIGINT/SIGTERM stop cleanly.") var follow = false
    @Flag(name: .customLong("with-meta"), help: "Wrap each record with topic, partition, offset, timestamp and key.") var withMeta = false

    func validate() throws {
        if fromBeginning && offset != nil { throw ValidationError("--from-beginning and --offset exclude each other") }
        if group != nil && (offset != nil || partition != nil) {
            throw ValidationError("--group assigns partitions and starts at committed offsets; use 'kappa groups reset' instead of --offset/--partition")
        }
        if let offset, offset < 0 { throw ValidationError("--offset must be at least 0") }
        if let max, max < 0 { throw ValidationError("--max must be at least 0") }
    }

    func run() throws {
        try runReportingErrors {
            StopSignal.install()
            let session = try ConsumeSession(command: self)
            try session.run()
        }
    }
}

/// The consume loop of the command line: a `TopicConsumer` (KappaGroups) reads and, for
/// a group, rebalances and commits; this prints, flushes stdout before every commit, and
/// waits on the tail (inotify) when caught up.
final class ConsumeSession {
    let command: ConsumeCommand
    let out = StdoutWriter()
    var printer: RecordPrinter
    let watcher = TailWatcher()
    let consumer: TopicConsumer
    var printed = 0
    static let waitMillis: Int32 = 100

    /// `--max`, read once: an option's getter is generic and costs a metadata lookup,
    /// far too much to pay per record.
    let max: Int?

    init(command: ConsumeCommand) throws(KappaError) {
        self.command = command
        max = command.max
        let directory = DataDirectory(root: command.data.path)
        // A job's output name stands for its current version's topic (OUTPUT.vN).
        var topic = command.topic
        if !directory.topicExists(topic), let resolved = try JobRegistry(directory: directory).currentOutputTopic(for: topic) {
            topic = resolved
        }
        if let group = command.group {
            consumer = try TopicConsumer(directory: directory, topic: topic, group: group, memberID: Self.memberId(),
                                         start: command.fromBeginning ? .beginning : .end)
        } else {
            let start: TopicConsumer.Start = command.offset.map { .offset(Offset($0)) } ?? (command.fromBeginning ? .beginning : .end)
            consumer = try TopicConsumer(directory: directory, topic: topic, partitions: command.partition.map { [$0] }, start: start)
        }
        printer = RecordPrinter(withMeta: command.withMeta, rawValues: consumer.config.rawValues ?? false)
    }

    var remaining: Int { max.map { $0 - printed } ?? .max }

    /// Runs the loop; whatever was printed before an error still reaches stdout.
    func run() throws(KappaError) {
        defer { consumer.leave() }
        do {
            try loop()
        } catch {
            out.flush()
            reportNotices()
            throw error
        }
    }

    private func loop() throws(KappaError) {
        let out = self.out
        while remaining > 0 && !StopSignal.isRequested && !out.closed {
            try consumer.maintain { out.flush() }
            for dir in consumer.partitionDirectories { watcher.watch(dir) }
            let batches = try consumer.poll(maxRecords: remaining, pause: { out.buffer.count >= StdoutWriter.flushBytes }) { record, tp, fromKafkaClient in
                printer.append(record, topic: tp, fromKafkaClient: fromKafkaClient, to: out.buffer)
                printed += 1
            }
            out.flushIfFull()
            reportNotices()
            if batches == 0 {
                if !command.follow { break }
                try consumer.commit { out.flush() }
                watcher.wait(timeoutMillis: Self.waitMillis)
            }
        }
        try consumer.commit { out.flush() }
    }

    private func reportNotices() {
        for notice in consumer.takeNotices() { Stderr.line("kappa: " + notice) }
    }

    static func memberId() -> String {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let name = host.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        return "\(name.isEmpty ? "host" : name)-\(getpid())-\(UInt32(truncatingIfNeeded: monotonicNanos()) % 100_000)"
    }
}
