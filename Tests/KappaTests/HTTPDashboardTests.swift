import Foundation
import Testing
import KappaCore

/// The dashboard as a browser sees it: Debian's headless Chromium loads the page and
/// dumps the DOM; its table must hold the daily counts, and its chart must be drawn
/// without any network resource.
extension HTTPTests {
    @Suite struct Dashboard {
        @Test(.enabled(if: HTTPTools.chromium != nil, HTTPTools.missingChromium))
        func chromiumShowsTheDailyCountsAndTheForecast() throws {
            let ws = try CLIWorkspace()
            try HTTPFx.prepare(ws, jobs: [HTTPFx.ridesPerDay])
            let serve = try HTTPServe(ws)
            let url = "http://127.0.0.1:\(serve.port)/dashboard?job=rides-per-day"
            let chrome = try ws.external(HTTPTools.chromium!, ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(ws.tmp.path)/chromium",
                                                               "--dump-dom", url], timeoutSeconds: 120)
            try #require(chrome.status == 0, "chromium: \(chrome.stderrText.suffix(2000))")
            let dom = chrome.stdoutText
            let rows = try tableRows(dom)
            let actual = rows.filter { $0.kind == "actual" }, forecast = rows.filter { $0.kind == "forecast" }
            #expect(actual.count == 30 && forecast.count == 30, "\(actual.count) actual, \(forecast.count) forecast rows")

            // The table against /daily, and the final days against the rides themselves.
            let daily = try serve.json("/v1/jobs/rides-per-day/daily?days=30&forecast=30")
            let apiActual = try #require(daily["actual"] as? [[String: Any]]), apiForecast = try #require(daily["forecast"] as? [[String: Any]])
            #expect(actual.map(\.day) == apiActual.map { $0["day"] as! String })
            #expect(actual.map(\.count) == apiActual.map { int64($0["count"])! })
            #expect(forecast.map(\.count) == apiForecast.map { int64($0["count"])! })
            let raw = try HTTPFx.ridesPerDayFromRaw()
            var final = 0
            for (row, api) in zip(actual, apiActual) where api["final"] as? Bool == true {
                let day = try #require(raw.keys.first { HTTPFx.dayName($0) == row.day })
                #expect(row.count == raw[day], "\(row.day)")
                final += 1
            }
            #expect(final >= 28)
            // Forecast days follow the last actual day, one per day.
            let last = try #require(raw.keys.first { HTTPFx.dayName($0) == actual.last!.day })
            #expect(forecast.map(\.day) == (1...30).map { HTTPFx.dayName(last + Int64($0)) })
            // The chart: an inline SVG with the actual line, the forecast line and the band; nothing fetched.
            #expect(dom.contains("<svg") && dom.contains("<polyline") && dom.contains("<polygon"))
            #expect(!dom.contains("<script") && !dom.contains("src=\"http") && !dom.contains("href=\"http"))
            #expect(try serve.stop() == 0)
        }
    }
}

private struct TableRow {
    var day: String
    var kind: String
    var count: Int64
}

/// `<tr data-day="…" data-kind="…" data-count="…">` rows, in order.
private func tableRows(_ dom: String) throws -> [TableRow] {
    let regex = try NSRegularExpression(pattern: #"<tr data-day="([0-9-]+)" data-kind="(actual|forecast)" data-count="(-?[0-9]+)""#)
    let ns = dom as NSString
    return regex.matches(in: dom, range: NSRange(location: 0, length: ns.length)).map { m in
        TableRow(day: ns.substring(with: m.range(at: 1)), kind: ns.substring(with: m.range(at: 2)), count: Int64(ns.substring(with: m.range(at: 3)))!)
    }
}
