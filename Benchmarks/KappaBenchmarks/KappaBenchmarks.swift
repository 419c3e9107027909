import Benchmark
import Foundation
import KappaCore
import KappaFormat
import KappaLog

/// Benchmarks of issue #2, each compared in the same run with the baseline the issue
/// names. Custom metrics carry the comparison: `ratio x100` is kappa's time divided by
/// the baseline's, times 100 (250 = 2.5x).
let benchmarks = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput],
        warmupIterations: 0,
        maxDuration: .seconds(60),
        maxIterations: 5
    )

    // 1. Library append, LZ4, one core: records/s through TopicWriter into 4 partitions.
    Benchmark("append lz4 (library, 1 core, 1M records)",
              configuration: .init(metrics: [.wallClock, .throughput, .peakMemoryResident], scalingFactor: .mega, maxIterations: 5)) { benchmark in
        let records = Fixture.records
        let dir = Fixture.freshDirectory("append")
        let data = DataDirectory(root: dir)
        try! data.createTopic("app_events", config: TopicConfig(partitions: 4))
        let writer = try! TopicWriter(directory: data, topic: "app_events", fsync: .never)
        benchmark.startMeasurement()
        records.bytes.withUnsafeBytes { raw in
            for i in benchmark.scaledIterations {
                let line = records.lines[i % records.lines.count]
                try! writer.append(key: UnsafeRawBufferPointer(rebasing: raw[line.key]),
                                   value: UnsafeRawBufferPointer(rebasing: raw[line.value]), timestamp: line.time)
            }
        }
        try! writer.close()
        benchmark.stopMeasurement()
    } setup: {
        _ = Fixture.records
    }

    // 2. `kappa produce FILE` into 4 partitions vs `lz4 -1 -c FILE > /dev/null`.
    Benchmark("produce 1M lines vs lz4 -1",
              configuration: .init(metrics: [.wallClock, .custom("kappa ms"), .custom("lz4 -1 ms"), .custom("ratio x100")], maxIterations: 5)) { benchmark in
        let dir = Fixture.freshDirectory("produce")
        Fixture.run(Fixture.kappa, ["topics", "create", "app_events", "--partitions", "4", "--data", dir])
        let baseline = Fixture.run("/usr/bin/lz4", ["-1", "-c", "-f", Fixture.input])
        let kappa = Fixture.run(Fixture.kappa, ["produce", "app_events", Fixture.input, "--data", dir])
        benchmark.measurement(.custom("kappa ms"), Int(kappa / 1_000_000))
        benchmark.measurement(.custom("lz4 -1 ms"), Int(baseline / 1_000_000))
        benchmark.measurement(.custom("ratio x100"), Int(kappa * 100 / baseline))
    } setup: {
        Fixture.prepareInput()
    }

    // 3. `kappa consume --from-beginning > /dev/null` vs `lz4 -d` of `lz4 -1`'s output;
    //    and bytes on disk per record beside lz4 -1's.
    Benchmark("consume 1M records vs lz4 -d",
              configuration: .init(metrics: [.wallClock, .custom("kappa ms"), .custom("lz4 -d ms"), .custom("ratio x100"),
                                             .custom("records/s", polarity: .prefersLarger),
                                             .custom("kappa bytes/record x100"), .custom("lz4 -1 bytes/record x100")],
                                   maxIterations: 5)) { benchmark in
        let dir = Fixture.directory + "/consume"
        let compressed = Fixture.directory + "/app_events.jsonl.lz4"
        let baseline = Fixture.run("/usr/bin/lz4", ["-d", "-c", "-f", compressed])
        let kappa = Fixture.run(Fixture.kappa, ["consume", "app_events", "--from-beginning", "--data", dir])
        benchmark.measurement(.custom("kappa ms"), Int(kappa / 1_000_000))
        benchmark.measurement(.custom("lz4 -d ms"), Int(baseline / 1_000_000))
        benchmark.measurement(.custom("ratio x100"), Int(kappa * 100 / baseline))
        benchmark.measurement(.custom("records/s", polarity: .prefersLarger), Int(Int64(Fixture.events) * 1_000_000_000 / kappa))
        benchmark.measurement(.custom("kappa bytes/record x100"), Int(Fixture.directoryBytes(dir + "/topics/app_events") * 100 / Int64(Fixture.events)))
        benchmark.measurement(.custom("lz4 -1 bytes/record x100"), Int(Fixture.fileSize(compressed) * 100 / Int64(Fixture.events)))
    } setup: {
        Fixture.prepareInput()
        let dir = Fixture.freshDirectory("consume")
        Fixture.run(Fixture.kappa, ["topics", "create", "app_events", "--partitions", "4", "--data", dir])
        Fixture.run(Fixture.kappa, ["produce", "app_events", Fixture.input, "--data", dir])
        Fixture.run("/usr/bin/lz4", ["-1", "-c", "-f", Fixture.input], stdoutPath: Fixture.directory + "/app_events.jsonl.lz4")
    }

    // 4. Follow latency: one record appended (and flushed) at a time by this process; a
    //    `kappa consume --follow` child prints it; delay = append start → line read.
    Benchmark("follow latency (append to consume --follow)",
              configuration: .init(metrics: [.custom("p50 us"), .custom("p90 us"), .custom("p99 us")], maxIterations: 3)) { benchmark in
        let dir = Fixture.freshDirectory("follow")
        let data = DataDirectory(root: dir)
        try! data.createTopic("live", config: TopicConfig(partitions: 1))
        let child = Process()
        child.executableURL = URL(fileURLWithPath: Fixture.kappa)
        child.arguments = ["consume", "live", "--follow", "--from-beginning", "--data", dir]
        let pipe = Pipe()
        child.standardOutput = pipe
        try! child.run()
        let writer = try! TopicWriter(directory: data, topic: "live", fsync: .never)
        let reader = pipe.fileHandleForReading
        var delays: [Int64] = []
        var pending: [UInt8] = []
        func readLine() {
            while true {
                if let nl = pending.firstIndex(of: 0x0A) {
                    pending.removeSubrange(0...nl)
                    return
                }
                pending += reader.availableData
            }
        }
        // A first record proves the follower is up before anything is timed.
        let value = Array("{\"user_id\":\"u1\",\"time_utc\":\"1457741907.959400112\"}".utf8)
        let key = Array("u1".utf8)
        func appendOne() {
            key.withUnsafeBytes { k in value.withUnsafeBytes { v in
                try! writer.append(key: k, value: v, timestamp: TimestampNanos(1_457_741_907_959_400_112))
            } }
            try! writer.flush()
        }
        appendOne()
        readLine()
        for _ in 0..<300 {
            let start = monotonicNanos()
            appendOne()
            readLine()
            delays.append(monotonicNanos() - start)
            usleep(2000)
        }
        child.terminate()
        child.waitUntilExit()
        delays.sort()
        benchmark.measurement(.custom("p50 us"), Int(delays[delays.count / 2] / 1000))
        benchmark.measurement(.custom("p90 us"), Int(delays[delays.count * 9 / 10] / 1000))
        benchmark.measurement(.custom("p99 us"), Int(delays[delays.count * 99 / 100] / 1000))
    }
}
