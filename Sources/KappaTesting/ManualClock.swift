import KappaLog
import Synchronization

/// A `WallClock` that moves only when a test says so.
///
/// Contract:
/// - `nowNanos()` returns exactly the last value set (initially `startNanos`), never
///   reading the system clock, so a test that drives retention by age or fsync intervals
///   replays identically.
/// - `monotonicNanos()` moves with `advance` only (from 0), never backwards: `set`
///   steps the wall clock as an administrator would, which a monotonic clock ignores.
/// - Time may be moved backwards with `set(nanos:)` (to test a clock step); `advance`
///   refuses negative steps, which are a programmer error.
/// - Thread-safe: the value sits behind a `Mutex`, so one clock may be shared by writers
///   on several threads.
public final class ManualClock: WallClock, Sendable {
    private let nanos: Mutex<Int64>
    private let monotonic = Mutex<Int64>(0)

    /// Starts at `startNanos` since the epoch (default 2016-03-12T00:00:00Z, around the
    /// Rebu data set).
    public init(startNanos: Int64 = 1_457_740_800 * 1_000_000_000) {
        nanos = Mutex(startNanos)
    }

    public func nowNanos() -> Int64 { nanos.withLock { $0 } }

    public func monotonicNanos() -> Int64 { monotonic.withLock { $0 } }

    /// Milliseconds since the epoch, rounded down, as retention compares them.
    public var nowMillis: Int64 { nowNanos() / 1_000_000 }

    /// Moves the clock forward by `byNanos` (must be >= 0).
    public func advance(byNanos delta: Int64) {
        precondition(delta >= 0, "ManualClock.advance by a negative step \(delta); use set(nanos:)")
        nanos.withLock { $0 += delta }
        monotonic.withLock { $0 += delta }
    }

    /// Moves the clock forward by `byMillis` (must be >= 0).
    public func advance(byMillis delta: Int64) { advance(byNanos: delta * 1_000_000) }

    /// Sets the clock to `nanos` since the epoch, forwards or backwards.
    public func set(nanos value: Int64) { nanos.withLock { $0 = value } }
}
