import KappaCore
import KappaFormat

extension TopicConfig {
    /// The `keyField` of a topic created over the Kafka protocol (`kappa serve`): its
    /// records are keyed by whatever bytes the Kafka client chose, not by a JSON field
    /// Kappa knows. It is not a field path any job names, so a job grouping such a topic
    /// by any field repartitions it (`keyField` absent still means `user_id`, for configs
    /// written before it existed). `kappa produce` into such a topic sends records without
    /// a key (round-robin) unless given `--key-field`.
    public static let kafkaClientKeyField = "@kafka-client-key"

    /// True for topics created over the Kafka protocol (see `kafkaClientKeyField`).
    public var isKeyedByKafkaClients: Bool { keyField == Self.kafkaClientKeyField }

    /// Leader epoch stamped into batches appended over the Kafka protocol (Kafka brokers
    /// stamp theirs there too; the field is outside the CRC). Kappa's own writers leave -1.
    /// Readers use it to know a batch came from a Kafka client: its values need not be
    /// JSON (`kappa produce` validated every value it wrote).
    public static let kafkaLeaderEpoch: Int32 = 0

    /// True when the batch whose first bytes are `batch` was appended over the Kafka
    /// protocol (its leader epoch is not Kappa's -1).
    public static func cameFromKafkaClient(_ batch: UnsafeRawBufferPointer) -> Bool {
        batch.count >= RecordBatchLayout.magicOffset
            && batch.loadBigEndian(at: RecordBatchLayout.partitionLeaderEpochOffset, as: Int32.self) >= 0
    }
}
