import Foundation
import Testing
import KappaCore

/// `POST /v1/topics/{topic}/records`: the validation, errors and --on-error modes of
/// `kappa produce`, checked against what the topic then holds.
extension HTTPTests {
    @Suite struct Ingest {
        static let good = (0..<6).map { i in Array("{\"user_id\":\"u\(i)\",\"time_utc\":\"14577419\(10 + i).5\",\"n\":\(i)}".utf8) }

        @Test func goodLinesAreWrittenAsProduceWritesThem() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 3)
            try ws.createTopic("copy", partitions: 3)
            let serve = try HTTPServe(ws)
            let a = try serve.post("/v1/topics/rides/records", joinLines(Self.good))
            #expect(a.status == 200, "\(a)")
            #expect(int64(try a.json()["written"]) == 6)
            try ws.ok(["produce", "copy", try ws.writeFile("good.jsonl", lines: Self.good)])
            // Same partitions, same values, same keys and timestamps as `kappa produce`.
            let viaHTTP = try ws.consumeAll("rides")
            let viaCLI = try ws.consumeAll("copy")
            #expect(viaHTTP.mapValues { $0.map(\.value) } == viaCLI.mapValues { $0.map(\.value) })
            #expect(viaHTTP.values.reduce(0) { $0 + $1.count } == 6)
            try expectProblem(try serve.post("/v1/topics/nope/records", joinLines(Self.good)), 404)
            try expectProblem(try serve.post("/v1/topics/rides/records?on_error=maybe", joinLines(Self.good)), 400)
            #expect(try serve.stop() == 0)
        }

        @Test func aBadLineIsNamedAndNothingAfterItIsWritten() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 2)
            let serve = try HTTPServe(ws)
            let lines = Array(Self.good[0..<3]) + [Array("{\"user_id\":\"u9\"}".utf8)] + Array(Self.good[3...])
            let fail = try expectProblem(try serve.post("/v1/topics/rides/records", joinLines(lines)), 400)
            #expect(int64(fail["line"]) == 4)
            #expect(int64(fail["written"]) == 3)
            #expect((fail["detail"] as? String)?.contains("line 4") == true)
            #expect(try ws.endOffsets("rides").reduce(0, +) == 3)

            let skip = try serve.post("/v1/topics/rides/records?on_error=skip", joinLines(lines))
            #expect(skip.status == 200)
            let skipped = try skip.json()
            #expect(int64(skipped["written"]) == 6 && int64(skipped["bad"]) == 1)
            #expect(try ws.endOffsets("rides").reduce(0, +) == 9)

            let dead = try serve.post("/v1/topics/rides/records?on_error=dead-letter", joinLines(lines + [Array("not json".utf8)]))
            #expect(dead.status == 200, "\(dead)")
            #expect(try dead.json()["dead_letter_topic"] as? String == "rides.dead-letter")
            let letters = try ws.jsonLines(["consume", "rides.dead-letter", "--from-beginning", "--with-meta"])
            #expect(letters.count == 2)
            let headers = try #require(letters.first?["headers"] as? [[String]])
            #expect(headers.contains(["kappa.line", "4"]) && headers.contains(["kappa.source", "http"]))
            #expect(try ws.endOffsets("rides").reduce(0, +) == 15)
            #expect(try serve.stop() == 0)
        }

        /// A job's topics are written by the job alone: ingest into its output or late-events
        /// topic is refused (409) and writes nothing, as `kappa produce` refuses it.
        @Test func aJobsTopicsAreRefused() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 2)
            _ = try ws.ok(["produce", "rides", try ws.writeFile("rides.jsonl", lines: Self.good)])
            let job = try ws.writeJobFile("per-user.yaml", """
                name: per-user
                inputs: [rides]
                window: { key: user_id, time: time_utc, size: 1h, grace: 0s, aggregates: [count], emit: final }
                output: per-user
                """)
            _ = try ws.ok(["replay", job])
            let before = try ws.endOffsets("per-user.v1")
            let serve = try HTTPServe(ws)
            for topic in ["per-user.v1", "per-user.v1.late"] {
                let problem = try expectProblem(try serve.post("/v1/topics/\(topic)/records", joinLines(Self.good)), 409)
                #expect((problem["detail"] as? String)?.contains("belongs to job 'per-user'") == true, "\(problem)")
            }
            #expect(try ws.endOffsets("per-user.v1") == before)
            #expect(try ws.endOffsets("per-user.v1.late").reduce(0, +) == 0)
            #expect(try serve.stop() == 0)
        }
    }
}

