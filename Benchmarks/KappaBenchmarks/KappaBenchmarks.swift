import Benchmark
import Foundation
import KappaCore
import KappaFormat
import KappaLog
import RebuGenerator

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
    streamBenchmarks()
    rekeyBenchmarks()
    outputHeavyBenchmarks()
    kafkaBenchmarks()
    historyBenchmarks()

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
        child.environment = Fixture.childEnvironment
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
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        delays.sort()
        benchmark.measurement(.custom("p50 us"), Int(delays[delays.count / 2] / 1000))
        benchmark.measurement(.custom("p90 us"), Int(delays[delays.count * 9 / 10] / 1000))
        benchmark.measurement(.custom("p99 us"), Int(delays[delays.count * 99 / 100] / 1000))
    }
}

/// Benchmarks of issue #3: replays of the three jobs over 1M events already in the log.
let streamBenchmarks = {
    let data = StreamFixture.dir + "/data"
    func replay(_ job: String) -> (Int64, Int) {
        StreamFixture.measure(Fixture.kappa, ["replay", StreamFixture.dir + "/\(job).yaml", "--data", data, "--fsync", "never"])
    }

    // Windowed aggregation, repartitioned by city, vs consuming the same topic.
    Benchmark("replay rides-per-city (1M rides, 1h tumbling, repartitioned)",
              configuration: .init(metrics: [.custom("replay ms"), .custom("consume ms"), .custom("ratio x100"),
                                             .custom("events/s", polarity: .prefersLarger), .custom("peak RSS MiB")], maxIterations: 3)) { benchmark in
        let (nanos, rss) = replay("rides-per-city")
        let consume = Fixture.run(Fixture.kappa, ["consume", "rides", "--from-beginning", "--data", data])
        benchmark.measurement(.custom("replay ms"), Int(nanos / 1_000_000))
        benchmark.measurement(.custom("consume ms"), Int(consume / 1_000_000))
        benchmark.measurement(.custom("ratio x100"), Int(nanos * 100 / consume))
        benchmark.measurement(.custom("events/s", polarity: .prefersLarger), Int(Int64(StreamFixture.rides) * 1_000_000_000 / nanos))
        benchmark.measurement(.custom("peak RSS MiB"), rss / 1024)
    } setup: {
        StreamFixture.prepare()
    }

    Benchmark("replay app-sessions (1M app_events)",
              configuration: .init(metrics: [.custom("replay ms"), .custom("events/s", polarity: .prefersLarger), .custom("peak RSS MiB")], maxIterations: 3)) { benchmark in
        let (nanos, rss) = replay("app-sessions")
        benchmark.measurement(.custom("replay ms"), Int(nanos / 1_000_000))
        benchmark.measurement(.custom("events/s", polarity: .prefersLarger), Int(Int64(Fixture.events) * 1_000_000_000 / nanos))
        benchmark.measurement(.custom("peak RSS MiB"), rss / 1024)
    } setup: {
        StreamFixture.prepare()
    }

    Benchmark("replay ticket-ride-match (1M rides + tickets)",
              configuration: .init(metrics: [.custom("replay ms"), .custom("events/s", polarity: .prefersLarger), .custom("peak RSS MiB")], maxIterations: 3)) { benchmark in
        let (nanos, rss) = replay("ticket-ride-match")
        let events = (0..<4).reduce(Int64(0)) { acc, p in
            acc + ((try? PartitionStatus.read(DataDirectory(root: data), TopicPartition("tickets", Int32(p))).endOffset.rawValue) ?? 0)
        } + Int64(StreamFixture.rides)
        benchmark.measurement(.custom("replay ms"), Int(nanos / 1_000_000))
        benchmark.measurement(.custom("events/s", polarity: .prefersLarger), Int(events * 1_000_000_000 / nanos))
        benchmark.measurement(.custom("peak RSS MiB"), rss / 1024)
    } setup: {
        StreamFixture.prepare()
    }

    // Peak memory of sessionisation: 1M vs 10M events from the same 20,000 users (memory
    // must follow the open sessions, not the log's length).
    Benchmark("session replay peak memory, 1M vs 10M events",
              configuration: .init(metrics: [.custom("1M peak RSS MiB"), .custom("10M peak RSS MiB"), .custom("10M events/s", polarity: .prefersLarger)],
                                   maxIterations: 1)) { benchmark in
        let big = Fixture.directory + "/sessions-10m-20k-users"
        if !FileManager.default.fileExists(atPath: big + "/ready") {
            try? FileManager.default.removeItem(atPath: big)
            // The same 20,000 users as the 1M data set, over a 10× longer period: the
            // open sessions stay the same size while the log grows tenfold.
            _ = try! RebuGenerator.writeAppEvents(RebuConfig(seed: 7, appEvents: 10_000_000, users: 20_000), to: big + "/app_events.jsonl")
            Fixture.run(Fixture.kappa, ["topics", "create", "app_events", "--partitions", "4", "--data", big + "/data"])
            Fixture.run(Fixture.kappa, ["produce", "app_events", big + "/app_events.jsonl", "--data", big + "/data"])
            try? FileManager.default.removeItem(atPath: big + "/app_events.jsonl")
            FileManager.default.createFile(atPath: big + "/ready", contents: nil)
        }
        let (_, small) = replay("app-sessions")
        let (nanos, large) = StreamFixture.measure(Fixture.kappa, ["replay", StreamFixture.dir + "/app-sessions.yaml", "--data", big + "/data", "--fsync", "never"])
        benchmark.measurement(.custom("1M peak RSS MiB"), small / 1024)
        benchmark.measurement(.custom("10M peak RSS MiB"), large / 1024)
        benchmark.measurement(.custom("10M events/s", polarity: .prefersLarger), Int(Int64(10_000_000) * 1_000_000_000 / nanos))
    } setup: {
        StreamFixture.prepare()
    }

    // Live end-to-end latency: a daemon runs a window job with `emit: updates`; this
    // process appends one ride at a time and reads the output until its update appears.
    Benchmark("live latency produce -> output (emit: updates)",
              configuration: .init(metrics: [.custom("p50 us"), .custom("p90 us"), .custom("p99 us")], maxIterations: 1)) { benchmark in
        let live = Fixture.freshDirectory("live")
        let dir = DataDirectory(root: live)
        try! dir.createTopic("rides", config: TopicConfig(partitions: 1))
        let job = live + "/live.yaml"
        FileManager.default.createFile(atPath: job, contents: Data("""
        name: live
        inputs: [rides]
        window: { key: user_id, time: time_utc, size: 1h, grace: 10m, aggregates: [count], emit: updates }
        output: live-out
        """.utf8))
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: Fixture.kappa)
        daemon.arguments = ["process", job, "--data", live]
        daemon.environment = Fixture.childEnvironment
        daemon.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try! daemon.run()
        while !dir.topicExists("live-out.v1") { usleep(10_000) }
        usleep(300_000)
        let writer = try! TopicWriter(directory: dir, topic: "rides", fsync: .never)
        let reader = try! PartitionReader(directory: dir, topicPartition: TopicPartition("live-out.v1", 0))
        var delays: [Int64] = []
        let base: Int64 = 1_457_741_907
        for i in 0..<400 {
            let value = Array("{\"user_id\":\"u1\",\"time_utc\":\"\(base + Int64(i)).5\"}".utf8)
            let key = Array("u1".utf8)
            let start = monotonicNanos()
            key.withUnsafeBytes { k in value.withUnsafeBytes { v in
                try! writer.append(key: k, value: v, timestamp: TimestampNanos((base + Int64(i)) * 1_000_000_000 + 500_000_000))
            } }
            try! writer.flush()
            var seen = false
            while !seen {
                if (try! reader.nextBatch()) != nil { seen = true } else { usleep(50) }
            }
            if i >= 20 { delays.append(monotonicNanos() - start) }  // the first ones warm up
            usleep(3000)
        }
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        delays.sort()
        benchmark.measurement(.custom("p50 us"), Int(delays[delays.count / 2] / 1000))
        benchmark.measurement(.custom("p90 us"), Int(delays[delays.count * 9 / 10] / 1000))
        benchmark.measurement(.custom("p99 us"), Int(delays[delays.count * 99 / 100] / 1000))
    }
}
