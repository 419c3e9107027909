import Foundation
import KappaCore
import KappaLog
import KappaStreams
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// Kappa's Prometheus metrics (SPEC 12), for `kappa serve` and `kappa process --metrics`.
///
/// Request metrics (HTTP, Kafka) and checkpoint durations are recorded as they happen
/// through swift-metrics, whose factory (`bootstrap`, called once by the CLI) is
/// swift-prometheus's over `registry`. Job metrics are read at each scrape (`render`) from
/// what `kappa jobs describe` reads — each task's checkpoint status and the partitions'
/// ends now (`Describe.tasks`) — so the two agree by construction. Counters that come
/// from a status (records in, late, dead letters) are advanced by the difference since
/// the last scrape: a status only grows.
///
/// Names start with `kappa_`; labels are job, version, task, topic, route, method,
/// status and api: never a user, ride or ticket id (routes are patterns like
/// `/v1/rides/{ride_id}/tickets`, not paths).
///
/// Thread-safe.
public final class KappaMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// Which jobs `render` reports: nil for every job of the data directory.
    let jobs: [String]?
    private let lock = NIOLock()
    private var counterValues: [String: Int64] = [:]

    public init(jobs: [String]? = nil) {
        self.jobs = jobs
    }

    /// Makes swift-metrics record into `registry` (once per process).
    public func bootstrap() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Latency buckets from 100 µs (a store lookup) to 10 s (a large ingest).
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        MetricsSystem.bootstrap(factory)
    }

    /// The text exposition: job metrics read now, then everything recorded.
    func render(directory: DataDirectory, store: JobStore?) -> [UInt8] {
        collectJobs(directory)
        if let store { collectStore(store) }
        return registry.emitToBuffer()
    }

    public func render(directory: DataDirectory) -> [UInt8] { render(directory: directory, store: nil) }

    // MARK: jobs

    private func collectJobs(_ dir: DataDirectory) {
        let registry = JobRegistry(directory: dir)
        guard let names = try? jobs ?? registry.names() else { return }
        for name in names {
            guard let record = try? registry.load(name) else { continue }
            for v in record.versions {
                guard let (_, entries) = try? Describe.tasks(v.definition, version: v.version, dir: dir, registry: registry) else { continue }
                let labels = [("job", name), ("version", "\(v.version)")]
                gauge("kappa_job_current", labels, record.current == v.version ? 1 : 0, help: "1 for the version readers use")
                for e in entries { collectTask(e, labels + [("task", "\(e.task)")], v.definition, v.version, dir) }
            }
        }
    }

    private func collectTask(_ e: Describe.TaskEntry, _ labels: [(String, String)], _ def: JobDefinition, _ version: Int, _ dir: DataDirectory) {
        for (topic, lag) in e.lag {
            gauge("kappa_job_lag_records", labels + [("topic", topic)], Double(lag), help: "Records of the input (or repartition) partition not yet read: end offset now minus the checkpointed offset (as jobs describe)")
        }
        guard let s = e.status else { return }
        counter("kappa_job_records_in_total", labels, s.processed, help: "Input records read, as of the last checkpoint")
        counter("kappa_job_late_records_total", labels, s.late, help: "Late events written to the job's late topic")
        counter("kappa_job_dead_letter_records_total", labels, s.deadLetters, help: "Records sent to the job's dead-letter topic")
        let out = try? PartitionReader(directory: dir, topicPartition: TopicPartition(JobRegistry.outputTopic(def, version), e.task)).visibleEnd()?.offset.rawValue
        counter("kappa_job_records_out_total", labels, out ?? 0, help: "Output records committed (visible to readers)")
        if let t = seconds(s.streamTime) { gauge("kappa_job_stream_time_seconds", labels, t, help: "Largest event time read from the task's inputs (epoch seconds)") }
        if let t = seconds(s.watermark ?? s.ridesWatermark) { gauge("kappa_job_watermark_seconds", labels, t, help: "Event time up to which results are final (epoch seconds)") }
        for (topic, offset) in s.inputOffsets where (e.lag[topic] ?? 0) > 0 {
            // The newest batch's event time minus the source's stream time: how far behind
            // in event time the task is.
            let source = s.sources.first { $0.source == "\(topic)/\(e.task)" }
            if let newest = newestEventSeconds(dir, TopicPartition(topic, e.task)), let st = seconds(source?.streamTime ?? s.streamTime) {
                gauge("kappa_job_lag_seconds", labels + [("topic", topic)], max(0, newest - st), help: "Event time of the input's newest record minus the task's stream time of it (0 when caught up)")
            }
            _ = offset
        }
        for (topic, lag) in e.lag where lag == 0 {
            gauge("kappa_job_lag_seconds", labels + [("topic", topic)], 0, help: "Event time of the input's newest record minus the task's stream time of it (0 when caught up)")
        }
        if let n = s.openWindows { gauge("kappa_job_open_windows", labels, Double(n), help: "Windows not yet final") }
        if let n = s.openSessions { gauge("kappa_job_open_sessions", labels, Double(n), help: "Sessions not yet final") }
        if let n = s.pendingTickets { gauge("kappa_job_pending_tickets", labels, Double(n), help: "Tickets waiting for the rides' watermark") }
        if let n = s.ridesHeld { gauge("kappa_job_rides_held", labels, Double(n), help: "Rides kept for tickets still to come") }
        let ckpt = JobRegistry(directory: dir).checkpointPath(def.name, version, task: e.task)
        if let stamp = FileStamp(path: ckpt) { gauge("kappa_job_state_bytes", labels, Double(stamp.size), help: "Size of the task's last checkpoint (its state)") }
    }

    private func newestEventSeconds(_ dir: DataDirectory, _ tp: TopicPartition) -> Double? {
        guard let reader = try? PartitionReader(directory: dir, topicPartition: tp), let end = try? reader.visibleEnd()?.offset, end > .zero else { return nil }
        guard (try? reader.seek(to: Offset(end.rawValue - 1))) != nil, let batch = try? reader.nextBatch() else { return nil }
        return Double(batch.header.maxTimestampMillis) / 1000
    }

    private func collectStore(_ store: JobStore) {
        store.readAll { views in
            for (name, v) in views {
                let labels = [("job", name), ("version", "\(v.version)")]
                gauge("kappa_store_rows", labels + [("final", "true")], Double(v.final.count), help: "Rows the HTTP API serves from the job's current version")
                gauge("kappa_store_rows", labels + [("final", "false")], Double(v.open.count), help: "Rows the HTTP API serves from the job's current version")
            }
        }
    }

    // MARK: registry helpers

    private func gauge(_ name: String, _ labels: [(String, String)], _ value: Double, help: String) {
        registry.makeGauge(name: name, labels: labels, help: help).set(value)
    }

    /// Sets a counter to `value` (counters only grow: a smaller value is ignored).
    private func counter(_ name: String, _ labels: [(String, String)], _ value: Int64, help: String) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let delta: Int64 = lock.withLock {
            let last = counterValues[key] ?? 0
            guard value > last else { return 0 }
            counterValues[key] = value
            return value - last
        }
        let c = registry.makeCounter(name: name, labels: labels, help: help)
        if delta > 0 { c.increment(by: delta) } else { c.increment(by: Int64(0)) }
    }

    private func seconds(_ decimal: String?) -> Double? {
        guard let decimal, let t = try? EventTime.parse(decimal).get() else { return nil }
        return Double(t.rawValue) / 1e9
    }
}
