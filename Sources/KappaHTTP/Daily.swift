import KappaForecast
import KappaJSON

/// Days since 1970-01-01 (UTC) and their `YYYY-MM-DD` names (the proleptic Gregorian
/// calendar, Howard Hinnant's `civil_from_days` / `days_from_civil`).
enum CivilDay {
    static func name(_ day: Int64) -> String {
        let z = day + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(m))-\(two(d))"
    }

    /// Nil unless the text is a valid `YYYY-MM-DD`.
    static func parse(_ text: String) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int64(parts[0]), let m = Int64(parts[1]), let d = Int64(parts[2]), (1...12).contains(m), (1...31).contains(d) else { return nil }
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let day = era * 146_097 + doe - 719_468
        return name(day) == text ? day : nil  // refuses 2026-02-30
    }
}

/// A window job's counts per UTC day and the forecast after them: what `/daily` answers
/// and `/dashboard` draws. Pure: built from the counts the store holds.
struct DailyReport {
    struct Actual {
        var day: Int64
        var count: Int64
        /// Every window of the day is final.
        var final: Bool
    }

    struct Predicted {
        var day: Int64
        var count: Int64
        var low: Int64
        var high: Int64
    }

    /// Error over held-out days: forecast days that have final counts in the store.
    struct Holdout {
        var days: Int
        var mae: Double
        var seasonalNaiveMAE: Double
    }

    var actual: [Actual]
    var forecast: [Predicted]
    var method: DailyForecast.Method
    var parameters: HoltWinters.Parameters?
    var holdout: Holdout?
    var until: Int64?

    /// `counts` per day (final and open rows), `openDays` the days with open rows.
    /// The model is fitted on every complete day from the first one up to `until`.
    init(counts: [Int64: Int64], openDays: Set<Int64>, days: Int, horizon: Int, until: Int64?) {
        guard let first = counts.keys.min(), let lastWithData = counts.keys.max() else {
            self.init(actual: [], forecast: [], method: .none, parameters: nil, holdout: nil, until: until)
            return
        }
        let last = until ?? lastWithData
        let actual = (0..<Int64(days)).map { i -> Actual in
            let d = last - Int64(days) + 1 + i
            return Actual(day: d, count: counts[d] ?? 0, final: !openDays.contains(d) && d <= lastWithData)
        }
        // Fit on complete days only: an open day's count is still growing.
        var lastComplete = last
        while lastComplete >= first && (openDays.contains(lastComplete) || lastComplete > lastWithData) { lastComplete -= 1 }
        guard lastComplete >= first, horizon > 0 else {
            self.init(actual: actual, forecast: [], method: .none, parameters: nil, holdout: nil, until: until)
            return
        }
        let series = (first...lastComplete).map { Double(counts[$0] ?? 0) }
        let skip = Int(last - lastComplete)  // open days between the fit and the forecast
        let f = DailyForecast.make(series, horizon: skip + horizon)
        var predicted: [Predicted] = []
        for h in 0..<horizon {
            let i = skip + h
            predicted.append(Predicted(day: last + 1 + Int64(h), count: Int64(f.values[i].rounded()),
                                       low: Int64(f.low[i].rounded(.down)), high: Int64(f.high[i].rounded(.up))))
        }
        // Held out: forecast days whose counts are final in the store (`until` in the past).
        let naive = SeasonalNaive.forecast(series, period: 7, horizon: skip + horizon)
        var errors = 0.0, naiveErrors = 0.0, n = 0
        for h in 0..<horizon {
            let d = last + 1 + Int64(h)
            guard d <= lastWithData, !openDays.contains(d) else { continue }
            let y = Double(counts[d] ?? 0)
            errors += abs(y - f.values[skip + h])
            naiveErrors += abs(y - naive[skip + h])
            n += 1
        }
        let holdout = n > 0 ? Holdout(days: n, mae: errors / Double(n), seasonalNaiveMAE: naiveErrors / Double(n)) : nil
        self.init(actual: actual, forecast: predicted, method: f.method, parameters: f.parameters, holdout: holdout, until: until)
    }

    private init(actual: [Actual], forecast: [Predicted], method: DailyForecast.Method, parameters: HoltWinters.Parameters?, holdout: Holdout?, until: Int64?) {
        self.actual = actual
        self.forecast = forecast
        self.method = method
        self.parameters = parameters
        self.holdout = holdout
        self.until = until
    }

    /// The members of the `/daily` answer after `job`, `version` and `as_of`.
    var jsonMembers: String {
        let a = actual.map { "{\"day\":\"\(CivilDay.name($0.day))\",\"count\":\($0.count),\"final\":\($0.final)}" }.joined(separator: ",")
        let f = forecast.map { "{\"day\":\"\(CivilDay.name($0.day))\",\"count\":\($0.count),\"low\":\($0.low),\"high\":\($0.high)}" }.joined(separator: ",")
        var s = "\"method\":\"\(method.rawValue)\",\"actual\":[\(a)],\"forecast\":[\(f)]"
        if let p = parameters { s += ",\"parameters\":{\"alpha\":\(p.alpha),\"beta\":\(p.beta),\"gamma\":\(p.gamma),\"season_days\":7}" }
        if let h = holdout {
            s += ",\"holdout\":{\"days\":\(h.days),\"mae\":\(rounded(h.mae)),\"seasonal_naive_mae\":\(rounded(h.seasonalNaiveMAE))}"
        }
        return s
    }

    private func rounded(_ v: Double) -> String { "\((v * 1000).rounded() / 1000)" }
}
