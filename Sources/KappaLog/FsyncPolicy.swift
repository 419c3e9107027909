/// When appended bytes are forced to stable storage.
///
/// Every append is written (to the page cache) before it is acknowledged, so it
/// survives the death of the process (kill -9) under every policy. The policy decides
/// what survives a power loss or kernel crash:
/// - `always`: fsync after every append, before it is published; nothing acknowledged
///   is lost.
/// - `interval(ms)`: fsync at most every `ms` when there were writes, and on close;
///   at most the last interval is lost. The default, at 1 s.
/// - `never`: the OS flushes when it likes (Kafka's default, which relies on replicas).
/// Segments are always fsynced when they are rolled, whatever the policy, and each fsync
/// moves the partition's recovery point (`RecoveryPoint`).
public enum FsyncPolicy: Equatable, Sendable {
    case always
    case interval(millis: Int64)
    case never

    public static let `default` = FsyncPolicy.interval(millis: 1000)

    public init?(name: String) {
        switch name {
        case "always": self = .always
        case "interval": self = .default
        case "never": self = .never
        default: return nil
        }
    }
}
