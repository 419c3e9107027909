import Foundation
import Testing
import KappaCore
import KappaLog
import KappaTesting

extension CLITests {
    /// How records are keyed, through the real binary (SPEC §2, §3, §5): null keys are
    /// keyless records; jobs dead-letter them, and dead-letter records that sit in a
    /// partition that does not hold their key; `jobs describe` shows how a job reads
    /// each input and how far its repartition topic is behind.
    @Suite struct JobCLIKeyingTests {
        static func event(_ i: Int, user: String, device: String = "d1") -> [UInt8] {
            bytes(#"{"time_utc":"\#(1_457_740_800 + i * 60).5","user_id":\#(user),"device_id":"\#(device)","event_type":"login"}"#)
        }

        static let sessionJob = """
            name: sessions
            inputs: [events]
            session: { key: user_id, time: time_utc, gap: 30m, grace: 5m }
            output: sessions
            """

        @Test func nullKeysAreKeylessRecordsAndJobsDeadLetterThem() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: 4)
            let keyless = (0..<8).map { Self.event($0, user: "null") }
            let keyed = (8..<12).map { Self.event($0, user: "\"u\($0)\"") }
            let bad = [
                bytes(#"{"time_utc":"1457740800","device_id":"d1"}"#),  // no key field: a bad line
                bytes(#"{"time_utc":"1457740800","user_id":{"id":1}}"#),
                bytes(#"{"time_utc":"1457740800","user_id":[1]}"#),
            ]
            // A null key does not stop the default --on-error fail.
            let file = try ws.writeFile("keyless.jsonl", lines: keyless + keyed)
            let r = try ws.ok(["produce", "events", file])
            #expect(r.stderrText.contains("8 keyless (null 'user_id', spread round-robin)"), "produce summary: \(r.stderrText)")
            // Missing keys and keys that are objects or arrays stay bad lines.
            let badFile = try ws.writeFile("bad.jsonl", lines: bad)
            let b = try ws.kappa(["produce", "events", badFile])
            #expect(b.status != 0 && b.stderrText.contains("line 1") && b.stderrText.contains("missing key field 'user_id'"), "\(b)")
            let s = try ws.ok(["produce", "events", badFile, "--on-error", "skip"])
            #expect(s.stderrText.contains("is an object") && s.stderrText.contains("is an array") && s.stderrText.contains("3 bad lines skipped"), "\(s.stderrText)")

            let meta = try ws.consumeAll("events")
            let all = meta.values.flatMap { $0 }
            #expect(all.count == 12)
            let nullKeyed = all.filter { $0.key == nil }
            #expect(nullKeyed.count == 8 && Set(nullKeyed.map(\.value)) == Set(keyless), "keyless records with \"key\": null: \(nullKeyed)")
            #expect(Dictionary(grouping: nullKeyed, by: \.partition).mapValues(\.count) == [0: 2, 1: 2, 2: 2, 3: 2],
                    "keyless records are spread round-robin: \(nullKeyed.map(\.partition))")

            let job = try ws.writeJobFile("sessions.yaml", Self.sessionJob)
            try ws.ok(["replay", job, "--switch"])
            let deadLetters = try ws.deadLetters("sessions.v1.dead-letter")
            #expect(deadLetters.count == 8, "\(deadLetters)")
            #expect(Set(deadLetters.map(\.value)) == Set(keyless))
            #expect(deadLetters.allSatisfy { $0.error == "keyless record: key field 'user_id' is null" }, "\(deadLetters.map(\.error))")
            let tasks = try ws.jobTasks("sessions", version: 1)
            #expect(tasks.reduce(0) { $0 + intField($1, "dead_letters") } == 8)
            #expect(try ws.query("sessions").count == 4, "the four keyed events make four sessions (open)")
        }

        /// A topic declared keyed by user (so jobs read it directly) that was produced
        /// with another key field: records in a partition that does not hold their user
        /// would split that user's sessions between tasks. They are dead-lettered, never
        /// counted in the wrong place.
        @Test func misroutedRecordsOfADirectInputAreDeadLettered() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: 4)
            let byUser = (0..<20).map { Self.event($0, user: "\"u\($0 % 5)\"", device: "d\($0)") }
            let byDevice = (20..<60).map { Self.event($0, user: "\"u\($0 % 5)\"", device: "d\($0)") }
            try ws.produce("events", byUser)
            let file = try ws.writeFile("by-device.jsonl", lines: byDevice)
            let r = try ws.ok(["produce", "events", file, "--key-field", "device_id"])
            #expect(r.stderrText.contains("warning: events is keyed by 'user_id'"), "\(r.stderrText)")
            let misrouted = byDevice.filter {
                expectedPartition(key: stringField("user_id", in: $0)!, partitions: 4) != expectedPartition(key: stringField("device_id", in: $0)!, partitions: 4)
            }
            #expect(!misrouted.isEmpty && misrouted.count < byDevice.count, "the test data must put some records in the wrong place")

            let job = try ws.writeJobFile("sessions.yaml", Self.sessionJob)
            try ws.ok(["replay", job, "--switch"])
            let deadLetters = try ws.deadLetters("sessions.v1.dead-letter")
            #expect(Set(deadLetters.map(\.value)) == Set(misrouted) && deadLetters.count == misrouted.count,
                    "\(deadLetters.count) dead letters for \(misrouted.count) misrouted records")
            #expect(deadLetters.allSatisfy { $0.error.hasPrefix("misrouted: key field 'user_id' = ") && $0.error.contains("topic 'events'") },
                    "\(deadLetters.first?.error ?? "")")
        }

        /// `jobs describe` of a job that re-keys: its plan, the repartition topic's lag,
        /// and the stream time of every source partition its tasks wait for.
        @Test func describeShowsThePlanRepartitionLagAndSourceStreamTimes() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: 3, extra: ["--key-field", "device_id"])
            try ws.produce("events", (0..<30).map { Self.event($0, user: "\"u\($0 % 7)\"", device: "d\($0 % 11)") })
            let job = try ws.writeJobFile("sessions.yaml", Self.sessionJob)
            try ws.ok(["replay", job, "--switch"])
            let version = try #require(try ws.describeJob("sessions").first)
            let plan = try #require(version["plan"] as? [String: Any], "\(version)")
            let inputs = try #require(plan["inputs"] as? [[String: Any]])
            #expect(inputs.count == 1 && inputs[0]["route"] as? String == "rekeyed" && inputs[0]["key_field"] as? String == "device_id", "\(plan)")
            #expect((plan["explanation"] as? [String])?.first?.contains("re-keyed by 'user_id'") == true, "\(plan)")
            let tasks = try ws.jobTasks("sessions", version: 1)
            #expect(tasks.count == 3)
            for t in tasks {
                let lag = try #require(t["lag"] as? [String: Any], "\(t)")
                #expect((lag["sessions.v1.repartition"] as? NSNumber)?.int64Value == 0 && (lag["events"] as? NSNumber)?.int64Value == 0, "\(lag)")
                let sources = try #require(t["sources"] as? [[String: Any]], "\(t)")
                #expect(sources.map { $0["source"] as? String } == ["events/0", "events/1", "events/2"], "\(sources)")
                #expect(sources.allSatisfy { $0["stream_time"] is String }, "every source reported a stream time: \(sources)")
                #expect(t["watermark"] is String, "\(t)")
            }
        }
    }
}

extension CLIWorkspace {
    /// A dead-letter topic's records with their `kappa.error` header, read from the log.
    func deadLetters(_ topic: String) throws -> [(value: [UInt8], error: String)] {
        var out: [(value: [UInt8], error: String)] = []
        let dir = dataDirectory
        for p in 0..<(try dir.topicConfig(topic).partitions) {
            let reader = try PartitionReader(directory: dir, topicPartition: TopicPartition(topic, p))
            for r in try reader.readAll(from: .zero).records {
                let error = r.record.headers.first { $0.key == "kappa.error" }.map { String(decoding: $0.value, as: UTF8.self) } ?? ""
                out.append((r.record.value, error))
            }
        }
        return out
    }
}
