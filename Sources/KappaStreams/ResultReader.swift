import KappaCore
import KappaFormat
import KappaJSON
import KappaLog

/// Reads a version's results back from its output topic (the durable form of its
/// state store, as a changelog is in Kafka Streams): every committed output record, with
/// its identity — (key, window_start) for windows, (key, session_start) for sessions,
/// ticket_id for matches. For `emit: updates` the last record of an identity wins.
public struct ResultReader {
    /// The identity of a window or session row: its key and start.
    public static func identity(_ key: String, _ start: TimestampNanos) -> String { key + "\u{1F}" + start.decimalSeconds }

    public struct Row: Equatable, Sendable {
        public var identity: String
        public var key: String
        public var json: [UInt8]
        /// For matches: the matched ride, to answer "ride → tickets".
        public var rideId: String?

        public init(identity: String, key: String, json: [UInt8], rideId: String?) {
            self.identity = identity
            self.key = key
            self.json = json
            self.rideId = rideId
        }
    }

    public static func rows(directory: DataDirectory, definition: JobDefinition, version: Int) throws(KappaError) -> [Row] {
        let topic = JobRegistry.outputTopic(definition, version)
        let config = try directory.topicConfig(topic)
        let parser = try Parser(definition)
        var latest: [String: Int] = [:]
        var rows: [Row] = []
        for p in 0..<config.partitions {
            try forEachRow(directory: directory, parser: parser, topicPartition: TopicPartition(topic, p), from: .zero, to: nil) { row, _ in
                if let i = latest[row.identity] { rows[i] = row } else {
                    latest[row.identity] = rows.count
                    rows.append(row)
                }
            }
        }
        return rows
    }

    /// Extracts a row's identity from an output record of one job definition.
    public final class Parser {
        let definition: JobDefinition
        let extractor: JSONFieldExtractor
        let codec = LZ4Codec()
        let scratch = ByteWriter(capacity: 1 << 20)
        let padded = ByteWriter(capacity: 4096)

        public init(_ definition: JobDefinition) throws(KappaError) {
            self.definition = definition
            let paths: [String]
            switch definition.operation {
            case .window: paths = ["key", "window_start"]
            case .session: paths = ["key", "session_start"]
            case .match: paths = ["ticket_id", "user_id", "ride_id"]
            }
            extractor = try JSONFieldExtractor(paths: paths)
        }

        func row(_ value: UnsafeRawBufferPointer) -> Row? {
            padded.removeAll()
            padded.reserve(value.count + JSONFieldExtractor.padding)
            padded.append(value)
            // A job writes JSON: an output record that is not would be a bug; skip
            // it rather than fail every query.
            guard (try? extractor.parse(padded.bytes)) != nil else { return nil }
            let a = extractor.field(0).text ?? ""
            let b = extractor.field(1).text ?? ""
            var row = Row(identity: "", key: a, json: Array(value), rideId: nil)
            if case .match = definition.operation {
                row.identity = a
                row.rideId = extractor.field(2).text
            } else {
                row.identity = a + "\u{1F}" + (EventTime.parse(b).map { $0.decimalSeconds }.successValue ?? b)
            }
            return row
        }
    }

    /// Calls `body` with each committed output record of one partition from `from` up to
    /// `to` (exclusive; nil: the committed end), with its offset. Returns the offset after
    /// the last record read.
    @discardableResult
    public static func forEachRow(directory: DataDirectory, parser: Parser, topicPartition: TopicPartition, from: Offset, to: Offset?,
                                  _ body: (Row, Offset) -> Void) throws(KappaError) -> Offset {
        let reader = try PartitionReader(directory: directory, topicPartition: topicPartition)
        var position = max(from, try reader.startOffset())
        try reader.seek(to: position)
        while var records = try reader.nextRecords(from: position, codec: parser.codec, scratch: parser.scratch) {
            while let record = try records.next() {
                if let to, record.offset >= to { return position }
                position = record.offset + 1
                if let row = parser.row(record.value) { body(row, record.offset) }
            }
        }
        return position
    }
}

extension Result {
    var successValue: Success? {
        if case .success(let v) = self { return v }
        return nil
    }
}
