import Foundation
import Testing
import KappaCore
import KappaFormat
import KappaLog

// Each real Kafka client produces and consumes through `kappa serve`, and what it wrote
// is what `kappa consume` prints (keys, values, headers, timestamps); what `kappa
// produce` wrote is what a Kafka client reads.

extension CLITests {
    @Suite struct KafkaClientTests {
        static let records = 240

        @Test(.enabled(if: KafkaTools.hasConfluentKafka, KafkaTools.missingPython))
        func confluentKafkaRoundTrip() throws { try roundTrip("confluent") }

        @Test(.enabled(if: KafkaTools.hasKafkaPython, KafkaTools.missingPython))
        func kafkaPythonRoundTripWithDefaults() throws {
            let ws = try roundTrip("kafka-python")
            // kafka-python's default producer is idempotent: its batches carry a producer id.
            let reader = try PartitionReader(directory: ws.dataDirectory, topicPartition: TopicPartition("events", 0))
            let batch = try #require(try reader.nextBatch())
            #expect(batch.bytes.loadBigEndian(at: RecordBatchLayout.producerIdOffset, as: Int64.self) >= 0)
        }

        @Test(.enabled(if: KafkaTools.hasAiokafka, KafkaTools.missingPython))
        func aiokafkaRoundTrip() throws { try roundTrip("aiokafka") }

        /// Produces and consumes `records` with one client; checks both views.
        @discardableResult
        func roundTrip(_ client: String) throws -> CLIWorkspace {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: 3)
            let server = try KafkaServe(ws)
            let consumed = try ws.python(KafkaScripts.roundTrip, [client, server.bootstrap, "events", String(Self.records), "g-\(client)"])
            try checkAgainstSpec(ws, topic: "events", consumed: consumed, count: Self.records)
            // The group's commits are Kappa's: nothing left to read.
            let lags = try ws.ok(["groups", "describe", "g-\(client)"]).stdoutLines.map(parseJSONObject)
            #expect(lags.count == 3 && lags.allSatisfy { intField($0, "lag") == 0 }, "\(lags)")
            #expect(try server.stop() == 0)
            return ws
        }

        @Test(.enabled(if: KafkaTools.hasKcat, KafkaTools.missingKcat))
        func kcatProducesLz4AndConsumes() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("events", partitions: 2)
            let server = try KafkaServe(ws)
            // kcat -P: one record per line, key before ':', a header, lz4 batches.
            var input: [UInt8] = []
            for i in 0..<2000 { input += Array("key\(i % 17):{\"n\":\(i),\"pad\":\"abcabcabcabcabcabc\"}\n".utf8) }
            input += Array("plain:not json at all\n".utf8)
            try ws.kcat(["-b", server.bootstrap, "-P", "-t", "events", "-K", ":", "-z", "lz4", "-H", "source=kcat"], stdin: input)
            let out = try ws.kcat(["-b", server.bootstrap, "-C", "-t", "events", "-e", "-q", "-f", "%p %o %k %T %h %s\\n"])
            let lines = out.stdoutText.split(separator: "\n").map(String.init)
            #expect(lines.count == 2001, "\(lines.prefix(3))")
            let meta = try metaByPosition(ws, "events")
            for line in lines {
                let f = line.split(separator: " ", maxSplits: 5).map(String.init)
                let m = try #require(meta[PartitionOffset(Int32(f[0])!, Int64(f[1])!)], "no record at \(f[0])/\(f[1])")
                #expect(m["key"] as? String == f[2])
                #expect(m["timestamp"] as? String == TimestampNanos(millis: Int64(f[3])!).decimalSeconds)
                #expect(m["headers"] as? [[String]] == [["source", "kcat"]])
                if f[5].hasPrefix("{") {
                    #expect((m["value"] as? NSDictionary) == (try parseJSONObject(Array(f[5].utf8)) as NSDictionary))
                } else {
                    #expect(m["value"] as? String == f[5])
                }
            }
            // kcat's batches are lz4 (librdkafka sends a batch uncompressed when that is
            // smaller), stored as sent.
            let batches = try (0..<2).flatMap { p in try diskBatches(try ws.logFiles("events", Int32(p))[0]) }
            #expect(batches.contains { $0.header.compression == .lz4 })
            #expect(try server.stop() == 0)
        }

        @Test(.enabled(if: KafkaTools.hasKcat && KafkaTools.hasConfluentKafka, "needs kcat and confluent-kafka (CI installs both)"))
        func kappaProducedRecordsReadByKafkaClients() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 2)
            try ws.ok(["produce", "rides"], stdin: joinLines(rebuLines(seed: 3, count: 300)))
            let server = try KafkaServe(ws)
            let meta = try metaByPosition(ws, "rides")
            // kcat: keys, values, and the event time's milliseconds as the Kafka timestamp.
            let out = try ws.kcat(["-b", server.bootstrap, "-C", "-t", "rides", "-e", "-q", "-f", "%p %o %k %T %s\\n"])
            let lines = out.stdoutText.split(separator: "\n").map(String.init)
            #expect(lines.count == 300)
            for line in lines {
                let f = line.split(separator: " ", maxSplits: 4).map(String.init)
                let m = try #require(meta[PartitionOffset(Int32(f[0])!, Int64(f[1])!)])
                #expect(m["key"] as? String == f[2])
                let time = try #require(m["timestamp"] as? String)
                #expect(EventTime.parse(time).map(\.millis) == .success(Int64(f[3])!))
                #expect((try parseJSONObject(Array(f[4].utf8)) as NSDictionary) == (m["value"] as? NSDictionary))
            }
            // confluent-kafka: the nanoseconds below the millisecond ride in the kappa.ns header.
            let read = try ws.python(KafkaScripts.readAll, [server.bootstrap, "rides", "300"])
            #expect(read.count == 300)
            for r in read {
                let m = try #require(meta[PartitionOffset(Int32(int64(r["partition"])!), int64(r["offset"])!)])
                let nanos = Int32(int64(r["kappa_ns"]) ?? 0)
                #expect(TimestampNanos(millis: try #require(int64(r["timestamp"])), subMilliNanos: nanos).decimalSeconds == m["timestamp"] as? String)
                #expect(r["key"] as? String == m["key"] as? String)
            }
            #expect(try server.stop() == 0)
        }
    }
}

struct PartitionOffset: Hashable {
    var partition: Int32
    var offset: Int64
    init(_ partition: Int32, _ offset: Int64) {
        self.partition = partition
        self.offset = offset
    }
}

/// `kappa consume TOPIC --from-beginning --with-meta`, by partition and offset.
func metaByPosition(_ ws: CLIWorkspace, _ topic: String) throws -> [PartitionOffset: [String: Any]] {
    var out: [PartitionOffset: [String: Any]] = [:]
    for o in try ws.ok(["consume", topic, "--from-beginning", "--with-meta"]).stdoutLines.map(parseJSONObject) {
        out[PartitionOffset(Int32(intField(o, "partition")), intField(o, "offset"))] = o
    }
    return out
}

/// What a client consumed (`KafkaScripts.emit` lines) must be exactly the records
/// `KafkaRecordSpec(0..<count)`, and `kappa consume --with-meta` must print each the same.
func checkAgainstSpec(_ ws: CLIWorkspace, topic: String, consumed: [[String: Any]], count: Int,
                      sourceLocation: SourceLocation = #_sourceLocation) throws {
    let got = try consumed.map { o in
        KafkaRecordSpec(key: o["key"] as? String, value: try #require(o["value"] as? String), headers: o["headers"] as? [[String]] ?? [],
                        timestampMillis: try #require(int64(o["timestamp"])))
    }
    #expect(got.count == count, "consumed \(got.count) records, produced \(count)", sourceLocation: sourceLocation)
    #expect(Set(got) == Set((0..<count).map(KafkaRecordSpec.init)), "consumed records differ from the produced ones", sourceLocation: sourceLocation)
    let meta = try metaByPosition(ws, topic)
    #expect(meta.count == count, sourceLocation: sourceLocation)
    for (o, spec) in zip(consumed, got) {
        let at = PartitionOffset(Int32(int64(o["partition"])!), int64(o["offset"])!)
        let m = try #require(meta[at], "kappa consume has no record at \(at)", sourceLocation: sourceLocation)
        #expect(m["key"] as? String == spec.key, sourceLocation: sourceLocation)
        #expect(m["timestamp"] as? String == spec.decimalSeconds, sourceLocation: sourceLocation)
        #expect((m["headers"] as? [[String]] ?? []) == spec.headers, sourceLocation: sourceLocation)
        if spec.isJSON {
            #expect((m["value"] as? NSDictionary) == (try parseJSONObject(Array(spec.value.utf8)) as NSDictionary), sourceLocation: sourceLocation)
        } else {
            #expect(m["value"] as? String == spec.value, sourceLocation: sourceLocation)
        }
    }
}
