#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import KappaCore
import KappaLog
import KappaStreams
import Logging
import ServiceLifecycle

/// `kappa replay JOB.yaml`: the Kappa step. Computes the job's next version from offset
/// 0 into new stores and a new output topic while the current version keeps serving.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Compute the job's next version from offset 0, with progress; exits when caught up.",
        discussion: """
        The new version writes OUTPUT.vN and its own internal topics; the current version \
        is untouched until --switch (or 'kappa jobs switch JOB N'). An interrupted replay of \
        the same job file resumes from its checkpoints.
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "The job file (YAML).") var job: String
    @Flag(help: "Make the new version current once it has caught up.") var `switch` = false
    @Flag(help: "Keep running live after catching up (until SIGTERM/SIGINT).") var follow = false
    @Option(help: "always | interval | never") var fsync: String = "interval"

    func validate() throws {
        guard FsyncPolicy(name: fsync) != nil else { throw ValidationError("--fsync must be always, interval or never") }
    }

    func run() async throws {
        try await runReportingErrorsAsync {
            let dir = DataDirectory(root: data.path)
            let registry = JobRegistry(directory: dir)
            let def = try JobFiles.load(job)
            try JobVersions.checkInputs(def, directory: dir)  // before registering anything
            let (version, resumed) = try JobFiles.replayVersion(def, registry: registry, now: SystemClock().nowNanos())
            let runner = try JobRunner(directory: dir, definition: def, version: version, memberId: JobFiles.memberId(), fsync: FsyncPolicy(name: fsync)!)
            runner.rebalanceIntervalNanos = 50_000_000
            // A replay is a batch computation until it catches up: checkpoint less often
            // (a crash costs at most this much recomputation; correctness is unchanged).
            runner.checkpointIntervalNanos = 10_000_000_000
            runner.keepsStateUntilExit = true  // the process ends after the replay
            try runner.rebalance(force: true)
            let current = try registry.load(def.name)?.current
            Stderr.line("replay \(def.name) v\(version)\(resumed ? " (resuming)" : "") from offset 0 into \(JobRegistry.outputTopic(def, version)); current version: \(current.map { "v\($0)" } ?? "none")")
            let started = monotonicNanos()
            let progress = ProgressReporter(label: "\(def.name) v\(version)")
            let service = JobService(runner: runner, logger: Logger(label: "kappa.replay"), statusIntervalNanos: .max / 2, untilCaughtUp: !follow)
            service.onProgress = { runner, done in progress.report(runner, force: done) }
            let group = ServiceGroup(configuration: .init(services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "kappa.replay")))
            try await group.run()
            let seconds = Double(monotonicNanos() - started) / 1e9
            let (done, total) = progress.last
            guard done >= total else {
                Stderr.line("replay stopped before catching up (\(done)/\(total) records); run it again to resume")
                return
            }
            try registry.update(def.name) { (record) throws(KappaError) in
                guard var r = record, let i = r.versions.firstIndex(where: { $0.version == version }) else { return }
                if r.versions[i].caughtUpMillis == nil { r.versions[i].caughtUpMillis = SystemClock().nowNanos() / 1_000_000 }
                if self.switch { r.current = version }
                record = r
            }
            Stderr.line("replayed \(done) records in \(format2(seconds))s (\(formatRate(Int(done), seconds: seconds)) records/s); v\(version) has caught up"
                + (self.switch ? " and is now current" : "; make it current with: kappa jobs switch \(def.name) \(version)"))
            print("{\"job\":\"\(def.name)\",\"version\":\(version),\"records\":\(done),\"seconds\":\(format2(seconds)),\"current\":\(self.switch ? version : (current ?? 0)),\"peak_rss_kib\":\(peakResidentKiB())}")
        }
    }
}

/// Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise.
final class ProgressReporter: @unchecked Sendable {
    let label: String
    let tty = isatty(2) != 0
    let started = monotonicNanos()
    var lastPrint: Int64 = 0
    private(set) var last: (Int64, Int64) = (0, 0)

    init(label: String) { self.label = label }

    func report(_ runner: JobRunner, force: Bool) {
        let now = monotonicNanos()
        let interval: Int64 = tty ? 200_000_000 : 2_000_000_000
        guard force || now - lastPrint >= interval else { return }
        lastPrint = now
        guard let (done, total) = try? runner.progress() else { return }  // display only: the next tick retries
        last = (done, total)
        let seconds = Double(now - started) / 1e9
        let rate = seconds > 0 ? Double(done) / seconds : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let pct = total > 0 ? Double(done) * 100 / Double(total) : 100
        let text = "\(label): \(done)/\(total) records (\(Int(pct))%), \(formatRate(Int(done), seconds: seconds)) records/s, ETA \(format2(max(0, eta)))s"
        if tty {
            let width = 30
            let filled = total > 0 ? Int(Double(width) * Double(done) / Double(total)) : width
            let bar = String(repeating: "#", count: min(width, filled)) + String(repeating: ".", count: max(0, width - filled))
            var line = "\r[\(bar)] " + text + "\u{1B}[K"
            if force { line += "\n" }
            line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        } else {
            Stderr.line(text)
        }
    }
}

/// This process's peak resident memory (VmHWM), in KiB; 0 where /proc is missing.
func peakResidentKiB() -> Int {
    // /proc files report size 0: read a fixed amount. Where /proc is missing the answer is 0.
    guard let f = try? File(path: "/proc/self/status", mode: .readOnly), let bytes = try? f.read(count: 1 << 16, at: 0) else { return 0 }
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.dropFirst(6).filter(\.isNumber)) ?? 0
    }
    return 0
}
