import KappaCore
import KappaLog
import NIOCore

// Metadata (key 3), versions 0-8.
//
// Request:
//   topics                    [name string]   v0: empty = all topics; v1+: nullable, null = all
//   allow_auto_topic_creation bool            (v4+; before v4 creation is always allowed)
//   include_cluster_authorized_operations bool, include_topic_authorized_operations bool (v8+)
// Response:
//   throttle_time_ms int32 (v3+)
//   brokers [node_id int32, host string, port int32, rack nullable string (v1+)]
//   cluster_id nullable string (v2+)
//   controller_id int32 (v1+)
//   topics [error_code int16, name string, is_internal bool (v1+),
//           partitions [error_code int16, partition_index int32, leader_id int32,
//                       leader_epoch int32 (v7+), replica_nodes [int32], isr_nodes [int32],
//                       offline_replicas [int32] (v5+)],
//           topic_authorized_operations int32 (v8+)]
//   cluster_authorized_operations int32 (v8+)
//
// One broker (this server) leads every partition at leader epoch 0, with itself as the
// only replica: Kappa is a single node. Authorized operations are "not computed".
// A missing topic is created when the request allows it and the server was started
// with topic auto-creation on (Kafka's default), as `kappa topics create` would.

struct MetadataRequest: Equatable {
    /// nil: every topic.
    var topics: [String]?
    var allowAutoTopicCreation: Bool

    static func decode(_ r: inout KafkaReader, version: Int16) throws(RequestDecodeError) -> MetadataRequest {
        var topics = try r.nullableArray(elementBytesMin: 2) { (r: inout KafkaReader) throws(RequestDecodeError) in try r.string() }
        if version == 0, topics?.isEmpty == true { topics = nil }
        let allow = version >= 4 ? try r.bool() : true
        if version >= 8 {
            _ = try r.bool()
            _ = try r.bool()
        }
        try r.expectEnd("Metadata v\(version)")
        return MetadataRequest(topics: topics, allowAutoTopicCreation: allow)
    }
}

struct MetadataTopic: Equatable {
    var errorCode: ErrorCode
    var name: String
    var partitions: Int32
}

extension Broker {
    func metadata(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let request = try MetadataRequest.decode(&r, version: h.apiVersion)
        var topics: [MetadataTopic] = []
        if let names = request.topics {
            for name in names { topics.append(metadataTopic(name, create: request.allowAutoTopicCreation)) }
        } else {
            for name in (try? directory.listTopics()) ?? [] {
                if let config = topicConfig(name) { topics.append(MetadataTopic(errorCode: .none, name: name, partitions: config.partitions)) }
            }
        }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator, capacity: 256 + topics.count * 64)
        encodeMetadata(topics, into: &b.buffer, version: h.apiVersion)
        out.send(b.finish())
    }

    private func metadataTopic(_ name: String, create: Bool) -> MetadataTopic {
        if let config = topicConfig(name) { return MetadataTopic(errorCode: .none, name: name, partitions: config.partitions) }
        guard (try? validateName(name, what: "topic")) != nil else { return MetadataTopic(errorCode: .invalidTopic, name: name, partitions: 0) }
        guard create, options.autoCreateTopics else { return MetadataTopic(errorCode: .unknownTopicOrPartition, name: name, partitions: 0) }
        let config = TopicConfig.kafkaCreated(partitions: options.defaultPartitions)
        do {
            try directory.createTopic(name, config: config)
            logger.info("created topic on first use", metadata: ["topic": "\(name)", "partitions": "\(config.partitions)"])
        } catch where error.code == .alreadyExists {
            // Another process created it first: use theirs.
        } catch {
            logger.error("could not create topic", metadata: ["topic": "\(name)", "error": "\(error)"])
            return MetadataTopic(errorCode: .unknownTopicOrPartition, name: name, partitions: 0)
        }
        guard let made = topicConfig(name) else { return MetadataTopic(errorCode: .unknownTopicOrPartition, name: name, partitions: 0) }
        return MetadataTopic(errorCode: .none, name: name, partitions: made.partitions)
    }

    func encodeMetadata(_ topics: [MetadataTopic], into b: inout ByteBuffer, version v: Int16) {
        if v >= 3 { b.writeInteger(Int32(0)) }
        b.writeKafkaArrayCount(1)
        b.writeInteger(options.nodeId)
        b.writeKafkaString(advertised.host)
        b.writeInteger(advertised.port)
        if v >= 1 { b.writeKafkaNullableString(nil) }
        if v >= 2 { b.writeKafkaNullableString(clusterId) }
        if v >= 1 { b.writeInteger(options.nodeId) }
        b.writeKafkaArray(topics) { b, t in
            b.writeInteger(t.errorCode.rawValue)
            b.writeKafkaString(t.name)
            if v >= 1 { b.writeKafkaBool(false) }
            b.writeKafkaArrayCount(Int(t.partitions))
            for p in 0..<t.partitions {
                b.writeInteger(ErrorCode.none.rawValue)
                b.writeInteger(p)
                b.writeInteger(options.nodeId)
                if v >= 7 { b.writeInteger(Broker.leaderEpoch) }
                b.writeKafkaArray([options.nodeId]) { b, n in b.writeInteger(n) }
                b.writeKafkaArray([options.nodeId]) { b, n in b.writeInteger(n) }
                if v >= 5 { b.writeKafkaArrayCount(0) }
            }
            if v >= 8 { b.writeInteger(authorizedOperationsNotComputed) }
        }
        if v >= 8 { b.writeInteger(authorizedOperationsNotComputed) }
    }
}
