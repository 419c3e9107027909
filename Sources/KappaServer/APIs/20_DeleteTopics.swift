import KappaCore
import KappaLog
import KappaStreams
import NIOCore

// DeleteTopics (key 20), versions 1-3.
//
// Request:
//   topic_names [string], timeout_ms int32
// Response:
//   throttle_time_ms int32,
//   responses [name string, error_code int16]
//
// What `kappa topics delete` does: the topic's config goes first (it stops being a topic
// at once for every process), then its data. The output and internal topics of a job's
// registered versions are refused (POLICY_VIOLATION): `kappa jobs drop` removes them.

extension Broker {
    func deleteTopics(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let names = try r.stringArray()
        _ = try r.int32()
        try r.expectEnd("DeleteTopics v\(h.apiVersion)")
        let results = names.map { ($0, deleteTopic($0)) }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator)
        b.buffer.writeInteger(Int32(0))
        b.buffer.writeKafkaArray(results) { b, t in
            b.writeKafkaString(t.0)
            b.writeInteger(t.1.rawValue)
        }
        out.send(b.finish())
    }

    private func deleteTopic(_ name: String) -> ErrorCode {
        guard (try? validateName(name, what: "topic")) != nil else { return .invalidTopic }
        guard directory.topicExists(name) else { return .unknownTopicOrPartition }
        do {
            if let job = try JobRegistry(directory: directory).owningJob(ofTopic: name) {
                logger.notice("refused to delete a job's topic", metadata: ["topic": "\(name)", "job": "\(job)"])
                return .policyViolation
            }
            forget(topic: name)
            try directory.deleteTopic(name)
            logger.info("deleted topic", metadata: ["topic": "\(name)"])
            return .none
        } catch {
            return storageError(error, "deleting topic \(name)")
        }
    }
}
