import KappaJSON

/// The Rebu dashboard: one self-contained HTML page (no script, no network, no CDN) with
/// an SVG chart drawn here — actual counts per day (a line with dots), the forecast (a
/// dashed line) and its interval (a band) — and a table with one row per day:
/// `<tr data-day="YYYY-MM-DD" data-kind="actual|forecast" data-count="N">`.
struct Dashboard {
    let job: String
    let version: Int
    let streamTime: String?
    let report: DailyReport

    // Chart geometry in SVG user units.
    static let width = 960.0, height = 360.0
    static let left = 60.0, right = 20.0, top = 20.0, bottom = 50.0

    var html: String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>Rebu: \(escape(job)) per day</title>
        <style>
        body{font-family:sans-serif;margin:24px;color:#222}
        h1{font-size:20px;margin:0 0 4px} p.meta{color:#666;margin:0 0 16px;font-size:13px}
        table{border-collapse:collapse;font-size:13px;margin-top:16px} td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee}
        tr[data-kind=forecast]{color:#b35c00} tr[data-final=false]{font-style:italic}
        .legend span{display:inline-block;margin-right:16px;font-size:13px}
        </style></head><body>
        <h1>Rides per day: \(escape(job)) (v\(version))</h1>
        <p class="meta">As of stream time \(streamTimeText) · forecast: \(report.method.rawValue)\(parametersText)\(holdoutText)</p>
        <div class="legend"><span style="color:#1f5fa8">● actual</span><span style="color:#b35c00">- - forecast</span><span style="color:#b35c00;opacity:.6">■ 95% interval</span></div>
        \(chart)
        \(table)
        </body></html>
        """
    }

    /// "2016-07-10 07:07 UTC (1468134433.37…)"
    private var streamTimeText: String {
        guard let streamTime, let seconds = Int64(streamTime.split(separator: ".").first ?? "") else { return "none yet" }
        let day = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let inDay = seconds - day * 86_400
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(CivilDay.name(day)) \(two(inDay / 3600)):\(two(inDay % 3600 / 60)) UTC (\(streamTime))"
    }

    private var parametersText: String {
        guard let p = report.parameters else { return "" }
        return " (α \(p.alpha), β \(p.beta), γ \(p.gamma), weekly season)"
    }

    private var holdoutText: String {
        guard let h = report.holdout else { return "" }
        return " · held-out MAE \(fmt(h.mae)) vs seasonal naive \(fmt(h.seasonalNaiveMAE)) over \(h.days) days"
    }

    private func fmt(_ v: Double) -> String { "\((v * 10).rounded() / 10)" }

    private var table: String {
        var rows = ["<table><thead><tr><th>day</th><th>kind</th><th>count</th><th>low</th><th>high</th></tr></thead><tbody>"]
        for a in report.actual {
            let day = CivilDay.name(a.day)
            rows.append("<tr data-day=\"\(day)\" data-kind=\"actual\" data-count=\"\(a.count)\" data-final=\"\(a.final)\"><td>\(day)</td><td>actual\(a.final ? "" : " (open)")</td><td>\(a.count)</td><td></td><td></td></tr>")
        }
        for f in report.forecast {
            let day = CivilDay.name(f.day)
            rows.append("<tr data-day=\"\(day)\" data-kind=\"forecast\" data-count=\"\(f.count)\"><td>\(day)</td><td>forecast</td><td>\(f.count)</td><td>\(f.low)</td><td>\(f.high)</td></tr>")
        }
        rows.append("</tbody></table>")
        return rows.joined(separator: "\n")
    }

    private var chart: String {
        let points = report.actual.count + report.forecast.count
        guard points > 0 else { return "<p>No data yet.</p>" }
        let maxValue = max(1, (report.actual.map(\.count) + report.forecast.map(\.high)).max() ?? 1)
        let yMax = niceCeiling(Double(maxValue))
        let plotW = Self.width - Self.left - Self.right, plotH = Self.height - Self.top - Self.bottom
        func x(_ i: Int) -> Double { Self.left + (points == 1 ? plotW / 2 : plotW * Double(i) / Double(points - 1)) }
        func y(_ v: Double) -> Double { Self.top + plotH * (1 - v / yMax) }
        func p(_ v: Double) -> String { String(format2: v) }
        var svg = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(Self.width))\" height=\"\(Int(Self.height))\" viewBox=\"0 0 \(Int(Self.width)) \(Int(Self.height))\" role=\"img\" aria-label=\"rides per day and forecast\">"]
        svg.append("<rect x=\"0\" y=\"0\" width=\"\(Int(Self.width))\" height=\"\(Int(Self.height))\" fill=\"#fff\"/>")
        for k in 0...4 {
            let v = yMax * Double(k) / 4
            svg.append("<line x1=\"\(p(Self.left))\" y1=\"\(p(y(v)))\" x2=\"\(p(Self.width - Self.right))\" y2=\"\(p(y(v)))\" stroke=\"#e5e5e5\"/>")
            svg.append("<text x=\"\(p(Self.left - 6))\" y=\"\(p(y(v) + 4))\" font-size=\"11\" text-anchor=\"end\" fill=\"#666\">\(Int(v))</text>")
        }
        let days = report.actual.map(\.day) + report.forecast.map(\.day)
        for (i, d) in days.enumerated() where i % 7 == 0 || i == days.count - 1 {
            svg.append("<text x=\"\(p(x(i)))\" y=\"\(p(Self.height - Self.bottom + 16))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#666\">\(CivilDay.name(d).dropFirst(5))</text>")
        }
        let n = report.actual.count
        if !report.forecast.isEmpty {
            let upper = report.forecast.enumerated().map { "\(p(x(n + $0.offset))),\(p(y(Double($0.element.high))))" }
            let lower = report.forecast.enumerated().reversed().map { "\(p(x(n + $0.offset))),\(p(y(Double($0.element.low))))" }
            svg.append("<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"#f0a04b\" fill-opacity=\"0.25\" stroke=\"none\"/>")
            var line = report.forecast.enumerated().map { "\(p(x(n + $0.offset))),\(p(y(Double($0.element.count))))" }
            if let lastActual = report.actual.last { line.insert("\(p(x(n - 1))),\(p(y(Double(lastActual.count))))", at: 0) }
            svg.append("<polyline points=\"\(line.joined(separator: " "))\" fill=\"none\" stroke=\"#b35c00\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>")
        }
        if !report.actual.isEmpty {
            let line = report.actual.enumerated().map { "\(p(x($0.offset))),\(p(y(Double($0.element.count))))" }
            svg.append("<polyline points=\"\(line.joined(separator: " "))\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\"/>")
            for (i, a) in report.actual.enumerated() {
                svg.append("<circle cx=\"\(p(x(i)))\" cy=\"\(p(y(Double(a.count))))\" r=\"3\" fill=\"\(a.final ? "#1f5fa8" : "#fff")\" stroke=\"#1f5fa8\"/>")
            }
        }
        svg.append("<line x1=\"\(p(Self.left))\" y1=\"\(p(Self.height - Self.bottom))\" x2=\"\(p(Self.width - Self.right))\" y2=\"\(p(Self.height - Self.bottom))\" stroke=\"#999\"/>")
        svg.append("</svg>")
        return svg.joined(separator: "\n")
    }

    /// 1, 2 or 5 times a power of ten, at or above `v`.
    private func niceCeiling(_ v: Double) -> Double {
        var base = 1.0
        while base * 10 <= v { base *= 10 }
        for m in [1.0, 2.0, 5.0, 10.0] where base * m >= v { return base * m }
        return base * 10
    }

    private func escape(_ s: String) -> String {
        s.replacingAll("&", "&amp;").replacingAll("<", "&lt;").replacingAll(">", "&gt;").replacingAll("\"", "&quot;")
    }
}

extension String {
    /// Two decimals, without Foundation's formatter.
    init(format2 v: Double) {
        let r = (v * 100).rounded() / 100
        self = "\(r)"
    }

    func replacingAll(_ a: String, _ b: String) -> String {
        split(separator: Character(a), omittingEmptySubsequences: false).joined(separator: b)
    }
}
