import Foundation
import Testing
import KappaCore

/// Each read route of `kappa serve --http` against what the CLI prints from the same
/// files, and against the raw data the jobs computed from.
extension HTTPTests {
    @Suite struct Routes {
        @Test func topicsAndRecordsAnswerWhatTheCLIPrints() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("rides", partitions: 2)
            try ws.ok(["produce", "rides", try ws.writeFile("rides.jsonl", lines: Array(HTTPFx.rides.prefix(500)))])
            let serve = try HTTPServe(ws)

            let topics = try serve.json("/v1/topics")["topics"] as? [[String: Any]]
            let cliTopics = try ws.jsonLines(["topics", "list"])
            #expect(topics.map { sameJSON($0, cliTopics) } == true, "\(String(describing: topics)) vs \(cliTopics)")

            let described = try serve.json("/v1/topics/rides")["partitions"] as? [[String: Any]]
            let cliDescribed = try ws.jsonLines(["topics", "describe", "rides"])
            #expect(described.map { sameJSON($0, cliDescribed) } == true)
            #expect(described?.reduce(0) { $0 + (int64($1["records"]) ?? 0) } == 500)

            for (partition, offset, limit) in [(0, 0, 7), (1, 13, 50), (1, 0, 1000)] {
                let page = try serve.json("/v1/topics/rides/records?partition=\(partition)&offset=\(offset)&limit=\(limit)")
                let records = try #require(page["records"] as? [[String: Any]])
                let cli = try ws.jsonLines(["consume", "rides", "--partition", "\(partition)", "--offset", "\(offset)", "--max", "\(limit)", "--with-meta"])
                #expect(sameJSON(records, cli), "partition \(partition) offset \(offset) limit \(limit)")
                #expect(int64(page["next_offset"]) == Int64(offset + records.count))
                // The raw lines are the values, byte for byte as produced.
                for r in records.prefix(3) {
                    let v = try JSONSerialization.data(withJSONObject: try #require(r["value"]))
                    let raw = HTTPFx.rides.first { stringField("ride_id", in: $0) == (r["value"] as? [String: Any])?["ride_id"] as? String }
                    #expect(try JSONSerialization.jsonObject(with: v) as? NSDictionary == (try JSONSerialization.jsonObject(with: Data(try #require(raw)))) as? NSDictionary)
                }
            }
            try expectProblem(try serve.get("/v1/topics/nope"), 404)
            try expectProblem(try serve.get("/v1/topics/nope/records?partition=0"), 404)
            try expectProblem(try serve.get("/v1/topics/rides/records?partition=2"), 404)
            try expectProblem(try serve.get("/v1/topics/rides/records"), 400)
            #expect(try serve.stop() == 0)
        }

        @Test func storeRoutesAgreeWithQueryAndTheRawData() throws {
            let ws = try CLIWorkspace()
            try HTTPFx.prepare(ws)
            let serve = try HTTPServe(ws)

            // Jobs, as `jobs list` and `jobs describe`.
            let jobs = try #require(try serve.json("/v1/jobs")["jobs"] as? [[String: Any]])
            #expect(sameJSON(jobs, try ws.jsonLines(["jobs", "list"])))
            let versions = try #require(try serve.json("/v1/jobs/ticket-ride-match")["versions"] as? [[String: Any]])
            #expect(sameJSON(versions, try ws.jsonLines(["jobs", "describe", "ticket-ride-match"])))
            try expectProblem(try serve.get("/v1/jobs/nope"), 404)
            try expectProblem(try serve.get("/v1/jobs/nope/rows"), 404)

            // Every row, paged, as `kappa query` prints them; as_of names the input ends.
            var rows: [[String: Any]] = []
            var cursor: String? = nil
            var pages = 0
            repeat {
                let page = try serve.json("/v1/jobs/ticket-ride-match/rows?limit=37" + (cursor.map { "&cursor=\(urlEncode($0))" } ?? ""))
                rows += try #require(page["rows"] as? [[String: Any]])
                cursor = page["next_cursor"] as? String
                pages += 1
                let asOf = try #require(page["as_of"] as? [String: Any])
                #expect(int64(asOf["version"]) == 1)
                let tasks = try #require(asOf["tasks"] as? [[String: Any]])
                #expect(tasks.count == 2)
                for t in tasks {
                    let offsets = try #require(t["input_offsets"] as? [String: Any])
                    let task = try #require(int64(t["task"]))
                    for topic in ["rides", "tickets"] {
                        let end = try ws.endOffsets(topic)[Int(task)]
                        #expect(int64(offsets[topic]) == end, "as_of of task \(task), \(topic)")
                    }
                }
            } while cursor != nil
            let query = try ws.jsonLines(["query", "ticket-ride-match"])
            #expect(rows.count == HTTPFx.tickets.count && pages > 2)
            #expect(Set(rows.map { "\($0)" }) == Set(query.map { "\($0)" }) || sameJSON(rows.sorted(by: byTicket), query.sorted(by: byTicket)))

            // The rows of one key, paged, as `kappa query JOB KEY`.
            var cityRows: [[String: Any]] = []
            cursor = nil
            repeat {
                let page = try serve.json("/v1/jobs/rides-per-day/rows?key=Berlin&limit=9" + (cursor.map { "&cursor=\(urlEncode($0))" } ?? ""))
                cityRows += try #require(page["rows"] as? [[String: Any]])
                cursor = page["next_cursor"] as? String
            } while cursor != nil
            let cityQuery = try ws.jsonLines(["query", "rides-per-day", "Berlin"])
            #expect(cityRows.count == cityQuery.count && cityRows.count > 50)
            #expect(cityRows.allSatisfy { $0["key"] as? String == "Berlin" })
            let byStart = { (a: [String: Any], b: [String: Any]) in (a["window_start"] as! String) < (b["window_start"] as! String) }
            #expect(sameJSON(cityRows.sorted(by: byStart), cityQuery.sorted(by: byStart)))
            try expectProblem(try serve.get("/v1/jobs/rides-per-day/rows?key=Atlantis"), 404)

            // Ticket -> ride and ride -> tickets against the raw data.
            let expected = try HTTPFx.matchesFromRaw()
            var ticketsOfRide: [String: Set<String>] = [:]
            for (ticket, ride) in expected { if let ride { ticketsOfRide[ride, default: []].insert(ticket) } }
            for (ticket, ride) in expected.sorted(by: { $0.key < $1.key }).prefix(40) {
                let answer = try serve.json("/v1/tickets/\(urlEncode(ticket))")
                let row = try #require(answer["ticket"] as? [String: Any])
                #expect(row["ride_id"] as? String == ride, "ticket \(ticket)")
                #expect(row["final"] as? Bool != nil)
                #expect(answer["as_of"] is [String: Any])
            }
            for (ride, tickets) in ticketsOfRide.sorted(by: { $0.key < $1.key }).prefix(40) {
                let answer = try serve.json("/v1/rides/\(urlEncode(ride))/tickets")
                let got = try #require(answer["tickets"] as? [[String: Any]]).compactMap { $0["ticket_id"] as? String }
                #expect(Set(got) == tickets, "ride \(ride)")
                #expect(got.count == tickets.count)
            }
            try expectProblem(try serve.get("/v1/tickets/no-such-ticket"), 404)
            #expect(try #require(try serve.json("/v1/rides/no-such-ride/tickets")["tickets"] as? [Any]).isEmpty)
            try expectProblem(try serve.get("/v1/tickets/x?job=rides-per-day"), 400)

            // Daily counts against the rides themselves.
            let raw = try HTTPFx.ridesPerDayFromRaw()
            let daily = try serve.json("/v1/jobs/rides-per-day/daily?days=60&forecast=14")
            let actual = try #require(daily["actual"] as? [[String: Any]])
            #expect(actual.count == 60)
            var checked = 0
            for a in actual where a["final"] as? Bool == true {
                let day = try #require(raw.keys.first { HTTPFx.dayName($0) == a["day"] as? String })
                #expect(int64(a["count"]) == raw[day], "day \(a["day"]!)")
                checked += 1
            }
            #expect(checked >= 50)
            #expect((daily["forecast"] as? [Any])?.count == 14)
            #expect(daily["method"] as? String == "holt-winters-additive-weekly")
            try expectProblem(try serve.get("/v1/jobs/ticket-ride-match/daily"), 400)
            #expect(try serve.stop() == 0)
        }
    }
}

private func byTicket(_ a: [String: Any], _ b: [String: Any]) -> Bool {
    (a["ticket_id"] as? String ?? "") < (b["ticket_id"] as? String ?? "")
}
