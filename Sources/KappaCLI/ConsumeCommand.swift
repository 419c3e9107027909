import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
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

/// The consume loop: rebalance (groups), read batches from every owned partition in
/// turn, print, commit, and wait on the tail when caught up.
final class ConsumeSession {
    struct Cursor {
        var reader: PartitionReader
        /// The next offset to print.
        var position: Offset
        var committed: Offset?
    }

    let command: ConsumeCommand
    let directory: DataDirectory
    let config: TopicConfig
    let out = StdoutWriter()
    var printer: RecordPrinter
    let codec = LZ4Codec()
    let scratch = ByteWriter(capacity: 1 << 20)
    let watcher = TailWatcher()
    var cursors: [Int32: Cursor] = [:]
    var member: GroupMember?
    var printed = 0
    static let rebalanceNanos: Int64 = 250_000_000
    static let commitNanos: Int64 = 1_000_000_000
    static let waitMillis: Int32 = 100

    let topic: String
    /// `--max`, read once: an option's getter is generic and costs a metadata lookup,
    /// far too much to pay per record.
    let max: Int?

    init(command: ConsumeCommand) throws(KappaError) {
        self.command = command
        max = command.max
        directory = DataDirectory(root: command.data.path)
        // A job's output name stands for its current version's topic (OUTPUT.vN).
        if !directory.topicExists(command.topic), let resolved = try JobRegistry(directory: directory).currentOutputTopic(for: command.topic) {
            topic = resolved
        } else {
            topic = command.topic
        }
        config = try directory.topicConfig(topic)
        printer = RecordPrinter(withMeta: command.withMeta, rawValues: config.rawValues ?? false)
        if let p = command.partition, p < 0 || p >= config.partitions {
            throw KappaError(.invalidArgument, "topic \(topic) has partitions 0...\(config.partitions - 1), not \(p)")
        }
    }

    var remaining: Int { max.map { $0 - printed } ?? .max }

    /// Runs the loop; whatever was printed before an error still reaches stdout.
    func run() throws(KappaError) {
        do {
            try loop()
        } catch {
            out.flush()
            throw error
        }
    }

    private func loop() throws(KappaError) {
        if let group = command.group {
            let store = try GroupStore(directory: directory, group: group)
            member = try GroupMember(store: store, id: Self.memberId(), topics: [topic])
        } else {
            let partitions = command.partition.map { [$0] } ?? Array(0..<config.partitions)
            for p in partitions { try start(p) }
        }
        defer { member?.leave() }
        var lastRebalance: Int64 = 0
        var lastCommit = monotonicNanos()
        while remaining > 0 && !StopSignal.isRequested && !out.closed {
            let now = monotonicNanos()
            if member != nil && now - lastRebalance >= Self.rebalanceNanos {
                try rebalance()
                lastRebalance = now
            }
            var progressed = false
            for p in cursors.keys.sorted() where remaining > 0 {
                if try drain(p) { progressed = true }
            }
            if member != nil && now - lastCommit >= Self.commitNanos {
                try commitAll()
                lastCommit = now
            }
            if !progressed {
                if !command.follow { break }
                try commitAll()
                watcher.wait(timeoutMillis: Self.waitMillis)
            }
        }
        try commitAll()
    }

    /// Opens partition `p` at its starting offset.
    private func start(_ p: Int32) throws(KappaError) {
        let tp = TopicPartition(topic, p)
        // Check (and repair) the partition's tail first, as every writer does on open.
        let repair = try PartitionWriter(directory: directory, topicPartition: tp, config: config, fsync: .never, enforcingRetention: false)
        for r in repair.recoveries { Stderr.line("kappa: " + r.description) }
        let reader = try PartitionReader(directory: directory, topicPartition: tp)
        var committed: Offset? = nil
        let position: Offset
        if let member {
            committed = try member.store.committed(tp)
        }
        if let committed {
            position = committed
        } else if let o = command.offset {
            position = Offset(o)
        } else if command.fromBeginning {
            position = try reader.startOffset()
        } else {
            position = try PartitionStatus.read(directory, tp).endOffset
        }
        var cursor = Cursor(reader: reader, position: position, committed: committed)
        if case .belowStart(let logStart) = try reader.seek(to: position) {
            Stderr.line("kappa: \(tp.topic) partition \(p): offset \(position) was deleted by retention; starting at \(logStart)")
            cursor.position = logStart
        }
        watcher.watch(reader.directory)
        cursors[p] = cursor
    }

    /// Prints what partition `p` has, up to the output buffer's size. True if it printed.
    private func drain(_ p: Int32) throws(KappaError) -> Bool {
        var cursor = cursors[p]!
        defer { cursors[p] = cursor }
        let tp = cursor.reader.topicPartition
        var progressed = false
        while out.buffer.count < StdoutWriter.flushBytes, remaining > 0, let batch = try nextBatch(&cursor) {
            progressed = true
            if batch.header.nextOffset <= cursor.position || batch.header.isControl { continue }
            let fromKafkaClient = TopicConfig.cameFromKafkaClient(batch.bytes)
            do throws(BatchDecodeError) {
                var records = try RecordBatchDecoder.records(of: batch.bytes, header: batch.header, codec: codec, scratch: scratch)
                while let record = try records.next() {
                    if record.offset < cursor.position { continue }
                    printer.append(record, topic: tp, fromKafkaClient: fromKafkaClient, to: out.buffer)
                    cursor.position = record.offset + 1
                    printed += 1
                    if remaining == 0 { break }
                }
            } catch {
                throw KappaError(.corruptData, "undecodable batch: \(error.message)", topicPartition: tp, offset: batch.header.baseOffset,
                                 path: cursor.reader.directory)
            }
        }
        out.flushIfFull()
        return progressed
    }

    /// The next batch; when retention deleted what the cursor had not read yet, says so
    /// and goes on from the log start (Kafka's auto.offset.reset=earliest).
    private func nextBatch(_ cursor: inout Cursor) throws(KappaError) -> BatchRef? {
        do {
            return try cursor.reader.nextBatch()
        } catch where error.code == .offsetOutOfRange {
            let start = try cursor.reader.startOffset()
            Stderr.line("kappa: \(error.description); continuing at \(start)")
            try cursor.reader.seek(to: start)
            cursor.position = start
            return try cursor.reader.nextBatch()
        }
    }

    private func rebalance() throws(KappaError) {
        guard let member else { return }
        let change = try member.rebalance { (tp) throws(KappaError) in
            out.flush()
            if let c = cursors[tp.partition], c.position != c.committed { try member.commit(tp, c.position) }
            cursors[tp.partition] = nil
        }
        for tp in change.acquired { try start(tp.partition) }
    }

    /// Flushes stdout, then commits each owned partition whose position moved.
    private func commitAll() throws(KappaError) {
        out.flush()
        guard let member else { return }
        for (p, c) in cursors where c.position != c.committed {
            try member.commit(TopicPartition(topic, p), c.position)
            cursors[p]!.committed = c.position
        }
    }

    static func memberId() -> String {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let name = host.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        return "\(name.isEmpty ? "host" : name)-\(getpid())-\(UInt32(truncatingIfNeeded: monotonicNanos()) % 100_000)"
    }
}
