import Testing
@testable import KappaLog

/// Kafka's default partitioner hash. A key must land where a Kafka client would put it.
@Suite struct UnitMurmur2Tests {
    /// From org.apache.kafka.common.utils.UtilsTest.testMurmur2.
    static let kafkaVectors: [(String, Int32)] = [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
    ]

    @Test(arguments: kafkaVectors)
    func matchesKafkaUtilsTest(_ key: String, _ expected: Int32) {
        #expect(Partitioner.murmur2(Array(key.utf8)) == expected)
    }

    @Test func byteArrayVector() {
        #expect(Partitioner.murmur2([UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "c")]) == 479_470_107)
    }

    /// Computed once by hand with kafka-python 3.0.12:
    ///   from kafka.partitioner.default import murmur2
    ///   murmur2(k.encode())            # unsigned 32-bit result
    ///   (murmur2(k.encode()) & 0x7fffffff) % 4
    /// which is what its DefaultPartitioner does for 4 partitions. Keys are Rebu user ids
    /// (`u` + 6 digits, as rebu-gen writes them) plus the Kafka vectors.
    static let kafkaPythonPartitions: [(String, UInt32, Int32)] = [
        ("u000001", 3_025_900_487, 3),
        ("u000002", 2_739_673_680, 0),
        ("u000042", 895_816_841, 1),
        ("u001000", 1_755_113_907, 3),
        ("u123456", 2_126_772_626, 2),
        ("user_1", 2_109_805_095, 3),
        ("user_42", 475_133_338, 2),
        ("user_1000", 4_248_530_582, 2),
        ("rebu-user-000123", 1_708_643_886, 2),
        ("21", 3_321_034_988, 0),
        ("foobar", 3_504_634_814, 2),
        ("", 275_646_681, 1),
    ]

    @Test(arguments: kafkaPythonPartitions)
    func matchesKafkaPythonPartitioner(_ key: String, _ hash: UInt32, _ partition: Int32) {
        let bytes = Array(key.utf8)
        #expect(UInt32(bitPattern: Partitioner.murmur2(bytes)) == hash)
        let p = bytes.withUnsafeBytes { Partitioner.partition(forKey: $0, partitions: 4) }
        #expect(p == partition)
    }

    @Test func keylessRecordsGoRoundRobin() {
        var partitioner = Partitioner(partitions: 3)
        let got = (0..<7).map { _ in partitioner.partition(for: nil) }
        #expect(got == [0, 1, 2, 0, 1, 2, 0])
    }

    @Test func keyedRecordsIgnoreRoundRobinState() {
        var partitioner = Partitioner(partitions: 4)
        _ = partitioner.partition(for: nil)
        let key = Array("u000002".utf8)
        let p = key.withUnsafeBytes { partitioner.partition(for: $0) }
        #expect(p == 0)
        #expect(partitioner.partition(for: nil) == 1)
    }
}
