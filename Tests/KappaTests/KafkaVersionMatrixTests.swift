import Testing
import KappaServer

extension CLITests {
    @Suite struct KafkaVersionMatrixTests {
        /// Every (API, version) in `ApiKey` is exercised by a real client's encoding and
        /// answered in exactly the layout Kafka defines; ApiVersions lists exactly them.
        @Test(.enabled(if: KafkaTools.hasKafkaPython, KafkaTools.missingPython))
        func everyAdvertisedVersionIsServed() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("matrix", partitions: 2)
            let server = try KafkaServe(ws)
            let lines = try ws.python(KafkaVersionMatrixScript.text, [server.bootstrap, "matrix"])
            var seen = Set<String>()
            for l in lines { seen.insert("\(l["api"] as! String) v\(int64(l["version"])!)") }
            for key in ApiKey.allCases {
                for v in key.versions { #expect(seen.contains("\(key) v\(v)"), "\(key) v\(v) was not exercised") }
            }
            let advertised = try #require(lines.first { $0["api"] as? String == "ApiVersions" }?["keys"] as? [[Int]])
            #expect(advertised == ApiKey.allCases.map { [Int($0.rawValue), Int($0.versions.lowerBound), Int($0.versions.upperBound)] })
            #expect(seen.contains("ApiVersionsUnsupported v3"), "ApiVersions v3 must get error 35 in the v0 layout")
            #expect(seen.contains("Idempotence v8") && seen.contains("ProduceAcks0 v8"))
            #expect(server.isRunning)
            #expect(try server.stop() == 0)
        }
    }
}
