import KappaCore
import KappaLog

/// How `kappa serve` runs its Kafka listener. Validated by the CLI before the server
/// starts (a bad setting is refused with a message, never discovered at the first
/// request).
public struct KafkaServerOptions: Sendable {
    /// Address to bind; port 0 picks a free one (tests).
    public var host: String
    public var port: Int
    /// What Metadata and FindCoordinator tell clients to connect to; nil = the bound
    /// address (the bound port when `port` is 0).
    public var advertisedHost: String?
    public var advertisedPort: Int?
    /// This broker's id in Metadata: the leader of every partition.
    public var nodeId: Int32 = 1
    /// When appends are forced to disk (`kappa produce`'s `--fsync`). A Produce with
    /// acks 1 or -1 is answered once its batches are written (they survive kill -9) and,
    /// under `always`, fsynced; acks 0 gets no answer at all.
    public var fsync: FsyncPolicy = .default
    /// Kafka's `auto.create.topics.enable` (default on): a Metadata request that allows
    /// it creates a missing topic with `defaultPartitions` partitions.
    public var autoCreateTopics = true
    /// Kafka's `num.partitions`: partitions of auto-created topics and of CreateTopics
    /// requests that leave the count to the broker (-1).
    public var defaultPartitions: Int32 = 1
    /// Kafka's `group.initial.rebalance.delay.ms` (default 3 s): how long a group that
    /// forms from empty waits for more members before its first generation, extended by
    /// the same again for each member that joins meanwhile, up to the rebalance timeout.
    public var groupInitialRebalanceDelayMillis: Int64 = 3000
    /// Kafka's `group.min.session.timeout.ms` / `group.max.session.timeout.ms`; a join
    /// asking for a session timeout outside is refused (INVALID_SESSION_TIMEOUT). The
    /// minimum is lower than Kafka's 6 s: one machine has no network partitions to ride out.
    public var groupSessionTimeoutMillis: ClosedRange<Int64> = 1000...1_800_000

    public init(host: String = "127.0.0.1", port: Int = 9092) {
        self.host = host
        self.port = port
    }

    /// Refuses settings the server cannot honour, with the reason.
    public func validate() throws(KappaError) {
        guard port >= 0, port <= 65535 else { throw KappaError(.invalidArgument, "port \(port) is outside 0...65535") }
        if let p = advertisedPort, p < 1 || p > 65535 { throw KappaError(.invalidArgument, "advertised port \(p) is outside 1...65535") }
        guard defaultPartitions >= 1, defaultPartitions <= Int32(Limits.partitionsMax) else {
            throw KappaError(.invalidArgument, "default partitions must be 1...\(Limits.partitionsMax), got \(defaultPartitions)")
        }
        guard groupInitialRebalanceDelayMillis >= 0 else { throw KappaError(.invalidArgument, "the initial rebalance delay must not be negative") }
    }
}

/// The address a broker tells its clients, fixed once the listener is bound.
struct AdvertisedAddress: Sendable {
    var host: String
    var port: Int32
}
