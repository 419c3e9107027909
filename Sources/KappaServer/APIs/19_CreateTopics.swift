import Foundation
import KappaCore
import KappaFormat
import KappaLog
import NIOCore

// CreateTopics (key 19), versions 2-4.
//
// Request:
//   topics [name string, num_partitions int32, replication_factor int16,
//           assignments [partition_index int32, broker_ids [int32]],
//           configs [name string, value nullable string]],
//   timeout_ms int32, validate_only bool
// Response:
//   throttle_time_ms int32,
//   topics [name string, error_code int16, error_message nullable string]
//
// v4: num_partitions and replication_factor may be -1 (the broker's defaults: the
// server's default partition count, one replica). What `kappa topics create` does: the
// topic's key field is recorded as unknown (`TopicConfig.kafkaClientKeyField`), so jobs
// repartition it. Configs mapped: retention.ms, retention.bytes (-1: keep forever),
// segment.bytes, segment.ms, compression.type (lz4, none/uncompressed, producer = lz4:
// Kappa's own writers' codec; Kafka clients' batches are stored as sent, in none or lz4).
// cleanup.policy=compact is accepted (Kafka Connect's internal topics need it) but not
// applied yet: the topic keeps every record, which readers that keep the last value per
// key read correctly. Replication factors above 1 and replica assignments naming another
// broker are refused: Kappa is one node.

struct NewTopic {
    var name: String
    var partitions: Int32
    var replicationFactor: Int16
    var assignments: [(Int32, [Int32])]
    var configs: [(String, String?)]
}

extension Broker {
    func createTopics(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let v = h.apiVersion
        let topics = try r.array(elementBytesMin: 2 + 4 + 2 + 4 + 4) { (r: inout KafkaReader) throws(RequestDecodeError) in
            NewTopic(name: try r.string(), partitions: try r.int32(), replicationFactor: try r.int16(),
                     assignments: try r.array(elementBytesMin: 8) { (r: inout KafkaReader) throws(RequestDecodeError) in (try r.int32(), try r.int32Array()) },
                     configs: try r.array(elementBytesMin: 4) { (r: inout KafkaReader) throws(RequestDecodeError) in (try r.string(), try r.nullableString()) })
        }
        _ = try r.int32()
        let validateOnly = try r.bool()
        try r.expectEnd("CreateTopics v\(v)")
        var results: [(String, ErrorCode, String?)] = []
        for t in topics {
            if results.contains(where: { $0.0 == t.name }) || topics.filter({ $0.name == t.name }).count > 1 {
                results.append((t.name, .invalidRequest, "topic \(t.name) is named more than once in the request"))
                continue
            }
            let (code, message) = createTopic(t, validateOnly: validateOnly)
            results.append((t.name, code, message))
        }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        b.buffer.writeInteger(Int32(0))
        b.buffer.writeKafkaArray(results) { b, t in
            b.writeKafkaString(t.0)
            b.writeInteger(t.1.rawValue)
            b.writeKafkaNullableString(t.2)
        }
        out.send(b.finish())
    }

    private func createTopic(_ t: NewTopic, validateOnly: Bool) -> (ErrorCode, String?) {
        if (try? validateName(t.name, what: "topic")) == nil {
            return (.invalidTopic, "topic names are 1 to 249 characters of letters, digits, '.', '_' and '-'")
        }
        if topicConfig(t.name) != nil { return (.topicAlreadyExists, "topic '\(t.name)' already exists") }
        guard t.replicationFactor == -1 || t.replicationFactor == 1 || !t.assignments.isEmpty else {
            return (.invalidReplicationFactor, "replication factor \(t.replicationFactor) is larger than the 1 broker available")
        }
        var partitions = t.partitions == -1 ? options.defaultPartitions : t.partitions
        if !t.assignments.isEmpty {
            guard t.partitions == -1, t.assignments.allSatisfy({ $0.1 == [options.nodeId] }),
                  Set(t.assignments.map(\.0)) == Set(0..<Int32(t.assignments.count)) else {
                return (.invalidReplicaAssignment, "replica assignments must give every partition to broker \(options.nodeId) alone")
            }
            partitions = Int32(t.assignments.count)
        }
        guard partitions >= 1, partitions <= Int32(Limits.partitionsMax) else {
            return (.invalidPartitions, "partitions must be 1...\(Limits.partitionsMax), got \(partitions)")
        }
        var config = TopicConfig.kafkaCreated(partitions: partitions)
        for (name, value) in t.configs {
            if let problem = apply(name, value, to: &config) { return (.invalidConfig, problem) }
        }
        do {
            try config.validate()
        } catch {
            return (.invalidConfig, error.message)
        }
        guard !validateOnly else { return (.none, nil) }
        do {
            try directory.createTopic(t.name, config: config)
        } catch where error.code == .alreadyExists {
            return (.topicAlreadyExists, error.message)
        } catch {
            return (storageError(error, "creating topic \(t.name)"), error.description)
        }
        configs[t.name] = nil
        logger.info("created topic", metadata: ["topic": "\(t.name)", "partitions": "\(partitions)"])
        return (.none, nil)
    }

    /// Kafka topic configs that change nothing on one Kappa node, accepted and ignored.
    static let ignoredTopicConfigs: Set<String> = [
        "min.insync.replicas", "unclean.leader.election.enable", "max.message.bytes", "flush.messages", "flush.ms",
        "index.interval.bytes", "segment.index.bytes", "segment.jitter.ms", "file.delete.delay.ms", "preallocate",
        "min.cleanable.dirty.ratio", "min.compaction.lag.ms", "max.compaction.lag.ms", "delete.retention.ms",
        "message.downconversion.enable", "follower.replication.throttled.replicas", "leader.replication.throttled.replicas",
        "message.timestamp.difference.max.ms", "message.timestamp.before.max.ms", "message.timestamp.after.max.ms",
        "local.retention.ms", "local.retention.bytes", "remote.storage.enable",
    ]

    /// Applies one Kafka topic config; a reason when it cannot be honoured.
    private func apply(_ name: String, _ value: String?, to config: inout TopicConfig) -> String? {
        let text = value ?? ""
        func integer() -> Int64? { Int64(text) }
        switch name {
        case "retention.ms":
            guard let ms = integer(), ms == -1 || ms > 0 else { return "retention.ms must be -1 or positive, got '\(text)'" }
            config.retentionMillis = ms == -1 ? nil : ms
        case "retention.bytes":
            guard let b = integer(), b == -1 || b > 0 else { return "retention.bytes must be -1 or positive, got '\(text)'" }
            config.retentionBytes = b == -1 ? nil : b
        case "segment.bytes":
            guard let b = integer() else { return "segment.bytes must be an integer, got '\(text)'" }
            config.segmentBytes = b
        case "segment.ms":
            guard let ms = integer(), ms > 0 else { return "segment.ms must be positive, got '\(text)'" }
            config.segmentMillis = ms
        case "compression.type":
            switch text {
            case "lz4", "producer": config.compression = CompressionCodec.lz4.description
            case "none", "uncompressed": config.compression = CompressionCodec.none.description
            default: return "compression.type '\(text)' is not supported (lz4, none, uncompressed, producer)"
            }
        case "cleanup.policy":
            let policies = Set(text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            guard !policies.isEmpty, policies.isSubset(of: ["delete", "compact"]) else { return "cleanup.policy '\(text)' is not delete or compact" }
            if policies.contains("compact") {
                logger.notice("cleanup.policy=compact accepted but not applied yet: the topic keeps every record", metadata: ["config": "\(text)"])
            }
        case "message.timestamp.type":
            guard text == "CreateTime" else { return "message.timestamp.type must be CreateTime (Kappa keeps the producer's event time)" }
        default:
            guard Broker.ignoredTopicConfigs.contains(name) else { return "unknown topic config '\(name)'" }
        }
        return nil
    }
}

extension TopicConfig {
    /// A topic as CreateTopics (or auto-creation) makes it: lz4, kept forever, keyed by
    /// the Kafka client's keys rather than a known JSON field.
    static func kafkaCreated(partitions: Int32) -> TopicConfig {
        TopicConfig(partitions: partitions, compression: .lz4, keyField: TopicConfig.kafkaClientKeyField)
    }
}
