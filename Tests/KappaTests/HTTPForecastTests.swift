import Foundation
import Testing
import KappaForecast

/// The dashboard's forecast: the Holt-Winters recursions against statsmodels'
/// ExponentialSmoothing on fixed parameters and a known start, and the fitted method
/// against seasonal naive on held-out days of generated rides.
extension HTTPTests {
    @Suite struct Forecast {
        /// 8 weeks of a weekly rhythm, a trend and deterministic noise.
        static let series: [Double] = (0..<56).map { t in
            let weekday = [80.0, 85, 90, 100, 135, 150, 95][t % 7]
            let noise = Double((t * 7919) % 23) - 11
            return weekday * (1 + 0.03 * Double(t) / 7) + noise
        }

        @Test(.enabled(if: HTTPTools.hasStatsmodels, HTTPTools.missingStatsmodels))
        func recursionsMatchStatsmodelsOnFixedParameters() throws {
            let ws = try CLIWorkspace()
            let cases: [(HoltWinters.Parameters, HoltWinters.State)] = [
                (.init(alpha: 0.3, beta: 0.1, gamma: 0.2), .init(level: 100, trend: 0.5, seasonal: [-20, -15, -10, 0, 35, 50, -5])),
                (.init(alpha: 0.05, beta: 0.0, gamma: 0.4), .init(level: 90, trend: 1.5, seasonal: [-18, -12, -8, 2, 30, 45, -3])),
                (.init(alpha: 0.9, beta: 0.5, gamma: 0.0), HoltWinters.initialState(Self.series, period: 7)!),
            ]
            let script = """
            import json, sys
            from statsmodels.tsa.holtwinters import ExponentialSmoothing
            c = json.loads(sys.argv[1])
            m = ExponentialSmoothing(c["y"], trend="add", seasonal="add", seasonal_periods=7, initialization_method="known",
                                     initial_level=c["level"], initial_trend=c["trend"], initial_seasonal=c["seasonal"])
            f = m.fit(smoothing_level=c["alpha"], smoothing_trend=c["beta"], smoothing_seasonal=c["gamma"], optimized=False)
            print(json.dumps({"forecast": list(map(float, f.forecast(30))), "sse": float(f.sse), "level": float(f.level[-1]),
                              "trend": float(f.trend[-1]), "season": list(map(float, f.season[-7:]))}))
            """
            for (p, s) in cases {
                let input: [String: Any] = ["y": Self.series, "level": s.level, "trend": s.trend, "seasonal": s.seasonal,
                                            "alpha": p.alpha, "beta": p.beta, "gamma": p.gamma]
                let arg = String(decoding: try JSONSerialization.data(withJSONObject: input), as: UTF8.self)
                let reference = try #require(try ws.python(script, [arg]).first)
                let model = HoltWinters(series: Self.series, period: 7, parameters: p, initial: s)
                let expected = try #require(reference["forecast"] as? [Double])
                let level = try #require(reference["level"] as? Double), trend = try #require(reference["trend"] as? Double)
                let season = try #require(reference["season"] as? [Double])
                // The state after the last observation: level, trend and every seasonal term.
                for (a, b) in zip(model.final.seasonal, season) { #expect(abs(a - b) <= 1e-9 * max(1, abs(b)), "seasonal \(a) vs \(b)") }
                for (i, (a, b)) in zip(model.forecast(30), expected).enumerated() {
                    let h = i + 1
                    if h % 7 != 0 {
                        #expect(abs(a - b) <= 1e-9 * max(1, abs(b)), "h=\(h): \(a) vs statsmodels \(b) (\(p))")
                    } else {
                        // statsmodels up to 0.15 forecasts whole seasons ahead with the seasonal
                        // term of one season before the last observation (statsmodels issue
                        // #9538, fixed by PR #10230); Hyndman's equation, which Kappa follows,
                        // uses the last one. Checked against statsmodels' own components.
                        let hyndman = level + Double(h) * trend + season[6]
                        #expect(abs(a - hyndman) <= 1e-9 * max(1, abs(hyndman)), "h=\(h): \(a) vs \(hyndman)")
                    }
                }
                #expect(abs(model.sse - (reference["sse"] as? Double ?? .nan)) <= 1e-6 * max(1, model.sse), "SSE \(model.sse) vs \(reference["sse"]!)")
                #expect(abs(model.final.level - (reference["level"] as? Double ?? .nan)) <= 1e-9 * max(1, abs(model.final.level)))
                #expect(abs(model.final.trend - (reference["trend"] as? Double ?? .nan)) <= 1e-9)
            }
        }

        @Test func beatsSeasonalNaiveOnHeldOutDaysOfGeneratedRides() throws {
            let perDay = try HTTPFx.ridesPerDayFromRaw()
            let days = perDay.keys.sorted()
            // Whole days only: the first and last may be cut by the period's edges.
            let series = days.dropFirst().dropLast().map { Double(perDay[$0]!) }
            var errors = 0.0, naiveErrors = 0.0, wins = 0, cuts = 0
            for cut in stride(from: 28, through: series.count - 30, by: 2) {
                let history = Array(series[..<cut]), future = Array(series[cut..<(cut + 30)])
                let f = DailyForecast.make(history, horizon: 30)
                #expect(f.method == .holtWinters)
                let naive = SeasonalNaive.forecast(history, period: 7, horizon: 30)
                let e = zip(f.values, future).map { abs($0 - $1) }.reduce(0, +) / 30
                let n = zip(naive, future).map { abs($0 - $1) }.reduce(0, +) / 30
                errors += e
                naiveErrors += n
                if e < n { wins += 1 }
                cuts += 1
                #expect(zip(f.low, f.high).allSatisfy { $0 <= $1 } && zip(f.low, f.values).allSatisfy { $0 <= $1 })
            }
            #expect(cuts >= 5)
            #expect(errors < naiveErrors, "mean MAE \(errors / Double(cuts)) vs seasonal naive \(naiveErrors / Double(cuts))")
            #expect(wins * 2 > cuts, "better at \(wins) of \(cuts) cuts")
        }

        @Test func shortHistoryFallsBackToSeasonalNaive() {
            let twoWeeks = Array(Self.series.prefix(14))
            let f = DailyForecast.make(twoWeeks, horizon: 10)
            #expect(f.method == .seasonalNaive)
            #expect(f.values == (0..<10).map { twoWeeks[7 + $0 % 7] })
            #expect(DailyForecast.make([], horizon: 5).method == .none)
            #expect(DailyForecast.make([3, 4, 5], horizon: 4).values == [3, 4, 5, 3])
            // Deterministic: the same input, the same fit.
            #expect(DailyForecast.make(Self.series, horizon: 30) == DailyForecast.make(Self.series, horizon: 30))
        }
    }
}
