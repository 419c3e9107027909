import Foundation
import KappaCore
import KappaFormat

/// A topic's settings, fixed at creation (`DATA/topics/NAME/topic.json`).
///
/// Retention by age compares a segment's largest record timestamp (event time, ms) with
/// the wall clock, exactly as Kafka's `retention.ms` does with CreateTime: a topic of old
/// (backfilled) events with `--retention 7d` keeps only its active segment. Retention by
/// bytes deletes the oldest segments while the partition stays above the limit without
/// them. Only whole, inactive segments are ever deleted.
public struct TopicConfig: Codable, Equatable, Sendable {
    public var partitions: Int32
    public var compression: String
    /// nil = keep forever (the Kappa default: the log is the source of truth).
    public var retentionMillis: Int64?
    public var retentionBytes: Int64?
    /// Roll the active segment when it would grow past this.
    public var segmentBytes: Int64
    /// Roll when a new batch's max timestamp is this far past the segment's first batch
    /// (Kafka's segment.ms, event-time based so a replay rolls where the live run did).
    public var segmentMillis: Int64
    /// The field produce extracts the key from, and so what the partitions are keyed by
    /// (jobs that group by another field repartition). Absent in older configs: user_id.
    public var keyField: String?
    /// Readers see only what the owning task has committed (`CommittedMarker`): set on
    /// the output, late and dead-letter topics of jobs, for exactly-once output.
    public var transactional: Bool?
    /// Values are raw bytes, not necessarily JSON (dead-letter topics): `consume
    /// --with-meta` prints them as JSON strings.
    public var rawValues: Bool?

    public static let segmentBytesDefault: Int64 = 128 << 20
    public static let segmentMillisDefault: Int64 = 7 * 24 * 3_600_000

    public init(partitions: Int32, compression: CompressionCodec = .lz4, retentionMillis: Int64? = nil,
                retentionBytes: Int64? = nil, segmentBytes: Int64 = segmentBytesDefault,
                segmentMillis: Int64 = segmentMillisDefault, keyField: String? = nil, transactional: Bool = false,
                rawValues: Bool = false) {
        self.partitions = partitions
        self.compression = compression.description
        self.retentionMillis = retentionMillis
        self.retentionBytes = retentionBytes
        self.segmentBytes = segmentBytes
        self.segmentMillis = segmentMillis
        self.keyField = keyField
        self.transactional = transactional ? true : nil
        self.rawValues = rawValues ? true : nil
    }

    public var isTransactional: Bool { transactional ?? false }
    public var partitionKeyField: String { keyField ?? "user_id" }

    public var codec: CompressionCodec { CompressionCodec(name: compression) ?? .lz4 }

    /// Refuses settings the log cannot honour, with the reason.
    public func validate() throws(KappaError) {
        guard partitions >= 1, partitions <= Int32(Limits.partitionsMax) else {
            throw KappaError(.invalidArgument, "partitions must be 1...\(Limits.partitionsMax), got \(partitions)")
        }
        guard CompressionCodec(name: compression) != nil else {
            throw KappaError(.invalidArgument, "compression must be lz4 or none, got '\(compression)'")
        }
        guard segmentBytes >= 4096, segmentBytes <= Limits.segmentBytesMax else {
            throw KappaError(.invalidArgument, "segment bytes must be 4096...\(Limits.segmentBytesMax), got \(segmentBytes)")
        }
        guard segmentMillis > 0 else { throw KappaError(.invalidArgument, "segment age must be positive") }
        if let r = retentionMillis, r <= 0 { throw KappaError(.invalidArgument, "retention must be positive, got \(r) ms") }
        if let r = retentionBytes, r <= 0 { throw KappaError(.invalidArgument, "retention bytes must be positive, got \(r)") }
    }

    func encoded() throws(KappaError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            return Array(try encoder.encode(self)) + [0x0A]
        } catch {
            throw KappaError(.invalidArgument, "topic config cannot be encoded: \(error)")
        }
    }

    static func decode(_ bytes: [UInt8], path: String) throws(KappaError) -> TopicConfig {
        do {
            let config = try JSONDecoder().decode(TopicConfig.self, from: Data(bytes))
            try config.validate()
            return config
        } catch let e as KappaError {
            throw KappaError(e.code, e.message, path: path)
        } catch {
            throw KappaError(.corruptData, "topic config is not valid: \(error)", path: path)
        }
    }
}

/// Durations as the CLI and job files write them: `500ms`, `30s`, `10m`, `1h`, `7d`.
public enum Duration {
    public static func parseMillis(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "ms" must win over "s": only accept a pure integer before the suffix.
            guard !number.isEmpty, number.allSatisfy(\.isASCIIDigit), let n = Int64(number) else { continue }
            let (v, o) = n.multipliedReportingOverflow(by: scale)
            return o ? nil : v
        }
        return nil
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
