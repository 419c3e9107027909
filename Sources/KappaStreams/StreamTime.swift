import KappaCore

/// One source's stream time — the largest event time read from it, from the data, never
/// the clock — and the lateness of each event judged against it: an event more than
/// `grace` behind is late. Sessions and matches judge here, where the event is read,
/// before it is sent on to the key's owner; windows judge per window inside
/// `WindowPreAggregator`.
struct StreamClock: Equatable {
    let graceNanos: Int64
    private(set) var streamTime: TimestampNanos?
    private(set) var lateEvents: Int64 = 0

    init(graceNanos: Int64, streamTime: TimestampNanos? = nil, lateEvents: Int64 = 0) {
        precondition(graceNanos >= 0)
        self.graceNanos = graceNanos
        self.streamTime = streamTime
        self.lateEvents = lateEvents
    }

    /// Advances stream time to `time` if later; false (and counted) when `time` is late.
    @inline(__always)
    mutating func admit(_ time: TimestampNanos) -> Bool {
        let st = max(streamTime ?? time, time)
        streamTime = st
        guard time.rawValue >= st.rawValue &- graceNanos else {
            lateEvents += 1
            return false
        }
        return true
    }
}

/// What an owner task knows of the sources that send it records: each one's stream time
/// (from its watermark records, or read locally for a direct input), whether it has gone
/// idle (the opt-in `idle_timeout`), and the last sequence number applied from it — a
/// source numbers what it sends in increasing order (its input offsets for forwarded
/// events, a counter for window partials), so a copy that a restarted sender sends again
/// is recognised and dropped.
///
/// The *watermark* is the smallest stream time among the sources that are not idle: no
/// source will send an on-time event more than grace behind it. nil until every source
/// has reported. Source ids are global (`JobPlan.sourceId`); `sources` lists the ones
/// this owner waits for, ascending.
struct SourceProgress: Equatable {
    let sources: [Int32]
    private(set) var streamTimes: [TimestampNanos?]
    private(set) var lastSequence: [Int64]
    private(set) var idle: [Bool]
    /// Records dropped as copies of ones already applied.
    private(set) var duplicates: Int64 = 0

    init(sources: [Int32]) {
        precondition(sources == sources.sorted() && Set(sources).count == sources.count, "sources ascending, unique")
        self.sources = sources
        streamTimes = Array(repeating: nil, count: sources.count)
        lastSequence = Array(repeating: -1, count: sources.count)
        idle = Array(repeating: false, count: sources.count)
    }

    /// The slot of a source, nil if this owner does not wait for it.
    @inline(__always)
    func slot(_ source: Int32) -> Int? {
        if sources.count == 1 { return sources[0] == source ? 0 : nil }
        var lo = 0, hi = sources.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sources[mid] < source { lo = mid + 1 } else { hi = mid }
        }
        return lo < sources.count && sources[lo] == source ? lo : nil
    }

    /// Records `sequence` from `slot`; false when it is a copy of one applied before.
    @inline(__always)
    mutating func accept(slot: Int, sequence: Int64) -> Bool {
        guard sequence > lastSequence[slot] else {
            duplicates += 1
            return false
        }
        lastSequence[slot] = sequence
        return true
    }

    mutating func observe(slot: Int, streamTime: TimestampNanos, idle: Bool) {
        streamTimes[slot] = max(streamTimes[slot] ?? streamTime, streamTime)
        self.idle[slot] = idle
    }

    var watermark: TimestampNanos? {
        var w: TimestampNanos? = nil
        for i in streamTimes.indices where !idle[i] {
            guard let t = streamTimes[i] else { return nil }
            w = min(w ?? t, t)
        }
        return w
    }

    /// Every source waited for is idle.
    var allIdle: Bool { !idle.isEmpty && idle.allSatisfy { $0 } }

    func encode(into w: ByteWriter) {
        w.put(sources.count)
        for i in sources.indices {
            w.put(Int64(sources[i]))
            w.put(streamTimes[i])
            w.put(lastSequence[i])
            w.put(idle[i])
        }
        w.put(duplicates)
    }

    /// Decodes into this (fresh) value; the checkpoint must list the same sources.
    mutating func decode(_ r: inout StateReader) throws(StateReader.Failure) {
        let n = try r.count(max: 1 << 20)
        guard n == sources.count else { throw StateReader.Failure(description: "checkpoint waits for \(n) sources, the plan for \(sources.count)") }
        for i in 0..<n {
            let id = try r.int64()
            guard id == Int64(sources[i]) else { throw StateReader.Failure(description: "checkpoint source \(id), the plan's is \(sources[i])") }
            streamTimes[i] = try r.timestamp()
            lastSequence[i] = try r.int64()
            idle[i] = try r.bool()
        }
        duplicates = try r.int64()
    }
}
