import Benchmark
import Foundation
import KappaCore
import KappaHistory
import KappaLog
import RebuGenerator

/// The user-history index (issue #10): indexing throughput, and the latency of a page
/// at 1M and at 10M events in the log — the same 20,000 users, so at 10M each user's
/// history is ten times longer and the index ten times larger. Target: the 10M page p50
/// at most 1.5x the 1M page p50 (a page costs one index seek plus one batch read per
/// entry, whatever the log's length).
///
/// Data (made once in $KAPPA_BENCH_DIR/history-N): Rebu `app_events`, `rides` and
/// `tickets` (seed 7, 20,000 users) produced by `kappa produce` into 4 partitions each.
enum HistoryFixture {
    static let users = 20_000
    static let scales = [1_000_000, 10_000_000]

    static func dir(_ events: Int) -> String { Fixture.directory + "/history-\(events / 1_000_000)M" }

    /// The log of `events` app events (plus rides and tickets), produced once.
    static func prepare(_ events: Int) {
        let dir = dir(events)
        let marker = dir + "/ready"
        if FileManager.default.fileExists(atPath: marker) { return }
        try? FileManager.default.removeItem(atPath: dir)
        let gen = dir + "/gen"
        _ = try! RebuGenerator.write(RebuConfig(seed: 7, appEvents: events, users: users), to: gen)
        for topic in ["app_events", "rides", "tickets"] {
            Fixture.run(Fixture.kappa, ["topics", "create", topic, "--partitions", "4", "--data", dir + "/data"])
            Fixture.run(Fixture.kappa, ["produce", topic, gen + "/\(topic).jsonl", "--data", dir + "/data"])
        }
        try! FileManager.default.removeItem(atPath: gen)
        FileManager.default.createFile(atPath: marker, contents: nil)
    }

    /// Builds the index of `events` from scratch with `kappa history catch-up` (a child,
    /// so its peak memory is its own): wall time, records read, peak RSS.
    static func build(_ events: Int) -> (nanos: Int64, records: Int, peakRSSKiB: Int, diskBytes: Int64) {
        let data = dir(events) + "/data"
        try? FileManager.default.removeItem(atPath: data + "/history")
        let m = StreamFixture.measureCPU(Fixture.kappa, ["history", "catch-up", "--data", data])
        let out = String(decoding: FileManager.default.contents(atPath: Fixture.directory + "/replay-\(getpid()).out") ?? Data(), as: UTF8.self)
        func number(_ field: String) -> Int64 {
            out.range(of: "\"\(field)\":").map { Int64(out[$0.upperBound...].prefix { $0.isNumber }) ?? 0 } ?? 0
        }
        return (m.nanos, Int(number("read")), m.maxRSSKiB, number("disk_bytes"))
    }

    /// Page latencies (ns, sorted) of `count` full pages of 50 entries: random users,
    /// from a random time of the data's period on. Only full pages are counted (a page
    /// near the end of a user's history holds fewer entries and costs less), so both
    /// scales compare the same work: one index seek and 50 records.
    static func pageLatencies(_ events: Int, count: Int, seed: UInt64) -> [Int64] {
        let history = try! UserHistory(directory: DataDirectory(root: dir(events) + "/data"))
        while try! history.catchUp() > 0 {}
        var random = SplitMix(seed: seed)
        let start: Int64 = 1_457_740_800
        let days = Int64(RebuDataset(RebuConfig(seed: 7, appEvents: events, users: users)).days)
        var latencies: [Int64] = []
        var attempts = 0
        while latencies.count < count {
            attempts += 1
            precondition(attempts < count * 20, "too few full pages: \(latencies.count) of \(attempts)")
            let user = String(format: "u%06d", Int(random.next() % UInt64(users)))
            let from = TimestampNanos((start + Int64(random.next() % UInt64(days * 86_400))) * 1_000_000_000)
            let t0 = monotonicNanos()
            let page = try! history.page(user: user, from: from, limit: 50)
            let t1 = monotonicNanos()
            if page.entries.count == 50 { latencies.append(t1 - t0) }
        }
        return latencies.sorted()
    }

    static func percentile(_ sorted: [Int64], _ p: Double) -> Int64 { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
}

/// SplitMix64, for the benchmark's choice of users and times.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func historyBenchmarks() {
    // Indexing from scratch: records/s, peak memory, bytes on disk per indexed record.
    for events in HistoryFixture.scales {
        Benchmark("history index build \(events / 1_000_000)M events",
                  configuration: .init(metrics: [.custom("records/s", polarity: .prefersLarger), .custom("peak RSS MiB"),
                                                 .custom("index bytes/record"), .custom("index MiB")],
                                       maxDuration: .seconds(1200), maxIterations: 1)) { benchmark in
            let b = HistoryFixture.build(events)
            benchmark.measurement(.custom("records/s", polarity: .prefersLarger), Int(Int64(b.records) * 1_000_000_000 / max(1, b.nanos)))
            benchmark.measurement(.custom("peak RSS MiB"), b.peakRSSKiB / 1024)
            benchmark.measurement(.custom("index bytes/record"), Int(b.diskBytes / Int64(max(1, b.records))))
            benchmark.measurement(.custom("index MiB"), Int(b.diskBytes >> 20))
        } setup: {
            HistoryFixture.prepare(events)
        }
    }

    // Pages at 1M and 10M in the same iteration; the ratio of their p50s is the target.
    Benchmark("history page p50/p99 1M vs 10M events",
              configuration: .init(metrics: [.custom("1M p50 us"), .custom("1M p99 us"), .custom("10M p50 us"), .custom("10M p99 us"),
                                             .custom("10M/1M p50 x100")],
                                   maxDuration: .seconds(600), maxIterations: 3)) { benchmark in
        let small = HistoryFixture.pageLatencies(1_000_000, count: 2000, seed: 1)
        let large = HistoryFixture.pageLatencies(10_000_000, count: 2000, seed: 2)
        let p50s = HistoryFixture.percentile(small, 0.5), p50l = HistoryFixture.percentile(large, 0.5)
        benchmark.measurement(.custom("1M p50 us"), Int(p50s / 1000))
        benchmark.measurement(.custom("1M p99 us"), Int(HistoryFixture.percentile(small, 0.99) / 1000))
        benchmark.measurement(.custom("10M p50 us"), Int(p50l / 1000))
        benchmark.measurement(.custom("10M p99 us"), Int(HistoryFixture.percentile(large, 0.99) / 1000))
        benchmark.measurement(.custom("10M/1M p50 x100"), Int(p50l * 100 / max(1, p50s)))
    } setup: {
        for events in HistoryFixture.scales { HistoryFixture.prepare(events) }
    }
}
