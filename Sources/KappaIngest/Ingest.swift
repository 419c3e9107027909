import KappaCore
import KappaFormat
import KappaIO
import KappaJSON
import KappaLog

/// The produce loop shared by `kappa produce`, `kappa demo` and `POST
/// /v1/topics/{topic}/records`: line → validate and extract (simdjson) → append, with the
/// bad-line handling of `--on-error`:
///
/// - `fail`: every good line before the bad one is written, nothing after; `run` throws
///   a `.badInput` error naming the line, and `failure` holds the line and reason.
/// - `skip`: the line is reported (the first `reportedBadLinesMax`, then only counted).
/// - `deadLetter`: the raw line goes to `TOPIC.dead-letter` (made with one partition on
///   first use) with headers `kappa.error`, `kappa.source`, `kappa.line` (and
///   `kappa.truncated` for an over-long line, of which the reader keeps the first 1 KiB).
///
/// Messages for people go to `report` (stderr for the CLI); the first bad lines are also
/// kept as values (`badLines`) for front ends that answer in JSON. Not thread-safe.
public struct Ingest {
    public enum OnError: String, Sendable, CaseIterable {
        case fail, skip
        case deadLetter = "dead-letter"
    }

    /// One bad line as a value: where and why.
    public struct BadLine: Equatable, Sendable {
        public var line: Int
        public var reason: String
    }

    public let directory: DataDirectory
    public let topic: String
    public let writer: TopicWriter
    public let policy: FsyncPolicy
    public let onError: OnError
    public let fields: EventFields
    /// The input's name in messages and in dead letters' `kappa.source` (a file, "stdin", "http").
    public let source: String
    let clock: any WallClock
    let report: (String) -> Void
    let shouldStop: () -> Bool
    public private(set) var written = 0
    /// Written without a key: the key field was null.
    public private(set) var keyless = 0
    public private(set) var bad = 0
    /// The first `reportedBadLinesMax` bad lines.
    public private(set) var badLines: [BadLine] = []
    /// Under `fail`: the bad line that stopped the input.
    public private(set) var failure: BadLine?
    var deadLetters: TopicWriter?
    /// Bad lines reported one by one; past this only the count grows (a file of garbage
    /// must not flood the terminal or an HTTP answer).
    public static let reportedBadLinesMax = 20

    public init(directory: DataDirectory, topic: String, writer: TopicWriter, policy: FsyncPolicy, onError: OnError,
                fields: EventFields, source: String, clock: any WallClock = SystemClock(),
                report: @escaping (String) -> Void = { _ in }, shouldStop: @escaping () -> Bool = { false }) {
        self.directory = directory
        self.topic = topic
        self.writer = writer
        self.policy = policy
        self.onError = onError
        self.fields = fields
        self.source = source
        self.clock = clock
        self.report = report
        self.shouldStop = shouldStop
    }

    public mutating func run(_ reader: LineReader) throws(KappaError) {
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
            if shouldStop() { break }
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

    public func writeFailure(_ error: KappaError) -> KappaError {
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
        let value = BadLine(line: number, reason: reason.description)
        if badLines.count < Self.reportedBadLinesMax { badLines.append(value) }
        switch onError {
        case .fail:
            failure = value
            try writing { () throws(KappaError) in try writer.close() }
            throw KappaError(.badInput, "\(source) line \(number): \(reason); wrote the \(written) record\(written == 1 ? "" : "s") before it and nothing after")
        case .skip:
            if bad <= Self.reportedBadLinesMax { report("kappa: \(source) line \(number): \(reason) (skipped)") }
        case .deadLetter:
            if bad <= Self.reportedBadLinesMax { report("kappa: \(source) line \(number): \(reason) (sent to \(topic).dead-letter)") }
            try deadLetterWriter().append(
                key: nil, value: raw, timestamp: TimestampNanos(clock.nowNanos()),
                headers: [RecordHeader(key: "kappa.error", value: Array(reason.description.utf8)),
                          RecordHeader(key: "kappa.source", value: Array(source.utf8)),
                          RecordHeader(key: "kappa.line", value: Array(String(number).utf8))]
                    + (truncated ? [RecordHeader(key: "kappa.truncated", value: Array("true".utf8))] : []))
        }
        if bad == Self.reportedBadLinesMax + 1 && onError != .fail { report("kappa: more bad lines; reporting only the count from here") }
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
