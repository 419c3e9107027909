import Foundation
import Testing
import KappaCore
import KappaFormat
import KappaLog

// `kappa serve` over Kappa's log: transactional job outputs, jobs over Kafka-produced
// data, fetches that wait for another process's appends, offsets by time, topics made
// and deleted by a Kafka admin client.

extension CLITests {
    @Suite struct KafkaServeTests {
        /// A job output's committed marker is Kafka's last stable offset: a read_committed
        /// consumer stops there, and so does a read_uncommitted one (what lies beyond is
        /// truncated if the job crashes); moving the marker lets the rest through.
        @Test(.enabled(if: KafkaTools.hasConfluentKafka && KafkaTools.hasKcat, "needs confluent-kafka and kcat (CI installs both)"))
        func readCommittedStopsAtTheCommittedMarker() throws {
            let ws = try CLIWorkspace()
            let dir = ws.dataDirectory
            let config = TopicConfig(partitions: 1, transactional: true)
            try dir.createTopic("out", config: config)
            let tp = TopicPartition("out", 0)
            let writer = try PartitionWriter(directory: dir, topicPartition: tp, config: config)
            func append(_ range: Range<Int>) throws {
                let sealed = SealedBatches()
                let builder = RecordBatchBuilder(compression: .lz4)
                for i in range {
                    let v = Array("{\"n\":\(i)}".utf8)
                    v.withUnsafeBytes { builder.append(key: nil, value: $0, timestamp: TimestampNanos(millis: 1_700_000_000_000 + Int64(i))) }
                }
                sealed.seal(builder, codec: LZ4Codec())
                try writer.append(sealed)
            }
            try append(0..<6)
            try writer.endMarker.write(partitionDirectory: dir.partitionPath(tp))
            try append(6..<10)  // written, not committed
            let server = try KafkaServe(ws)
            for isolation in ["read_committed", "read_uncommitted"] {
                let lines = try ws.python(KafkaScripts.readCommitted, [server.bootstrap, "out", isolation])
                let values = lines.compactMap { $0["value"] as? String }
                #expect(values == (0..<6).map { "{\"n\":\($0)}" }, "\(isolation): \(values)")
                #expect(int64(lines.last?["high"]) == 6, "\(isolation): the end is the marker")
            }
            let kcat = try ws.kcat(["-b", server.bootstrap, "-C", "-t", "out", "-e", "-q", "-X", "isolation.level=read_committed"])
            #expect(kcat.stdoutLines.count == 6)
            try writer.endMarker.write(partitionDirectory: dir.partitionPath(tp))
            let after = try ws.python(KafkaScripts.readCommitted, [server.bootstrap, "out", "read_committed"])
            #expect(after.compactMap { $0["value"] as? String }.count == 10)
            #expect(try server.stop() == 0)
        }

        /// kcat produces events (keyed like a Java client, murmur2) and one that is not
        /// JSON; a job computes over them; a Kafka consumer reads the job's output exactly
        /// as `kappa consume` prints it; the bad record is in the job's dead-letter topic;
        /// the output topic cannot be deleted over the Kafka protocol.
        @Test(.enabled(if: KafkaTools.hasConfluentKafka && KafkaTools.hasKcat, "needs confluent-kafka and kcat (CI installs both)"))
        func aJobProcessesKafkaProducedData() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("visits", partitions: 2)
            let server = try KafkaServe(ws)
            var input: [UInt8] = []
            let cities = ["Berlin", "Lisbon", "Oslo"]
            for i in 0..<300 {
                input += Array("u\(i % 23)\t{\"user_id\":\"u\(i % 23)\",\"city\":\"\(cities[i % 3])\",\"time_utc\":\"\(1_700_000_000 + i * 40).5\"}\n".utf8)
            }
            input += Array("u1\tthis is not JSON\n".utf8)
            try ws.kcat(["-b", server.bootstrap, "-P", "-t", "visits", "-K", "\t", "-z", "lz4", "-X", "partitioner=murmur2_random"], stdin: input)
            // Keys land where kappa produce (murmur2) would put them.
            for (at, m) in try metaByPosition(ws, "visits") {
                #expect(expectedPartition(key: try #require(m["key"] as? String), partitions: 2) == at.partition)
            }
            let job = try ws.writeFile("visits.yaml", lines: [Array("""
            name: visits-per-city
            inputs: [visits]
            window: { key: city, time: time_utc, size: 1h, grace: 0s, aggregates: [count], emit: final }
            output: visits-per-city
            """.utf8)])
            try ws.ok(["replay", job, "--switch"])
            let kappaView = try ws.ok(["consume", "visits-per-city", "--from-beginning"]).stdoutLines.map { text($0) }
            #expect(!kappaView.isEmpty)
            let kafkaView = try ws.python(KafkaScripts.readCommitted, [server.bootstrap, "visits-per-city.v1", "read_committed"]).compactMap { $0["value"] as? String }
            #expect(kafkaView.sorted() == kappaView.sorted())
            let dead = try ws.ok(["consume", "visits-per-city.v1.dead-letter", "--from-beginning", "--with-meta"]).stdoutLines.map(parseJSONObject)
            #expect(dead.map { $0["value"] as? String } == ["this is not JSON"])
            let refused = try ws.python(KafkaScripts.admin, [server.bootstrap, "delete", "visits-per-city.v1"])
            #expect(refused.first?["error"] as? String == "POLICY_VIOLATION")
            // Nor can a Kafka client write into it: the job alone does.
            let kcatPath = try #require(KafkaTools.kcat)
            let intruderInput = try ws.writeFile("intruder.txt", lines: [Array("{\"key\":\"x\"}".utf8)])
            let intruder = try ws.external(kcatPath, ["-b", server.bootstrap, "-P", "-t", "visits-per-city.v1", "-l", intruderInput])
            #expect(intruder.stderrText.contains("authorization") || intruder.status != 0, "\(intruder.stderrText)")
            #expect(try ws.ok(["consume", "visits-per-city", "--from-beginning"]).stdoutLines.count == kappaView.count)
            #expect(try server.stop() == 0)
        }

        /// A consumer waiting at the end (a 30 s fetch wait) gets a record another process
        /// appends without waiting out its fetch: inotify wakes the parked fetch.
        @Test(.enabled(if: KafkaTools.hasConfluentKafka, KafkaTools.missingPython))
        func aWaitingFetchWakesOnAnotherProcessesAppend() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("live", partitions: 1)
            let server = try KafkaServe(ws)
            let python3 = try #require(KafkaTools.python3)
            let script = try ws.writeFile("wait.py", lines: [Array(KafkaScripts.waitOne.utf8)])
            let consumer = try ws.startExternal(python3, [script, server.bootstrap, "live"])
            try waitUntil("the consumer to wait at the end") { text(consumer.stdout).contains("ready") }
            try ws.ok(["produce", "live"], stdin: Array("{\"user_id\":\"u\",\"time_utc\":\"1700000000\"}\n".utf8))
            #expect(try consumer.waitForExit(timeoutSeconds: 60) == 0)
            let lines = try consumer.stdoutLines.map(parseJSONObject)
            #expect(lines.last?["value"] as? String == "{\"user_id\":\"u\",\"time_utc\":\"1700000000\"}",
                    "the record did not arrive before the consumer gave up (25 s, under its 30 s fetch wait): \(consumer.stderrText.suffix(500))")
            #expect(try server.stop() == 0)
        }

        /// offsets_for_times finds, per record, the first offset whose timestamp is at or
        /// after the one asked for, though the records' times are not in offset order.
        @Test(.enabled(if: KafkaTools.hasConfluentKafka, KafkaTools.missingPython))
        func offsetsForTimesAreFoundPerRecord() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("times", partitions: 1)
            let seconds = (0..<60).map { 1_700_000_000 + ($0 * 37) % 60 }  // out of order
            try ws.ok(["produce", "times", "--key-field", ""], stdin: joinLines(seconds.map { Array("{\"time_utc\":\"\($0).123456789\"}".utf8) }))
            let server = try KafkaServe(ws)
            let millis = seconds.map { Int64($0) * 1000 + 123 }
            let queries: [Int64] = [0, millis.min()!, millis.min()! + 1, 1_700_000_030_000, 1_700_000_045_123, millis.max()!, millis.max()! + 1]
            let answers = try ws.python(KafkaScripts.offsetsForTimes, [server.bootstrap, "times"] + queries.map(String.init))
            for (q, a) in zip(queries, answers) {
                let expected = millis.firstIndex { $0 >= q }.map(Int64.init) ?? -1
                #expect(int64(a["offset"]) == expected, "timestamp \(q): offset \(a["offset"]!), expected \(expected)")
            }
            #expect(try server.stop() == 0)
        }

        /// CreateTopics and DeleteTopics are `kappa topics create` and delete: the topic
        /// exists for every command at once, with the partitions and retention asked for
        /// and no known key field.
        @Test(.enabled(if: KafkaTools.hasConfluentKafka, KafkaTools.missingPython))
        func adminCreatesAndDeletesTopics() throws {
            let ws = try CLIWorkspace()
            let server = try KafkaServe(ws)
            let created = try ws.python(KafkaScripts.admin, [server.bootstrap, "create", "made-by-kafka", "also-made"])
            #expect(created.allSatisfy { $0["error"] is NSNull }, "\(created)")
            let described = try ws.describe("made-by-kafka")
            #expect(described.count == 3 && described.allSatisfy { intField($0, "retention_ms") == 3_600_000 })
            let listed = try ws.ok(["topics", "list"]).stdoutLines.map(parseJSONObject)
            #expect(listed.first { $0["topic"] as? String == "made-by-kafka" }?["key_field"] as? String == TopicConfig.kafkaClientKeyField)
            let again = try ws.python(KafkaScripts.admin, [server.bootstrap, "create", "made-by-kafka"])
            #expect(again.first?["error"] as? String == "TOPIC_ALREADY_EXISTS")
            // kappa produce into a topic with no known key field spreads records round-robin.
            try ws.ok(["produce", "made-by-kafka"], stdin: joinLines((0..<6).map { Array("{\"time_utc\":\"\(1_700_000_000 + $0)\"}".utf8) }))
            #expect(try ws.endOffsets("made-by-kafka") == [2, 2, 2])
            let deleted = try ws.python(KafkaScripts.admin, [server.bootstrap, "delete", "made-by-kafka"])
            #expect(deleted.first?["error"] is NSNull)
            #expect(try ws.kappa(["topics", "describe", "made-by-kafka"]).status != 0)
            #expect(try server.stop() == 0)
        }

        /// Fetching below the log start (retention deleted it) or above the end is
        /// OFFSET_OUT_OF_RANGE; at the start and up to the end it is records.
        @Test func fetchOutsideTheLogIsOffsetOutOfRange() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("short", partitions: 1, extra: ["--segment-bytes", "4096", "--retention-bytes", "8192", "--compression", "none"])
            for chunk in 0..<4 {  // each produce rolls and enforces retention
                try ws.ok(["produce", "short", "--key-field", ""], stdin: joinLines((0..<100).map { Array("{\"time_utc\":\"\(1_700_000_000 + chunk * 100 + $0)\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}".utf8) }))
            }
            let status = try ws.describe("short")[0]
            let start = intField(status, "start_offset"), end = intField(status, "end_offset")
            try #require(start > 0 && end == 400, "retention left \(start)..<\(end)")
            let server = try KafkaServe(ws)
            let conn = try KafkaWire(port: server.port)
            func fetch(_ offset: Int64) throws -> (error: Int16, highWatermark: Int64, recordBytes: Int) {
                conn.send(KafkaWire.fetch(topic: "short", partition: 0, offset: offset))
                return try KafkaWire.fetchResult(try #require(try conn.readFrame()))
            }
            #expect(try fetch(0).error == 1, "below the log start")
            #expect(try fetch(start - 1).error == 1)
            let atStart = try fetch(start)
            #expect(atStart.error == 0 && atStart.recordBytes > 0 && atStart.highWatermark == end)
            #expect(try fetch(end).error == 0 && fetch(end).recordBytes == 0, "at the end: nothing yet")
            #expect(try fetch(end + 1).error == 1, "above the end")
            #expect(try server.stop() == 0)
        }
    }
}
