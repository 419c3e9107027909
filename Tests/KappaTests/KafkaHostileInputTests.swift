import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore
import KappaFormat
import KappaLog
import KappaTesting

// What a hostile or broken peer sends `kappa serve`: each closes that connection only
// (or, for a broken batch, is refused with the right error code and appends nothing),
// memory stays bounded, and the server keeps serving everyone else.

extension CLITests {
    @Suite struct KafkaHostileInputTests {
        /// Each hostile frame closes its connection; a healthy connection opened before
        /// them all is still answered after each one, and the server's memory stays small.
        @Test func hostileFramesCloseOnlyTheirConnection() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("t", partitions: 1)
            let server = try KafkaServe(ws)
            let healthy = try KafkaWire(port: server.port)
            var correlation: Int32 = 100
            func stillServing(_ what: String) throws {
                correlation += 1
                #expect(healthy.send(KafkaWire.apiVersions(correlationId: correlation)), "after \(what)")
                let answer = try #require(try healthy.readFrame(), "the healthy connection was closed after \(what)")
                var c = ByteCursor(answer)
                #expect(try c.int32() == correlation && c.int16() == 0, "after \(what)")
            }
            var metadataBillion: [UInt8] = []
            metadataBillion.append(int32: 1_000_000_000)  // topics: a billion names...
            metadataBillion.append(string: "t")            // ...and one
            var trailing: [UInt8] = []
            trailing.append(int32: 1)
            trailing.append(string: "t")
            trailing += [1, 2, 3]
            var random = SeededRandom(seed: 9)
            let cases: [(String, [UInt8], Bool)] = [
                ("a length above 100 MiB", bigEndian(Int32(100 << 20) + 1) + [1, 2, 3], false),
                ("a negative length", bigEndian(Int32(-5)) + [0, 0, 0, 0], false),
                ("a length shorter than a request header", bigEndian(Int32(3)) + [0, 18, 0], false),
                ("garbage in a frame of plausible length", bigEndian(Int32(4092)) + random.bytes(4092), false),
                ("garbage where the length should be", [0xDE, 0xAD, 0xBE, 0xEF] + random.bytes(60), false),
                ("an unknown API key", KafkaWire.frame(key: 999, version: 0, body: []), false),
                ("an API the server does not serve (DescribeConfigs)", KafkaWire.frame(key: 32, version: 0, body: [0, 0, 0, 0]), false),
                ("a version the server does not serve (Metadata v9, flexible)", KafkaWire.frame(key: 3, version: 9, body: [0, 0]), false),
                ("a Metadata request naming a billion topics", KafkaWire.frame(key: 3, version: 1, body: metadataBillion), false),
                ("a request with bytes after its last field", KafkaWire.frame(key: 3, version: 1, body: trailing), false),
                ("a truncated frame, then the peer half-closes", bigEndian(Int32(1000)) + [0, 3, 0, 1, 0, 0, 0, 7], true),
            ]
            for (what, bytes, halfClose) in cases {
                let conn = try KafkaWire(port: server.port)
                conn.send(bytes)
                if halfClose { conn.shutdownWrite() }
                #expect(try conn.isClosedByServer(), "\(what): the connection stays open")
                try stillServing(what)
            }
            // A frame that claims 99 MiB and sends 8 MiB is buffered, not allocated in
            // full; closing it frees it.
            let slow = try KafkaWire(port: server.port)
            slow.send(bigEndian(Int32(99 << 20)) + [UInt8](repeating: 7, count: 8 << 20))
            try stillServing("a slow frame")
            #expect(residentKiB(server.process.pid) < 200 << 10, "server resident memory \(residentKiB(server.process.pid)) KiB")
            #expect(server.isRunning)
            #expect(try server.stop() == 0)
        }

        /// A broken batch is refused with the code a Kafka client acts on, and nothing of
        /// the request is appended: the partition stays empty and the next good batch
        /// gets offset 0.
        @Test func aBrokenProduceBatchAppendsNothing() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("t", partitions: 1)
            let server = try KafkaServe(ws)
            let conn = try KafkaWire(port: server.port)
            let good = sealedBatch(records: 5)
            var badCRC = good
            badCRC[good.count - 3] ^= 0xFF
            var gzip = good
            gzip[RecordBatchLayout.attributesOffset + 1] = (gzip[RecordBatchLayout.attributesOffset + 1] & 0xF8) | 1
            fixCRC(&gzip)
            var sparse = good
            sparse.replaceSubrange(RecordBatchLayout.lastOffsetDeltaOffset..<(RecordBatchLayout.lastOffsetDeltaOffset + 4), with: bigEndian(Int32(9)))
            fixCRC(&sparse)
            var magic1 = good
            magic1[RecordBatchLayout.magicOffset] = 1
            let truncated = Array(good.dropLast(10))
            let cases: [(String, [UInt8], Int16)] = [
                ("a CRC mismatch", badCRC, 2),
                ("gzip", gzip, 76),
                ("offset deltas that skip", sparse, 87),
                ("magic 1", magic1, 87),
                ("a batch cut short", truncated, 2),
                ("a good batch followed by a broken one", good + badCRC, 2),
                ("no batch at all", [], 87),
            ]
            var correlation: Int32 = 0
            for (what, records, code) in cases {
                correlation += 1
                conn.send(KafkaWire.produce(topic: "t", partition: 0, records: records, correlationId: correlation))
                let answer = try #require(try conn.readFrame(), "\(what): connection closed")
                let result = try KafkaWire.produceResult(answer)
                #expect(result.error == code, "\(what): error \(result.error), expected \(code)")
                #expect(try ws.endOffsets("t") == [0], "\(what) appended something")
            }
            correlation += 1
            conn.send(KafkaWire.produce(topic: "t", partition: 0, records: good, correlationId: correlation))
            #expect(try KafkaWire.produceResult(try #require(try conn.readFrame())) == (0, 0))
            #expect(try ws.endOffsets("t") == [5])
            // Unknown topic and partition.
            conn.send(KafkaWire.produce(topic: "nope", partition: 0, records: good, correlationId: 99))
            #expect(try KafkaWire.produceResult(try #require(try conn.readFrame())).error == 3)
            conn.send(KafkaWire.produce(topic: "t", partition: 7, records: good, correlationId: 100))
            #expect(try KafkaWire.produceResult(try #require(try conn.readFrame())).error == 3)
            #expect(try server.stop() == 0)
        }

        /// An idempotent producer's retry of a batch that was written is answered with the
        /// offset it got and not written again — also after a restart, from the batch
        /// headers in the log.
        @Test func idempotentRetriesAreWrittenOnceAlsoAfterARestart() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("t", partitions: 1)
            var server = try KafkaServe(ws)
            let first = sealedBatch(records: 4, producerId: 7_000, epoch: 0, sequence: 0)
            let second = sealedBatch(records: 4, producerId: 7_000, epoch: 0, sequence: 4)
            var conn = try KafkaWire(port: server.port)
            func produce(_ batch: [UInt8]) throws -> (error: Int16, baseOffset: Int64) {
                conn.send(KafkaWire.produce(topic: "t", partition: 0, records: batch))
                return try KafkaWire.produceResult(try #require(try conn.readFrame()))
            }
            #expect(try produce(first) == (0, 0))
            #expect(try produce(first) == (0, 0), "a retry answers the first attempt's offset")
            #expect(try ws.endOffsets("t") == [4])
            #expect(try server.stop() == 0)
            server = try KafkaServe(ws)
            conn = try KafkaWire(port: server.port)
            #expect(try produce(first) == (0, 0), "after a restart the retry is still known")
            #expect(try produce(sealedBatch(records: 4, producerId: 7_000, epoch: 0, sequence: 20)).error == 45, "a gap in the sequence")
            #expect(try produce(second) == (0, 4))
            #expect(try produce(sealedBatch(records: 1, producerId: 7_000, epoch: 1, sequence: 0)) == (0, 8), "a new epoch starts at 0")
            #expect(try produce(sealedBatch(records: 1, producerId: 7_000, epoch: 0, sequence: 8)).error == 47, "a fenced epoch")
            #expect(try ws.endOffsets("t") == [9])
            #expect(try server.stop() == 0)
        }
    }
}

func bigEndian<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.bigEndian, Array.init) }

/// A RecordBatch v2 built by Kappa's own builder (uncompressed), with optional
/// idempotence fields (set before the CRC is recomputed).
func sealedBatch(records: Int, producerId: Int64 = -1, epoch: Int16 = -1, sequence: Int32 = -1) -> [UInt8] {
    let builder = RecordBatchBuilder(compression: .none)
    for i in 0..<records {
        let value = Array("{\"n\":\(i)}".utf8)
        value.withUnsafeBytes { builder.append(key: nil, value: $0, timestamp: TimestampNanos(millis: 1_700_000_000_000 + Int64(i))) }
    }
    let out = ByteWriter(capacity: 4096)
    builder.seal(into: out, codec: LZ4Codec())
    var bytes = Array(out.bytes)
    bytes.replaceSubrange(RecordBatchLayout.producerIdOffset..<(RecordBatchLayout.producerIdOffset + 8), with: bigEndian(producerId))
    bytes.replaceSubrange(RecordBatchLayout.producerEpochOffset..<(RecordBatchLayout.producerEpochOffset + 2), with: bigEndian(epoch))
    bytes.replaceSubrange(RecordBatchLayout.baseSequenceOffset..<(RecordBatchLayout.baseSequenceOffset + 4), with: bigEndian(sequence))
    fixCRC(&bytes)
    return bytes
}

func fixCRC(_ batch: inout [UInt8]) {
    let crc = batch.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchLayout.attributesOffset...])) }
    batch.replaceSubrange(RecordBatchLayout.crcOffset..<(RecordBatchLayout.crcOffset + 4), with: bigEndian(crc))
}
