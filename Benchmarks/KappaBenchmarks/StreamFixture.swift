import Foundation
import KappaCore
import KappaLog
import RebuGenerator

/// Inputs of the stream-processing benchmarks (issue #3), made once in $KAPPA_BENCH_DIR:
/// 1,000,000 rides (the generator ties rides to app visits, so ~10M app events are
/// simulated to get them; only the rides are written) plus ~100k tickets, and the 1M
/// app_events of `Fixture`; each produced into a 4-partition log. Jobs are replayed
/// from offset 0 into a new version per iteration.
enum StreamFixture {
    static let dir = Fixture.directory + "/streams"
    static let rides = 1_000_000

    static func prepare() {
        let marker = dir + "/ready"
        if FileManager.default.fileExists(atPath: marker) { return }
        Fixture.prepareInput()
        try? FileManager.default.removeItem(atPath: dir)
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let dataset = RebuDataset(RebuConfig(seed: 7, appEvents: 12_000_000, ridesPerThousandAppEvents: 1000, ticketsPerThousandAppEvents: 10))
        _ = try! dataset.write(.rides, to: dir + "/rides-all.jsonl")
        _ = try! dataset.write(.tickets, to: dir + "/tickets.jsonl")
        // Exactly the first 1,000,000 rides.
        let all = FileManager.default.contents(atPath: dir + "/rides-all.jsonl")!
        var lines = 0
        var end = 0
        for (i, b) in all.enumerated() where b == 0x0A {
            lines += 1
            if lines == rides { end = i + 1; break }
        }
        precondition(lines == rides, "the generator made only \(lines) rides")
        FileManager.default.createFile(atPath: dir + "/rides.jsonl", contents: all.prefix(end))
        try? FileManager.default.removeItem(atPath: dir + "/rides-all.jsonl")
        let data = dir + "/data"
        for (topic, file) in [("rides", dir + "/rides.jsonl"), ("tickets", dir + "/tickets.jsonl"), ("app_events", Fixture.input)] {
            Fixture.run(Fixture.kappa, ["topics", "create", topic, "--partitions", "4", "--data", data])
            Fixture.run(Fixture.kappa, ["produce", topic, file, "--data", data])
        }
        for (name, yaml) in jobs { FileManager.default.createFile(atPath: dir + "/\(name).yaml", contents: Data(yaml.utf8)) }
        FileManager.default.createFile(atPath: marker, contents: nil)
    }

    static let jobs: [(String, String)] = [
        ("rides-per-city", """
        name: rides-per-city
        inputs: [rides]
        window: { key: city, time: time_utc, size: 1h, grace: 10m, aggregates: [count, sum:fare, avg:fare, max:fare], emit: final }
        output: rides-per-city
        """),
        ("app-sessions", """
        name: app-sessions
        inputs: [app_events]
        session: { key: user_id, time: time_utc, gap: 30m, grace: 5m }
        output: app-sessions
        """),
        ("ticket-ride-match", """
        name: ticket-ride-match
        inputs: [tickets, rides]
        match: { key: user_id, time: time_utc, tickets: tickets, rides: rides, grace: 10m }
        output: ticket-ride-matches
        """),
    ]

    /// Runs `kappa replay`, returning wall-clock nanoseconds and the peak RSS (KiB) the
    /// replay reports of itself (VmHWM: a spawned child's rusage would also count the
    /// parent's pages it shared before exec).
    static func measure(_ executable: String, _ arguments: [String]) -> (nanos: Int64, maxRSSKiB: Int) {
        let m = measureCPU(executable, arguments)
        return (m.nanos, m.maxRSSKiB)
    }

    /// `measure`, with the child's CPU time (user + system): on this shared 2-core
    /// machine other work steals wall-clock time in bursts, CPU time much less.
    /// Standard output goes to `stdout`, by default a file the peak RSS is read from.
    static func measureCPU(_ executable: String, _ arguments: [String], stdout: String? = nil) -> (nanos: Int64, maxRSSKiB: Int, cpuNanos: Int64) {
        _ = Fixture.checkDevNull
        var pid: pid_t = 0
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        let out = stdout ?? Fixture.directory + "/replay-\(getpid()).out"
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let start = monotonicNanos()
        let envp = Fixture.childEnvironment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        precondition(posix_spawn(&pid, executable, &actions, nil, argv, envp) == 0, "spawn \(executable)")
        var status: Int32 = 0
        var usage = rusage()
        _ = wait4(pid, &status, 0, &usage)
        let nanos = monotonicNanos() - start
        posix_spawn_file_actions_destroy(&actions)
        precondition(status == 0, "\(executable) \(arguments) exited with status \(status)")
        let text = stdout == nil ? String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self) : ""
        let rss = text.range(of: "\"peak_rss_kib\":").map { Int(text[$0.upperBound...].prefix { $0.isNumber }) ?? 0 } ?? 0
        func cpu(_ t: timeval) -> Int64 { Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_usec) * 1000 }
        return (nanos, rss, cpu(usage.ru_utime) + cpu(usage.ru_stime))
    }
}
