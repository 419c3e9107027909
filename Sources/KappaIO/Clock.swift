#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one clock the log and everything above it are given, so that tests drive time
/// (`KappaTesting.ManualClock`) and the core stays deterministic. Two readings:
/// - `nowNanos()`: wall-clock time since the epoch (retention by age, timestamps of
///   dead letters); may jump when the system clock is set.
/// - `monotonicNanos()`: a clock that never goes backwards, for intervals (fsync
///   interval, commit and rebalance periods, checkpoint timing). Its zero is arbitrary.
/// Neither is ever used as event time. Implementations are thread-safe.
public protocol WallClock: Sendable {
    func nowNanos() -> Int64
    func monotonicNanos() -> Int64
}

extension WallClock {
    /// The system's monotonic clock, for clocks that only model wall time.
    public func monotonicNanos() -> Int64 { systemMonotonicNanos() }
}

/// The operating system's clocks (CLOCK_REALTIME and CLOCK_MONOTONIC).
public struct SystemClock: WallClock {
    public init() {}
    public func nowNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    public func monotonicNanos() -> Int64 { systemMonotonicNanos() }
}

/// CLOCK_MONOTONIC in nanoseconds.
@inline(__always)
func systemMonotonicNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// The system's monotonic clock, for measuring durations in front ends (progress lines,
/// command timings). Library code takes an injected `WallClock` instead.
public func monotonicNanos() -> Int64 { systemMonotonicNanos() }
