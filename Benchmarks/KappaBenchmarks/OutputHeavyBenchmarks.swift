import Benchmark
import Foundation
import KappaCore
import RebuGenerator

/// Benchmarks of issue #11: replays whose work is in their results — many keys, about ten
/// events per window or session — each beside the baseline the issue names, in the same
/// iteration:
///
/// - sessions of 1M app events from 100,000 users vs the same job over 1M events from
///   10,000 users (target: ≥ 1.5M events/s, ratio ≤ 1.3x);
/// - 1-day windows per user (10,000 users over 365 days: ~87,000 windows of ~11 events)
///   vs `kappa consume` of the same topic (target ≤ 3x);
/// - the ticket-ride match of `StreamFixture` vs DuckDB's ASOF JOIN of the same JSON
///   files, loading included (target ≤ 0.5x);
/// - peak RSS of each at 1M and at 10M events (memory must follow the open state, not
///   the log's length).
///
/// Ratios are of wall-clock time; the CPU ratio (user + system time of both children) is
/// reported beside it, as other work on this shared 2-core machine steals wall time.
enum OutputHeavyFixture {
    static let dir = Fixture.directory + "/output-heavy"

    /// The data sets: app events (seed 7) produced into a 4-partition `app_events` topic of
    /// `dir/NAME/data`; the JSON Lines file is removed once produced.
    static let sets: [(name: String, config: RebuConfig)] = [
        ("sessions-100k-users", RebuConfig(seed: 7, appEvents: 1_000_000, users: 100_000)),
        ("sessions-10k-users", RebuConfig(seed: 7, appEvents: 1_000_000, users: 10_000)),
        ("days-10k-users", RebuConfig(seed: 11, appEvents: 1_000_000, users: 10_000, days: 365)),
    ]
    /// The 10M counterparts: the same users over a ten times longer period, so the state
    /// open at any moment stays the same size while the log grows tenfold.
    static let largeSets: [(name: String, config: RebuConfig)] = [
        ("sessions-100k-users-10m", RebuConfig(seed: 7, appEvents: 10_000_000, users: 100_000)),
        ("days-10k-users-10m", RebuConfig(seed: 11, appEvents: 10_000_000, users: 10_000, days: 3650)),
    ]

    static let jobs: [(String, String)] = [
        ("app-sessions", """
        name: app-sessions
        inputs: [app_events]
        session: { key: user_id, time: time_utc, gap: 30m, grace: 5m }
        output: app-sessions
        """),
        ("per-user-day", """
        name: per-user-day
        inputs: [app_events]
        window: { key: user_id, time: time_utc, size: 1d, grace: 1h, aggregates: [count], emit: final }
        output: per-user-day
        """),
    ]

    static func data(_ name: String) -> String { dir + "/\(name)/data" }

    /// About 10M rides (the generator caps rides at one per visit) and ~100k tickets per 1M rides, from the same 240,000 users as
    /// StreamFixture's 1M rides (12M simulated app visits' worth there, 120M here; only
    /// rides and tickets are written), in `dir/match-10m/data`.
    static func prepareLargeMatch() {
        let base = dir + "/match-10m"
        if FileManager.default.fileExists(atPath: base + "/ready") { return }
        try? FileManager.default.removeItem(atPath: base)
        try! FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let dataset = RebuDataset(RebuConfig(seed: 7, appEvents: 120_000_000, users: 240_000, ridesPerThousandAppEvents: 1000, ticketsPerThousandAppEvents: 10))
        for topic in [RebuTopic.rides, .tickets] {
            let file = base + "/" + topic.fileName
            _ = try! dataset.write(topic, to: file)
            Fixture.run(Fixture.kappa, ["topics", "create", topic.rawValue, "--partitions", "4", "--data", base + "/data"])
            Fixture.run(Fixture.kappa, ["produce", topic.rawValue, file, "--data", base + "/data"])
            try? FileManager.default.removeItem(atPath: file)
        }
        FileManager.default.createFile(atPath: base + "/ready", contents: nil)
    }

    static func prepare(_ sets: [(name: String, config: RebuConfig)]) {
        for (name, yaml) in jobs { FileManager.default.createFile(atPath: dir + "/\(name).yaml", contents: Data(yaml.utf8)) }
        for (name, config) in sets {
            let base = dir + "/" + name
            if FileManager.default.fileExists(atPath: base + "/ready") { continue }
            try? FileManager.default.removeItem(atPath: base)
            try! FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            _ = try! RebuGenerator.writeAppEvents(config, to: base + "/app_events.jsonl")
            Fixture.run(Fixture.kappa, ["topics", "create", "app_events", "--partitions", "4", "--data", base + "/data"])
            Fixture.run(Fixture.kappa, ["produce", "app_events", base + "/app_events.jsonl", "--data", base + "/data"])
            try? FileManager.default.removeItem(atPath: base + "/app_events.jsonl")
            FileManager.default.createFile(atPath: base + "/ready", contents: nil)
        }
    }

    /// Replays `job` over `data` into a new version, then drops that version.
    static func replay(_ job: String, data: String, jobDirectory: String = dir) -> (nanos: Int64, maxRSSKiB: Int, cpuNanos: Int64) {
        let m = StreamFixture.measureCPU(Fixture.kappa, ["replay", jobDirectory + "/\(job).yaml", "--data", data, "--fsync", "never"])
        RekeyFixture.dropNewestVersion(job, data: data)
        return m
    }

    /// `kappa consume TOPIC --from-beginning > /dev/null`.
    static func consume(_ topic: String, data: String) -> (nanos: Int64, cpuNanos: Int64) {
        let m = StreamFixture.measureCPU(Fixture.kappa, ["consume", topic, "--from-beginning", "--data", data], stdout: "/dev/null")
        return (m.nanos, m.cpuNanos)
    }

    /// DuckDB (PyPI `duckdb`) loads rides and tickets from their JSON Lines files and
    /// writes every ticket with the user's latest ride at or before it (ASOF LEFT JOIN) to
    /// a file, as the match job writes its output; the time is measured inside Python, so
    /// the interpreter's start does not count against DuckDB.
    static let duckScript = """
    import duckdb, sys, time
    rides, tickets, out = sys.argv[1:4]
    t0 = time.perf_counter_ns()
    con = duckdb.connect()
    con.execute(f"CREATE TABLE rides AS SELECT user_id, ride_id, CAST(time_utc AS DECIMAL(20,9)) AS ts FROM read_json_auto('{rides}', format='newline_delimited')")
    con.execute(f"CREATE TABLE tickets AS SELECT user_id, ticket_id, CAST(time_utc AS DECIMAL(20,9)) AS ts FROM read_json_auto('{tickets}', format='newline_delimited')")
    con.execute(f"COPY (SELECT t.ticket_id, t.user_id, t.ts, r.ride_id FROM tickets t ASOF LEFT JOIN rides r ON t.user_id = r.user_id AND t.ts >= r.ts) TO '{out}' (FORMAT JSON)")
    print(time.perf_counter_ns() - t0)
    """

    static func duckDB() -> Int64 {
        let script = dir + "/asof.py"
        FileManager.default.createFile(atPath: script, contents: Data(duckScript.utf8))
        let out = dir + "/duckdb-time.out"
        // `env python3`: the interpreter on PATH, which has the PyPI packages (not /usr/bin's).
        Fixture.run("/usr/bin/env", ["python3", script, StreamFixture.dir + "/rides.jsonl", StreamFixture.dir + "/tickets.jsonl", dir + "/duckdb-matches.json"], stdoutPath: out)
        let text = String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self)
        return Int64(text.trimmingCharacters(in: .whitespacesAndNewlines))!
    }
}

let outputHeavyBenchmarks = {
    let config = Benchmark.Configuration(metrics: [], maxIterations: 5)
    func ms(_ nanos: Int64) -> Int { Int(nanos / 1_000_000) }

    Benchmark("replay app-sessions: 1M events from 100,000 users vs from 10,000 users",
              configuration: .init(metrics: [.custom("100k users ms"), .custom("10k users ms"), .custom("ratio x100"), .custom("CPU ratio x100"),
                                             .custom("events/s", polarity: .prefersLarger), .custom("events/CPU s", polarity: .prefersLarger),
                                             .custom("peak RSS MiB")], maxIterations: config.maxIterations)) { benchmark in
        let many = OutputHeavyFixture.replay("app-sessions", data: OutputHeavyFixture.data("sessions-100k-users"))
        let few = OutputHeavyFixture.replay("app-sessions", data: OutputHeavyFixture.data("sessions-10k-users"))
        benchmark.measurement(.custom("100k users ms"), ms(many.nanos))
        benchmark.measurement(.custom("10k users ms"), ms(few.nanos))
        benchmark.measurement(.custom("ratio x100"), Int(many.nanos * 100 / few.nanos))
        benchmark.measurement(.custom("CPU ratio x100"), Int(many.cpuNanos * 100 / max(1, few.cpuNanos)))
        benchmark.measurement(.custom("events/s", polarity: .prefersLarger), Int(1_000_000 * 1_000_000_000 / many.nanos))
        benchmark.measurement(.custom("events/CPU s", polarity: .prefersLarger), Int(1_000_000 * 1_000_000_000 / max(1, many.cpuNanos)))
        benchmark.measurement(.custom("peak RSS MiB"), many.maxRSSKiB / 1024)
    } setup: {
        OutputHeavyFixture.prepare(OutputHeavyFixture.sets)
    }

    Benchmark("replay per-user-day windows (1M events, 10,000 users x 365 days) vs consume",
              configuration: .init(metrics: [.custom("replay ms"), .custom("consume ms"), .custom("ratio x100"), .custom("CPU ratio x100"),
                                             .custom("peak RSS MiB")], maxIterations: config.maxIterations)) { benchmark in
        let data = OutputHeavyFixture.data("days-10k-users")
        let replay = OutputHeavyFixture.replay("per-user-day", data: data)
        let consume = OutputHeavyFixture.consume("app_events", data: data)
        benchmark.measurement(.custom("replay ms"), ms(replay.nanos))
        benchmark.measurement(.custom("consume ms"), ms(consume.nanos))
        benchmark.measurement(.custom("ratio x100"), Int(replay.nanos * 100 / consume.nanos))
        benchmark.measurement(.custom("CPU ratio x100"), Int(replay.cpuNanos * 100 / max(1, consume.cpuNanos)))
        benchmark.measurement(.custom("peak RSS MiB"), replay.maxRSSKiB / 1024)
    } setup: {
        OutputHeavyFixture.prepare(OutputHeavyFixture.sets)
    }

    // The match of StreamFixture's 1M rides and ~100k tickets, against DuckDB reading the
    // same files; "produce + replay" adds producing both files into a fresh log first
    // (the full path from JSON files, as DuckDB's time includes its load).
    Benchmark("replay ticket-ride-match (1M rides) vs DuckDB ASOF JOIN of the same JSON files",
              configuration: .init(metrics: [.custom("replay ms"), .custom("produce + replay ms"), .custom("duckdb ms"), .custom("ratio x100"),
                                             .custom("produce + replay ratio x100"), .custom("peak RSS MiB")], maxIterations: config.maxIterations)) { benchmark in
        let fresh = Fixture.freshDirectory("output-heavy-match")
        var produce: Int64 = 0
        for topic in ["rides", "tickets"] {
            Fixture.run(Fixture.kappa, ["topics", "create", topic, "--partitions", "4", "--data", fresh])
            produce += Fixture.run(Fixture.kappa, ["produce", topic, StreamFixture.dir + "/\(topic).jsonl", "--data", fresh, "--fsync", "never"])
        }
        let replay = OutputHeavyFixture.replay("ticket-ride-match", data: fresh, jobDirectory: StreamFixture.dir)
        let duck = OutputHeavyFixture.duckDB()
        benchmark.measurement(.custom("replay ms"), ms(replay.nanos))
        benchmark.measurement(.custom("produce + replay ms"), ms(produce + replay.nanos))
        benchmark.measurement(.custom("duckdb ms"), ms(duck))
        benchmark.measurement(.custom("ratio x100"), Int(replay.nanos * 100 / duck))
        benchmark.measurement(.custom("produce + replay ratio x100"), Int((produce + replay.nanos) * 100 / duck))
        benchmark.measurement(.custom("peak RSS MiB"), replay.maxRSSKiB / 1024)
        try? FileManager.default.removeItem(atPath: fresh)
    } setup: {
        StreamFixture.prepare()
    }

    // Peak memory at 1M and at 10M events, for each case above.
    for (job, small, large) in [("app-sessions", "sessions-100k-users", "sessions-100k-users-10m"), ("per-user-day", "days-10k-users", "days-10k-users-10m")] {
        Benchmark("\(job) replay peak memory, 1M vs 10M events",
                  configuration: .init(metrics: [.custom("1M peak RSS MiB"), .custom("10M peak RSS MiB"), .custom("10M events/s", polarity: .prefersLarger)],
                                       maxIterations: 1)) { benchmark in
            let one = OutputHeavyFixture.replay(job, data: OutputHeavyFixture.data(small))
            let ten = OutputHeavyFixture.replay(job, data: OutputHeavyFixture.data(large))
            benchmark.measurement(.custom("1M peak RSS MiB"), one.maxRSSKiB / 1024)
            benchmark.measurement(.custom("10M peak RSS MiB"), ten.maxRSSKiB / 1024)
            benchmark.measurement(.custom("10M events/s", polarity: .prefersLarger), Int(10_000_000 * 1_000_000_000 / ten.nanos))
        } setup: {
            OutputHeavyFixture.prepare(OutputHeavyFixture.sets + OutputHeavyFixture.largeSets)
        }
    }

    Benchmark("ticket-ride-match replay peak memory, 1M vs 10M rides",
              configuration: .init(metrics: [.custom("1M peak RSS MiB"), .custom("10M peak RSS MiB")],
                                   maxIterations: 1)) { benchmark in
        let one = OutputHeavyFixture.replay("ticket-ride-match", data: StreamFixture.dir + "/data", jobDirectory: StreamFixture.dir)
        let ten = OutputHeavyFixture.replay("ticket-ride-match", data: OutputHeavyFixture.dir + "/match-10m/data", jobDirectory: StreamFixture.dir)
        benchmark.measurement(.custom("1M peak RSS MiB"), one.maxRSSKiB / 1024)
        benchmark.measurement(.custom("10M peak RSS MiB"), ten.maxRSSKiB / 1024)
    } setup: {
        StreamFixture.prepare()
        OutputHeavyFixture.prepareLargeMatch()
    }
}
