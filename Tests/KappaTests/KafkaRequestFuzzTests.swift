import Foundation
import NIOCore
import NIOEmbedded
import Testing
import KappaCore
import KappaFormat
import KappaLog
@testable import KappaServer
import KappaTesting
import Logging

/// Seeded fuzzing of the whole request path — frame decoder, connection handler,
/// dispatcher and every API — in memory: NIO's EmbeddedChannel and EmbeddedEventLoop
/// run the real pipeline on this thread, with the broker on a temporary data
/// directory. Valid requests of every API are mutated (bytes flipped, lengths and counts
/// overwritten, cut short, extended, spliced) and fed in. Whatever the input: no crash
/// or trap, every request is answered or its connection closed, and the log stays valid
/// (every batch any request appended reads back with its CRC). A failure prints its seed.
@Suite struct KafkaRequestFuzzTests {
    static let iterations = Int(ProcessInfo.processInfo.environment["KAFKA_FUZZ_ITERATIONS"] ?? "") ?? 4000

    @Test(arguments: [UInt64(1), 2, 3])
    func mutatedRequestsNeverCrashOrCorruptTheLog(seed: UInt64) throws {
        let tmp = try TemporaryDirectory(prefix: "kappa-fuzz")
        let dir = DataDirectory(root: tmp.path)
        try dir.createTopic("t", config: TopicConfig(partitions: 2))
        let loop = EmbeddedEventLoop()
        var options = KafkaServerOptions(host: "127.0.0.1", port: 0)
        options.groupInitialRebalanceDelayMillis = 0
        options.autoCreateTopics = false
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical  // refused requests are expected here by the thousand
        let broker = try Broker(directory: dir, options: options, loop: loop, logger: logger)
        var random = SeededRandom(seed: seed)
        let seeds = Self.seeds()
        var answered = 0, closed = 0
        for i in 0..<Self.iterations {
            var input = Self.mutate(seeds[random.int(0...(seeds.count - 1))], &random)
            if random.chance(80) { input = bigEndian(Int32(input.count)) + input }  // a consistent frame length, mostly
            if ProcessInfo.processInfo.environment["KAFKA_FUZZ_TRACE"] != nil { FileHandle.standardError.write(Data("\(i) \(input.prefix(12))\n".utf8)) }
            // A connection of its own: an input that leaves a frame half-read does not
            // swallow the next inputs.
            let channel = try Self.channel(broker, loop)
            do {
                try channel.writeInbound(ByteBuffer(bytes: input))
            } catch {
                // The decoder refused the frame: the handler closes the connection.
            }
            loop.run()
            loop.advanceTime(by: .seconds(60))  // parked fetches and group waits end
            while let _ = try channel.readOutbound(as: ByteBuffer.self) { answered += 1 }
            if channel.isActive {
                _ = channel.close()
                loop.run()
            } else {
                closed += 1
            }
        }
        broker.shutdown()
        #expect(answered > 0 && closed > 0, "seed \(seed): \(answered) answers, \(closed) closed connections")
        // Names from requests never escaped the data directory's layout.
        let top = try FileManager.default.contentsOfDirectory(atPath: tmp.path).sorted()
        #expect(Set(top).isSubset(of: ["groups", "kafka", "topics"]), "seed \(seed): \(top)")
        // Whatever was appended is whole, checked batches.
        for topic in try dir.listTopics() {
            for p in 0..<(try dir.topicConfig(topic).partitions) {
                let reader = try PartitionReader(directory: dir, topicPartition: TopicPartition(topic, p))
                do {
                    while try reader.nextBatch() != nil {}
                } catch {
                    Issue.record("seed \(seed): \(topic)/\(p) does not read back: \(error)")
                }
            }
        }
    }

    @Test func oneRequestIsAnswered() throws {
        let tmp = try TemporaryDirectory(prefix: "kappa-fuzz")
        let dir = DataDirectory(root: tmp.path)
        let loop = EmbeddedEventLoop()
        let broker = try Broker(directory: dir, options: KafkaServerOptions(host: "127.0.0.1", port: 0), loop: loop, logger: .init(label: "fuzz"))
        let channel = try Self.channel(broker, loop)
        try channel.writeInbound(ByteBuffer(bytes: KafkaWire.apiVersions()))
        loop.run()
        let answer = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(answer.readableBytes > 10)
    }

    static func channel(_ broker: Broker, _ loop: EmbeddedEventLoop) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(ConnectionHandler(broker: broker, logger: .init(label: "fuzz")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return channel
    }

    /// One byte-level mutation (or a few) of a request without its length prefix.
    static func mutate(_ seed: [UInt8], _ r: inout SeededRandom) -> [UInt8] {
        var b = seed
        for _ in 0..<r.int(1...3) {
            switch r.int(0...5) {
            case 0 where !b.isEmpty:
                b[r.int(0...(b.count - 1))] ^= UInt8(r.int(1...255))
            case 1 where b.count >= 4:
                let at = r.int(0...(b.count - 4))
                let v: Int32 = [Int32.min, -1, 0, 1, 0x7FFF, Int32.max, Int32(r.int(0...100_000))][r.int(0...6)]
                b.replaceSubrange(at..<(at + 4), with: bigEndian(v))
            case 2 where b.count >= 2:
                let at = r.int(0...(b.count - 2))
                b.replaceSubrange(at..<(at + 2), with: bigEndian([Int16.min, -1, 0, 1, Int16.max][r.int(0...4)]))
            case 3 where !b.isEmpty:
                b = Array(b.prefix(r.int(0...(b.count - 1))))
            case 4:
                b += r.bytes(r.int(1...64))
            default:
                if b.count > 8 { b.insert(contentsOf: r.bytes(r.int(1...16)), at: r.int(8...(b.count - 1))) }
            }
        }
        return b
    }

    /// Valid requests of every API (no length prefix).
    static func seeds() -> [[UInt8]] {
        func frame(_ key: Int16, _ version: Int16, _ body: [UInt8]) -> [UInt8] { Array(KafkaWire.frame(key: key, version: version, body: body).dropFirst(4)) }
        var topics: [UInt8] = []
        topics.append(int32: 1)
        topics.append(string: "t")
        var produce: [UInt8] = []
        produce.append(int16: -1)
        produce.append(int16: 1)
        produce.append(int32: 1000)
        produce.append(int32: 1)
        produce.append(string: "t")
        produce.append(int32: 1)
        produce.append(int32: 0)
        let batch = sealedBatch(records: 3, producerId: 5, epoch: 0, sequence: 0)
        produce.append(int32: Int32(batch.count))
        produce += batch
        var fetch: [UInt8] = []
        fetch.append(int32: -1)
        fetch.append(int32: 500)
        fetch.append(int32: 1)
        fetch.append(int32: 1 << 20)
        fetch.append(0)
        fetch.append(int32: 0)
        fetch.append(int32: -1)
        fetch += topics.prefix(4) + [0, 1, UInt8(ascii: "t")]
        fetch.append(int32: 1)
        fetch.append(int32: 0)
        fetch.append(int32: -1)
        fetch.append(int64: 0)
        fetch.append(int64: -1)
        fetch.append(int32: 1 << 20)
        fetch.append(int32: 0)
        fetch.append(string: "")
        var listOffsets: [UInt8] = []
        listOffsets.append(int32: -1)
        listOffsets += topics
        listOffsets.append(int32: 1)
        listOffsets.append(int32: 0)
        listOffsets.append(int64: -1)
        var join: [UInt8] = []
        join.append(string: "g")
        join.append(int32: 10_000)
        join.append(int32: 10_000)
        join.append(string: "")
        join.append(int16: -1)
        join.append(string: "consumer")
        join.append(int32: 1)
        join.append(string: "range")
        join.append(int32: 3)
        join += [1, 2, 3]
        var sync: [UInt8] = []
        sync.append(string: "g")
        sync.append(int32: 1)
        sync.append(string: "m")
        sync.append(int32: 1)
        sync.append(string: "m")
        sync.append(int32: 2)
        sync += [9, 9]
        var heartbeat: [UInt8] = []
        heartbeat.append(string: "g")
        heartbeat.append(int32: 1)
        heartbeat.append(string: "m")
        var commit: [UInt8] = []
        commit.append(string: "g")
        commit.append(int32: -1)
        commit.append(string: "")
        commit.append(int64: -1)
        commit += topics
        commit.append(int32: 1)
        commit.append(int32: 0)
        commit.append(int64: 2)
        commit.append(int16: -1)
        var offsetFetch: [UInt8] = []
        offsetFetch.append(string: "g")
        offsetFetch += topics
        offsetFetch.append(int32: 1)
        offsetFetch.append(int32: 0)
        var create: [UInt8] = []
        create.append(int32: 1)
        create.append(string: "fuzz-topic")
        create.append(int32: 2)
        create.append(int16: 1)
        create.append(int32: 0)
        create.append(int32: 1)
        create.append(string: "retention.ms")
        create.append(string: "1000")
        create.append(int32: 1000)
        create.append(0)
        var delete: [UInt8] = []
        delete.append(int32: 1)
        delete.append(string: "fuzz-topic")
        delete.append(int32: 1000)
        var describe: [UInt8] = []
        describe.append(int32: 1)
        describe.append(string: "g")
        var initProducer: [UInt8] = []
        initProducer.append(int16: -1)
        initProducer.append(int32: 1000)
        var coordinator: [UInt8] = []
        coordinator.append(string: "g")
        var leave: [UInt8] = []
        leave.append(string: "g")
        leave.append(string: "m")
        return [
            frame(18, 0, []), frame(18, 3, [0, 0]), frame(3, 1, topics), frame(3, 8, topics + [1, 0, 0]), frame(0, 3, produce),
            frame(1, 11, fetch), frame(2, 1, listOffsets), frame(11, 1, join), frame(14, 0, sync), frame(12, 0, heartbeat),
            frame(8, 2, commit), frame(9, 1, offsetFetch), frame(19, 2, create), frame(20, 1, delete), frame(15, 0, describe),
            frame(16, 0, []), frame(22, 0, initProducer), frame(10, 0, coordinator), frame(13, 0, leave),
        ]
    }
}
