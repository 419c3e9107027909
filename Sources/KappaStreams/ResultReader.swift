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
        let paths: [String]
        switch definition.operation {
        case .window: paths = ["key", "window_start"]
        case .session: paths = ["key", "session_start"]
        case .match: paths = ["ticket_id", "user_id", "ride_id"]
        }
        let extractor = try JSONFieldExtractor(paths: paths)
        let codec = LZ4Codec()
        let scratch = ByteWriter(capacity: 1 << 20)
        let padded = ByteWriter(capacity: 4096)
        var latest: [String: Int] = [:]
        var rows: [Row] = []
        for p in 0..<config.partitions {
            let reader = try PartitionReader(directory: directory, topicPartition: TopicPartition(topic, p))
            var position = try reader.startOffset()
            try reader.seek(to: position)
            while var records = try reader.nextRecords(from: position, codec: codec, scratch: scratch) {
                while let record = try records.next() {
                    position = record.offset + 1
                    padded.removeAll()
                    padded.reserve(record.value.count + JSONFieldExtractor.padding)
                    padded.append(record.value)
                    // A job writes JSON: an output record that is not would be a bug; skip
                    // it rather than fail every query.
                    guard (try? extractor.parse(padded.bytes)) != nil else { continue }
                    let a = extractor.field(0).text ?? ""
                    let b = extractor.field(1).text ?? ""
                    let identity: String
                    var row = Row(identity: "", key: a, json: Array(record.value), rideId: nil)
                    if case .match = definition.operation {
                        identity = a
                        row.rideId = extractor.field(2).text
                    } else {
                        identity = a + "\u{1F}" + (EventTime.parse(b).map { $0.decimalSeconds }.successValue ?? b)
                    }
                    row.identity = identity
                    if let i = latest[identity] { rows[i] = row } else {
                        latest[identity] = rows.count
                        rows.append(row)
                    }
                }
            }
        }
        return rows
    }
}

extension Result {
    var successValue: Success? {
        if case .success(let v) = self { return v }
        return nil
    }
}
