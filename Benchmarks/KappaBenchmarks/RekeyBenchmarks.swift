import Benchmark
import Foundation
import KappaCore
import KappaLog

/// Benchmarks of issue #7: the session and match jobs over inputs keyed by another field
/// — app events by device, rides by ride, tickets by ticket, so every input goes through
/// the repartition topic — against the same jobs over the co-partitioned inputs of
/// `StreamFixture` (the same records), in the same iteration. Target: ratio ≤ 1.5x.
enum RekeyFixture {
    static let data = StreamFixture.dir + "/data-rekeyed"

    static func prepare() {
        StreamFixture.prepare()
        let marker = StreamFixture.dir + "/rekeyed-ready"
        if FileManager.default.fileExists(atPath: marker) { return }
        try? FileManager.default.removeItem(atPath: data)
        for (topic, file, key) in [("rides", StreamFixture.dir + "/rides.jsonl", "ride_id"), ("tickets", StreamFixture.dir + "/tickets.jsonl", "ticket_id"),
                                   ("app_events", Fixture.input, "device_id")] {
            Fixture.run(Fixture.kappa, ["topics", "create", topic, "--partitions", "4", "--key-field", key, "--data", data])
            Fixture.run(Fixture.kappa, ["produce", topic, file, "--data", data])
        }
        FileManager.default.createFile(atPath: marker, contents: nil)
    }

    /// Replays `job` into a new version of `data`, measures it, then drops that version
    /// (so repeated runs do not fill the disk).
    static func replay(_ job: String, data: String) -> (nanos: Int64, maxRSSKiB: Int, cpuNanos: Int64) {
        let m = StreamFixture.measureCPU(Fixture.kappa, ["replay", StreamFixture.dir + "/\(job).yaml", "--data", data, "--fsync", "never"])
        dropNewestVersion(job, data: data)
        return m
    }

    /// Drops the newest version of `job` in `data` (so repeated replays do not fill the disk).
    static func dropNewestVersion(_ job: String, data: String) {
        let out = Fixture.directory + "/jobs-list-\(getpid()).out"
        Fixture.run(Fixture.kappa, ["jobs", "list", "--data", data], stdoutPath: out)
        let list = String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self).split(separator: "\n")
            .first { $0.contains("\"job\":\"\(job)\"") }.map(String.init) ?? ""
        if let r = list.range(of: "\"versions\":["), let last = list[r.upperBound...].prefix(while: { $0 != "]" }).split(separator: ",").last {
            Fixture.run(Fixture.kappa, ["jobs", "drop", job, String(last), "--data", data])
        }
    }
}

let rekeyBenchmarks = {
    let direct = StreamFixture.dir + "/data"
    for (job, what, events) in [("app-sessions", "sessions of 1M app events keyed by device", Int64(Fixture.events)),
                                ("ticket-ride-match", "matches of 1M rides keyed by ride and tickets keyed by ticket", Int64(StreamFixture.rides))] {
        Benchmark("replay \(job) re-keyed vs co-partitioned (\(what))",
                  configuration: .init(metrics: [.custom("re-keyed ms"), .custom("co-partitioned ms"), .custom("ratio x100"), .custom("CPU ratio x100"),
                                                 .custom("re-keyed events/s", polarity: .prefersLarger), .custom("re-keyed peak RSS MiB")],
                                       maxIterations: 5)) { benchmark in
            let base = RekeyFixture.replay(job, data: direct)
            let rekeyed = RekeyFixture.replay(job, data: RekeyFixture.data)
            benchmark.measurement(.custom("re-keyed ms"), Int(rekeyed.nanos / 1_000_000))
            benchmark.measurement(.custom("co-partitioned ms"), Int(base.nanos / 1_000_000))
            benchmark.measurement(.custom("ratio x100"), Int(rekeyed.nanos * 100 / base.nanos))
            benchmark.measurement(.custom("CPU ratio x100"), Int(rekeyed.cpuNanos * 100 / max(1, base.cpuNanos)))
            benchmark.measurement(.custom("re-keyed events/s", polarity: .prefersLarger), Int(events * 1_000_000_000 / rekeyed.nanos))
            benchmark.measurement(.custom("re-keyed peak RSS MiB"), rekeyed.maxRSSKiB / 1024)
        } setup: {
            RekeyFixture.prepare()
        }
    }
}
