import KappaCore

extension JobRegistry {
    /// The job whose registered version owns `topic` (its output, late, dead-letter or
    /// repartition topic), if any. Such topics are deleted with their version (`kappa jobs
    /// drop`), never on their own: deleting one under a running or switchable version would
    /// break its exactly-once state. `kappa topics delete` and `kappa serve`'s DeleteTopics
    /// refuse them.
    public func owningJob(ofTopic topic: String) throws(KappaError) -> String? {
        for name in try names() {
            guard let record = try load(name) else { continue }
            for v in record.versions {
                let d = v.definition
                let owned = [Self.outputTopic(d, v.version), Self.lateTopic(d, v.version),
                             Self.deadLetterTopic(d, v.version), Self.repartitionTopic(d, v.version)]
                if owned.contains(topic) { return name }
            }
        }
        return nil
    }

    /// Throws unless `topic` may be written from outside (`kappa produce`, HTTP ingest):
    /// a job's topics are written by the job alone — a record added beside its output
    /// would be cut away when the job next starts from its checkpoint.
    public func refuseOutsideWrites(to topic: String) throws(KappaError) {
        if let job = try owningJob(ofTopic: topic) {
            throw KappaError(.conflict, "topic '\(topic)' belongs to job '\(job)'; only the job writes it")
        }
    }
}
