import KappaCore
import KappaFormat
import KappaLog
import KappaStreams

/// What the broker keeps open for one partition it serves: a writer (opened at the first
/// Produce, so a server that only serves reads never takes the writer path), the probe
/// that answers where the partition starts and ends, and the sequence state of the
/// idempotent producers writing to it (rebuilt from batch headers at first use).
/// Owned by the broker's loop.
final class ServedPartition {
    let topicPartition: TopicPartition
    let config: TopicConfig
    let directory: DataDirectory
    let fsync: FsyncPolicy
    let probe: PartitionEndProbe
    let sealed = SealedBatches()
    private(set) var writer: PartitionWriter?
    private var producerTable: ProducerTable?
    /// The log start as last seen (answers Produce's log_start_offset without a probe).
    var lastKnownStart: Offset = .zero
    /// Why Kafka clients may not write here, if they may not: a job's own topics (its
    /// output, late, dead-letter and repartition topics) are written by the job alone,
    /// which truncates what it wrote after its last checkpoint.
    let readOnlyReason: String?

    init(directory: DataDirectory, topicPartition: TopicPartition, config: TopicConfig, fsync: FsyncPolicy) throws(KappaError) {
        self.topicPartition = topicPartition
        self.config = config
        self.directory = directory
        self.fsync = fsync
        probe = try PartitionEndProbe(directory: directory, topicPartition: topicPartition)
        if let job = try JobRegistry(directory: directory).owningJob(ofTopic: topicPartition.topic) {
            readOnlyReason = "topic \(topicPartition.topic) belongs to job \(job): only the job writes it"
        } else if config.isTransactional {
            readOnlyReason = "topic \(topicPartition.topic) is transactional: only its owner writes it"
        } else {
            readOnlyReason = nil
        }
    }

    /// Start and end as readers see them now.
    func bounds() throws(KappaError) -> PartitionEndProbe.Bounds {
        let b = try probe.read()
        lastKnownStart = b.start
        return b
    }

    func openWriter() throws(KappaError) -> PartitionWriter {
        if let writer { return writer }
        let w = try PartitionWriter(directory: directory, topicPartition: topicPartition, config: config, fsync: fsync)
        writer = w
        return w
    }

    /// After a failed append the writer's view of the tail is not to be trusted: the next
    /// append opens a new one, which re-validates the tail.
    func dropWriter() -> KappaError? {
        sealed.removeAll()
        defer { writer = nil }
        do {
            try writer?.close()
            return nil
        } catch {
            return error
        }
    }

    /// The idempotent producers' state, rebuilt from the recent batch headers first.
    func producers() throws(KappaError) -> ProducerTable {
        if let producerTable { return producerTable }
        var table = ProducerTable()
        try probe.forEachRecentBatchHeader(segmentsMax: ServerLimits.producerStateSegments) { header in
            table.replay(header)
        }
        producerTable = table
        return table
    }

    func setProducers(_ table: ProducerTable) { producerTable = table }

    func close() throws(KappaError) {
        try writer?.close()
        writer = nil
    }
}
