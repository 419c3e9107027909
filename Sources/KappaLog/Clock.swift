#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time, passed in so the log core stays deterministic under test
/// (`KappaTesting.ManualClock`). Used only for fsync intervals and retention by age.
public protocol WallClock: Sendable {
    func nowNanos() -> Int64
}

public struct SystemClock: WallClock {
    public init() {}
    public func nowNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// A monotonic clock for measuring durations (never for event time).
public func monotonicNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// When appended bytes are forced to stable storage.
///
/// Every append is written (to the page cache) before it is acknowledged, so it
/// survives the death of the process (kill -9) under every policy. The policy decides
/// what survives a power loss or kernel crash:
/// - `always`: fsync after every append; nothing acknowledged is lost.
/// - `interval(ms)`: fsync at most every `ms` when there were writes, and on close;
///   at most the last interval is lost. The default, at 1 s.
/// - `never`: the OS flushes when it likes (Kafka's default, which relies on replicas).
/// Segments are always fsynced when they are rolled, whatever the policy.
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
