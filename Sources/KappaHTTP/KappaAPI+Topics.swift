import Hummingbird
import KappaCore
import KappaFormat
import KappaIngest
import KappaJSON
import KappaLog
import KappaStreams
import NIOCore

/// `/v1/topics`: list, describe, ingest JSON Lines (as `kappa produce`), read records by
/// offset (as `kappa consume --with-meta`).
extension KappaAPI {
    func addTopicRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/topics") { _, _ in
            let dir = directory
            let lines = try await blocking { () throws(KappaError) in
                try dir.listTopics().map { (name) throws(KappaError) in Describe.topic(name, try dir.topicConfig(name)) }
            }
            return json("{\"topics\":[" + lines.joined(separator: ",") + "]}")
        }
        router.get("/v1/topics/:topic") { request, context in
            let topic = try request.path(context, "topic")
            let dir = directory
            let lines = try await blocking { () throws(KappaError) in
                let c = try topicConfig(dir, topic)
                return try (0..<c.partitions).map { (p) throws(KappaError) in Describe.partition(topic, p, try PartitionStatus.read(dir, TopicPartition(topic, p)), c) }
            }
            return json("{\"topic\":\(JSONEscape.quoted(topic)),\"partitions\":[" + lines.joined(separator: ",") + "]}")
        }
        router.post("/v1/topics/:topic/records") { request, context in try await ingest(request, context) }
        router.get("/v1/topics/:topic/records") { request, context in try await records(request, context) }
    }

    // MARK: ingest

    func ingest(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let topic = try request.path(context, "topic")
        let onErrorText = request.query("on_error") ?? "fail"
        guard let onError = Ingest.OnError(rawValue: onErrorText) else { throw Problem.badParameter("on_error", "must be fail, skip or dead-letter") }
        let keyField = request.query("key_field")
        let timeField = request.query("time_field") ?? "time_utc"
        if let length = request.headers[.contentLength].flatMap(Int.init), length > options.bodyBytesMax {
            throw Problem(.contentTooLarge, "the body is \(length) bytes; the limit is \(options.bodyBytesMax) (send fewer lines per request)",
                          extra: [("limit_bytes", "\(options.bodyBytesMax)")])
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: options.bodyBytesMax)
        } catch let e as HTTPError where e.status == .contentTooLarge {
            throw Problem(.contentTooLarge, "the body is over the limit of \(options.bodyBytesMax) bytes (send fewer lines per request); nothing was written",
                          extra: [("limit_bytes", "\(options.bodyBytesMax)")])
        }
        let dir = directory, options = self.options
        let outcome = try await blocking { () throws(KappaError) -> IngestOutcome in
            try Self.runIngest(body, topic: topic, onError: onError, keyField: keyField, timeField: timeField, directory: dir, options: options)
        }
        if let failure = outcome.failure {
            throw Problem(.badRequest, "line \(failure.line): \(failure.reason); wrote the \(outcome.written) record\(outcome.written == 1 ? "" : "s") before it and nothing after",
                          extra: [("line", "\(failure.line)"), ("reason", JSONEscape.quoted(failure.reason)), ("written", "\(outcome.written)")])
        }
        let errors = outcome.badLines.map { "{\"line\":\($0.line),\"reason\":\(JSONEscape.quoted($0.reason))}" }.joined(separator: ",")
        var answer = "{\"topic\":\(JSONEscape.quoted(topic)),\"written\":\(outcome.written),\"keyless\":\(outcome.keyless),\"bad\":\(outcome.bad),\"on_error\":\"\(onError.rawValue)\",\"errors\":[\(errors)]"
        if onError == .deadLetter && outcome.bad > 0 { answer += ",\"dead_letter_topic\":\(JSONEscape.quoted(topic + ".dead-letter"))" }
        return json(answer + "}")
    }

    struct IngestOutcome: Sendable {
        var written: Int
        var keyless: Int
        var bad: Int
        var badLines: [Ingest.BadLine]
        var failure: Ingest.BadLine?
    }

    /// The body through `Ingest`, exactly as `kappa produce` runs a file.
    static func runIngest(_ body: ByteBuffer, topic: String, onError: Ingest.OnError, keyField: String?, timeField: String,
                          directory: DataDirectory, options: HTTPServerOptions) throws(KappaError) -> IngestOutcome {
        _ = try topicConfig(directory, topic)
        try JobRegistry(directory: directory).refuseOutsideWrites(to: topic)
        let writer = try TopicWriter(directory: directory, topic: topic, fsync: options.fsync)
        let key = keyField ?? (writer.config.isKeyedByKafkaClients ? "" : writer.config.partitionKeyField)
        var ingest = Ingest(directory: directory, topic: topic, writer: writer, policy: options.fsync, onError: onError,
                            fields: try EventFields(keyField: key.isEmpty ? nil : key, timeField: timeField, lineBytesMax: options.lineBytesMax),
                            source: "http")
        let bytes = body.readableBytesView
        let result: Result<Void, KappaError> = bytes.withUnsafeBytes { raw in
            let reader = LineReader(bytes: raw, path: "http", lineBytesMax: options.lineBytesMax, padding: JSONFieldExtractor.padding)
            do throws(KappaError) {
                try ingest.run(reader)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let e) = result, ingest.failure == nil { throw e }
        return IngestOutcome(written: ingest.written, keyless: ingest.keyless, bad: ingest.bad, badLines: ingest.badLines, failure: ingest.failure)
    }

    static func topicConfig(_ dir: DataDirectory, _ topic: String) throws(KappaError) -> TopicConfig {
        guard (try? validateName(topic, what: "topic")) != nil, dir.topicExists(topic) else {
            throw KappaError(.notFound, "unknown topic '\(topic)' (GET /v1/topics lists them)")
        }
        return try dir.topicConfig(topic)
    }

    func topicConfig(_ dir: DataDirectory, _ topic: String) throws(KappaError) -> TopicConfig { try Self.topicConfig(dir, topic) }

    // MARK: records by offset

    func records(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let topic = try request.path(context, "topic")
        guard let partition = try request.integer("partition", in: 0...Int(Int32.max), default: nil) else {
            throw Problem.badParameter("partition", "required (0 ... partitions-1)")
        }
        let offset = try request.integer("offset", in: 0...Int(Int64.max), default: 0)!
        let limit = try request.integer("limit", in: 1...options.pageLimitMax, default: options.pageLimitDefault)!
        let dir = directory
        let bytes = try await blocking { () throws(KappaError) -> [UInt8] in
            let c = try topicConfig(dir, topic)
            guard partition < c.partitions else { throw KappaError(.notFound, "topic '\(topic)' has partitions 0...\(c.partitions - 1), not \(partition)") }
            return try Self.readRecords(dir, TopicPartition(topic, Int32(partition)), from: Offset(Int64(offset)), limit: limit, rawValues: c.rawValues ?? false)
        }
        return json(bytes)
    }

    /// `{"topic","partition","start_offset","end_offset","next_offset","records":[...]}`,
    /// each record as `consume --with-meta` prints it.
    static func readRecords(_ dir: DataDirectory, _ tp: TopicPartition, from: Offset, limit: Int, rawValues: Bool) throws(KappaError) -> [UInt8] {
        let reader = try PartitionReader(directory: dir, topicPartition: tp)
        let start = try reader.startOffset()
        let end = try reader.visibleEnd()?.offset ?? .zero
        var position = max(from, start)
        try reader.seek(to: position)
        var printer = RecordPrinter(withMeta: true, rawValues: rawValues)
        let out = ByteWriter(capacity: 64 << 10)
        let codec = LZ4Codec(), scratch = ByteWriter(capacity: 1 << 20)
        var count = 0
        var first = true
        out.append(Array("{\"topic\":\(JSONEscape.quoted(tp.topic)),\"partition\":\(tp.partition),\"start_offset\":\(start),\"end_offset\":\(end),\"records\":[".utf8))
        outer: while count < limit, var records = try reader.nextRecords(from: position, codec: codec, scratch: scratch) {
            let fromClient = records.fromKafkaClient
            while let record = try records.next() {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                printer.append(record, topic: tp, fromKafkaClient: fromClient, to: out)
                out.count -= 1  // the printer ends each record with a newline
                position = record.offset + 1
                count += 1
                if count == limit { break outer }
            }
        }
        out.append(Array("],\"next_offset\":\(position)}".utf8))
        return Array(out.bytes)
    }
}
