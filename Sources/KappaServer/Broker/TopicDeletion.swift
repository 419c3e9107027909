import KappaCore
import KappaStreams

/// Which topics DeleteTopics must leave alone: the output, late, dead-letter and
/// repartition topics of every registered job version belong to that job (`kappa jobs
/// drop` deletes them with its checkpoints); deleting them under a running or switchable
/// version would break its exactly-once state.
enum TopicDeletion {
    static func owningJob(of topic: String, registry: JobRegistry) throws(KappaError) -> String? {
        for name in try registry.names() {
            guard let record = try registry.load(name) else { continue }
            for v in record.versions {
                let d = v.definition
                let owned = [JobRegistry.outputTopic(d, v.version), JobRegistry.lateTopic(d, v.version),
                             JobRegistry.deadLetterTopic(d, v.version), JobRegistry.repartitionTopic(d, v.version)]
                if owned.contains(topic) { return name }
            }
        }
        return nil
    }
}
