import ArgumentParser
import KappaCore
import KappaHTTP
import KappaLog
import KappaStreams
import Logging
import Metrics
import ServiceLifecycle

/// `kappa process JOB.yaml`: the long-running daemon for a job's current version.
struct ProcessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process",
        abstract: "Run a job's current version live (a daemon; SIGTERM/SIGINT stop it cleanly).",
        discussion: """
        Starts v1 from offset 0 when the job has no version yet. Several daemons of one job \
        split its tasks (one per input partition) and take over those of a daemon that dies. \
        Results are written exactly once: see the README's guarantees.
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "The job file (YAML).") var job: String
    @Option(help: "always | interval | never: when output and checkpoints are fsynced.") var fsync: String = "interval"
    @Option(name: .customLong("status-interval"), help: "Seconds between status lines on stderr.") var statusInterval: Int = 5
    @Option(help: "Serve Prometheus metrics of this job at http://HOST:PORT/metrics (loopback unless an address is given).") var metrics: String?

    func validate() throws {
        guard FsyncPolicy(name: fsync) != nil else { throw ValidationError("--fsync must be always, interval or never") }
        guard statusInterval > 0 else { throw ValidationError("--status-interval must be positive") }
        if let m = metrics, ServeCommand.address(m) == nil { throw ValidationError("--metrics must be HOST:PORT, got '\(m)'") }
    }

    func run() async throws {
        try await runReportingErrorsAsync {
            let dir = DataDirectory(root: data.path)
            let parsed = try JobFiles.load(job)
            try JobVersions.checkInputs(parsed, directory: dir)  // before registering anything
            let (version, def) = try JobFiles.liveVersion(parsed, registry: JobRegistry(directory: dir), now: SystemClock().nowNanos())
            var logger = Logger(label: "kappa.process")
            logger[metadataKey: "job"] = "\(def.name).v\(version)"
            let runner = try JobRunner(directory: dir, definition: def, version: version, memberId: JobFiles.memberId(), fsync: FsyncPolicy(name: fsync)!)
            logger.info("started", metadata: ["output": "\(JobRegistry.outputTopic(def, version))", "partitions": "\(runner.partitions)"])
            let service = JobService(runner: runner, logger: logger, statusIntervalNanos: Int64(statusInterval) * 1_000_000_000, untilCaughtUp: false)
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)]
            if let address = metrics.flatMap(ServeCommand.address) {
                let registry = KappaMetrics(jobs: [def.name])
                registry.bootstrap()
                let name = def.name, version = "\(version)"
                runner.onCheckpoint = { _, nanos in
                    Metrics.Timer(label: "kappa_job_checkpoint_duration_seconds", dimensions: [("job", name), ("version", version)]).recordNanoseconds(nanos)
                }
                services.append(.init(service: MetricsServer(directory: dir, host: address.host, port: address.port, metrics: registry, logger: logger) { a in
                    Stderr.line("metrics on http://\(a)/metrics")
                }, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
            }
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }
}

/// The run loop as a swift-service-lifecycle service: steps the runner, waits on the
/// inputs when idle, prints status, and on graceful shutdown checkpoints and leaves.
final class JobService: Service, @unchecked Sendable {
    let runner: JobRunner
    let logger: Logger
    let statusIntervalNanos: Int64
    let untilCaughtUp: Bool
    var onProgress: ((JobRunner, Bool) -> Void)?

    init(runner: JobRunner, logger: Logger, statusIntervalNanos: Int64, untilCaughtUp: Bool) {
        self.runner = runner
        self.logger = logger
        self.statusIntervalNanos = statusIntervalNanos
        self.untilCaughtUp = untilCaughtUp
    }

    func run() async throws {
        let watcher = TailWatcher()
        var lastStatus = monotonicNanos()
        var recordsSinceStatus = 0
        var idleRounds = 0
        while !Task.isShuttingDownGracefully {
            let n = try runner.runOnce()
            recordsSinceStatus += n
            let now = monotonicNanos()
            if now - lastStatus >= statusIntervalNanos {
                printStatus(records: recordsSinceStatus, seconds: Double(now - lastStatus) / 1e9)
                recordsSinceStatus = 0
                lastStatus = now
            }
            onProgress?(runner, false)
            if n == 0 {
                idleRounds += 1
                // Caught up once every owned task read nothing in two rounds in a row
                // (the second round sees what the first sent through the repartition topic).
                if untilCaughtUp && idleRounds >= 2 && runner.tasks.count == Int(runner.partitions) { break }
                // A replay confirms at once; waiting belongs to live processing.
                if untilCaughtUp && idleRounds == 1 { continue }
                for d in runner.watchedDirectories { watcher.watch(d) }
                watcher.wait(timeoutMillis: 50)
            } else {
                idleRounds = 0
            }
        }
        onProgress?(runner, true)
        try runner.stop()
        logger.info("stopped cleanly after a checkpoint")
    }

    func printStatus(records: Int, seconds: Double) {
        var lag: Int64 = 0
        // Progress only feeds the status line: a failed read of it must not stop the daemon.
        if let p = try? runner.progress() { lag = p.total - p.done }
        let statuses = runner.tasks.values.map { $0.status() }
        let late = statuses.reduce(Int64(0)) { $0 + $1.late }
        let streamTime = runner.tasks.values.compactMap(\.streamTime).max()?.decimalSeconds ?? "-"
        Stderr.line("\(runner.definition.name).v\(runner.version): \(formatRate(records, seconds: seconds)) records/s, lag \(lag), stream time \(streamTime), late \(late), tasks \(runner.tasks.keys.sorted())")
    }
}

func runReportingErrorsAsync(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as KappaError {
        Stderr.line("kappa: " + e.description)
        throw ExitCode(1)
    }
}
