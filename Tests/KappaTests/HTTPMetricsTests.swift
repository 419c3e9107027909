import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore

/// `/metrics` of `kappa process --metrics` and of `kappa serve`, parsed by
/// prometheus-client's own parser, against `kappa jobs describe`.
extension HTTPTests {
    @Suite struct Metrics {
        static let parse = """
        import json, sys, urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        for url in sys.argv[1:]:
            text = urllib.request.urlopen(url).read().decode()
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    print(json.dumps({"url": url, "family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value}))
        """

        @Test(.enabled(if: HTTPTools.hasPrometheusClient, HTTPTools.missingPrometheus))
        func countsAgreeWithJobsDescribe() throws {
            let ws = try CLIWorkspace()
            try HTTPFx.prepare(ws, jobs: [])
            let job = try ws.writeFile("rides-per-day.yaml", lines: [Array(HTTPFx.ridesPerDay.utf8)])
            let daemon = try ws.start(["process", job, "--metrics", "127.0.0.1:0"])
            var metricsURL = ""
            try waitUntil("the daemon's metrics address") {
                guard let line = daemon.stderrText.split(separator: "\n").first(where: { $0.hasPrefix("metrics on http://") }) else { return false }
                metricsURL = String(line.dropFirst("metrics on ".count))
                return true
            }
            // Records the job cannot count: keyless (city null) go to its dead-letter topic;
            // late ones (a day long closed) to its late topic.
            let bad = (0..<3).map { i in Array("{\"user_id\":\"u9\(i)\",\"time_utc\":\"1460000000\",\"city\":null}".utf8) }
            let total = HTTPFx.rides.count + 6
            try waitUntil("the job to read every ride", timeoutSeconds: 120) { try processed(ws) == HTTPFx.rides.count }
            try ws.ok(["produce", "rides", try ws.writeFile("bad.jsonl", lines: bad)])
            let late = (0..<3).map { i in Array("{\"user_id\":\"u8\(i)\",\"time_utc\":\"1457741000\",\"city\":\"Berlin\"}".utf8) }
            try ws.ok(["produce", "rides", try ws.writeFile("late.jsonl", lines: late)])
            try waitUntil("the job to read the late and keyless rides", timeoutSeconds: 60) { try processed(ws) == total }
            let serve = try HTTPServe(ws)
            _ = try serve.get("/v1/jobs/rides-per-day/rows?limit=3")

            let samples = try ws.python(Self.parse, [metricsURL, "http://127.0.0.1:\(serve.port)/metrics"])
            let describe = try #require(try ws.jsonLines(["jobs", "describe", "rides-per-day"]).first)
            let tasks = try #require(describe["tasks"] as? [[String: Any]])
            #expect(tasks.count == 2)
            for url in [metricsURL, "http://127.0.0.1:\(serve.port)/metrics"] {
                func value(_ name: String, task: Int64, topic: String? = nil) -> Double? {
                    samples.first {
                        $0["url"] as? String == url && $0["name"] as? String == name
                            && ($0["labels"] as? [String: String])?["task"] == "\(task)" && ($0["labels"] as? [String: String])?["job"] == "rides-per-day"
                            && (topic == nil || ($0["labels"] as? [String: String])?["topic"] == topic)
                    }?["value"] as? Double
                }
                var late = 0.0, dead = 0.0
                for t in tasks {
                    let task = try #require(int64(t["task"]))
                    #expect(value("kappa_job_records_in_total", task: task) == Double(try #require(int64(t["processed"]))), "\(url) task \(task)")
                    #expect(value("kappa_job_late_records_total", task: task) == Double(try #require(int64(t["late"]))))
                    #expect(value("kappa_job_dead_letter_records_total", task: task) == Double(try #require(int64(t["dead_letters"]))))
                    for (topic, lag) in try #require(t["lag"] as? [String: Any]) {
                        #expect(value("kappa_job_lag_records", task: task, topic: topic) == Double(try #require(int64(lag))), "\(url) lag \(topic)")
                        #expect(value("kappa_job_lag_seconds", task: task, topic: topic) == 0)
                    }
                    let streamTime = try EventTime.parse(try #require(t["stream_time"] as? String)).get()
                    #expect(abs((value("kappa_job_stream_time_seconds", task: task) ?? 0) - Double(streamTime.rawValue) / 1e9) < 1e-3)
                    #expect(value("kappa_job_open_windows", task: task) == Double(try #require(int64(t["open_windows"]))))
                    #expect((value("kappa_job_state_bytes", task: task) ?? 0) > 0)
                    late += value("kappa_job_late_records_total", task: task) ?? 0
                    dead += value("kappa_job_dead_letter_records_total", task: task) ?? 0
                }
                #expect(late == 3 && dead == 3, "\(url): late \(late), dead letters \(dead)")
            }
            // Checkpoint durations (the daemon), HTTP requests (the server), all named kappa_.
            #expect(samples.contains { $0["url"] as? String == metricsURL && $0["name"] as? String == "kappa_job_checkpoint_duration_seconds_count" && ($0["value"] as? Double ?? 0) > 0 })
            #expect(samples.contains { $0["name"] as? String == "kappa_http_requests_total" && ($0["labels"] as? [String: String])?["route"] == "/v1/jobs/{job}/rows" })
            #expect(samples.contains { ($0["family"] as? String)?.hasPrefix("kappa_http_request_duration_seconds") == true && $0["type"] as? String == "histogram" })
            for s in samples {
                #expect((s["name"] as? String)?.hasPrefix("kappa_") == true, "\(s)")
                // No label carries a user, ride or ticket id.
                for v in ((s["labels"] as? [String: String]) ?? [:]).values {
                    #expect(!(v.hasPrefix("u0") || v.hasPrefix("u8") || v.hasPrefix("u9") || v.hasPrefix("r0") || v.hasPrefix("t0")), "\(s)")
                }
            }
            daemon.send(SIGTERM)
            #expect(try daemon.waitForExit() == 0)
            #expect(try serve.stop() == 0)
        }
    }
}

/// Records the job's checkpoints say were read, summed over its tasks (jobs describe).
private func processed(_ ws: CLIWorkspace) throws -> Int {
    let r = try ws.kappa(["jobs", "describe", "rides-per-day"])
    guard r.status == 0, let line = r.stdoutLines.first, let o = try? parseJSONObject(line), let tasks = o["tasks"] as? [[String: Any]] else { return -1 }
    return tasks.reduce(0) { $0 + Int(int64($1["processed"]) ?? 0) }
}
