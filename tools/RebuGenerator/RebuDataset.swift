/// A fully generated, in-memory Rebu data set: the three streams `rides`, `tickets` and
/// `app_events`, each already in arrival order, ready to be rendered as JSON Lines.
///
/// Contract:
/// - Deterministic: `RebuDataset(config)` is a pure function of `config`; rendering it twice
///   (or in another process) gives byte-identical output.
/// - Exactly `config.appEvents` app events, `min(config.requestedRides, visits)` rides and
///   `config.requestedTickets` tickets.
/// - Bounded disorder: each stream is in *arrival* order, arrival = event time + a delay in
///   `[0, config.disorderBoundNanos]` (ties broken by generation order). Hence, reading a
///   file top to bottom, every event's `time_utc` is at least (the largest `time_utc` seen so
///   far) − `disorderBoundNanos`: a watermark lagging the maximum by the bound never
///   drops an event. Most delays are below two seconds; about one in five is drawn from the
///   whole bound.
/// - Sessions: a user's app events come in visits (events 0.3 s – 2 min apart); two visits of
///   the same user are at least 15 minutes apart, and a ride requested in a visit ends before
///   the user's next visit starts (unless `config.days` is too short to fit the hottest users,
///   in which case their visits are compressed and may overlap).
/// - Users are Zipf-skewed: the user of rank r gets weight 1 / (r + users/1000); with the
///   defaults about 1 % of the users produce a third of the events.
/// - Rides: `requested_utc` < `start_utc` < `time_utc` (the end) and equals the time of the
///   `button_pressed` app event with `"button_type":"request_ride"` that requested it (there
///   is exactly one such event per ride, same `user_id` and time). Completed rides last
///   5 – 40 min from pickup; cancelled rides end 20 s – 4 min after the driver's arrival
///   with a 0 or 5 fee and no rating; rides ended early last 3 – 20 min.
/// - Tickets: about 90 % follow one of the same user's rides by 2 minutes to a day (bad rides
///   are more likely to get one); the rest come from users before their first ride.
/// - Ids: `u` + user number (1-based, at least 6 digits), `d` + driver number (6 digits),
///   `r` + ride number in order of request time (8 digits), `t` + ticket number in order of
///   creation time (7 digits), `dev-` + 8 hex digits.
public struct RebuDataset: Sendable {
    /// The configuration this data set was generated from.
    public let config: RebuConfig
    /// Distinct users (`config.resolvedUsers`).
    public let users: Int
    /// Length of the simulated period in days (`config.days` or derived).
    public let days: Int
    /// Start of the simulated period in nanoseconds since the epoch.
    public let startNanos: Int64

    // App events, indexed by generation order.
    let eventTime: [Int64]
    let eventVisit: [Int32]
    let eventKind: [UInt8]
    let eventSub: [UInt8]
    // Visits.
    let visitUser: [Int32]
    let visitDevice: [UInt8]
    // Users.
    let userHomeCity: [UInt8]
    // Rides, indexed by ride id - 1 (request order).
    let rides: [Ride]
    // Tickets, indexed by ticket id - 1 (creation order).
    let tickets: [Ticket]
    // Arrival orders (indices into the arrays above).
    let appOrder: [Int32]
    let rideOrder: [Int32]
    let ticketOrder: [Int32]
    // Id widths.
    let userWidth: Int
    let rideWidth: Int
    let ticketWidth: Int

    struct Ride: Sendable {
        var user: Int32
        var driver: Int32
        var city: UInt8
        var outcome: UInt8
        var rating: Int8  // -1: null
        var fareCents: Int64
        var requested: Int64
        var start: Int64
        var end: Int64
    }

    struct Ticket: Sendable {
        var user: Int32
        var time: Int64
        var channel: UInt8
        var aboutRide: Bool
        var message: UInt8
    }

    static let second: Int64 = 1_000_000_000
    static let minute: Int64 = 60 * second
    static let day: Int64 = 86_400 * second

    /// Generates the data set described by `config`. Costs roughly 30 bytes of memory per app
    /// event. Preconditions: `appEvents >= 0`, `resolvedUsers >= 1`, `startSeconds >= 0`,
    /// `disorderBoundNanos >= 0`, `days` (if given) `>= 1`, ratios `>= 0`.
    public init(_ config: RebuConfig) {
        precondition(config.appEvents >= 0, "appEvents must be >= 0")
        precondition(config.resolvedUsers >= 1, "users must be >= 1")
        precondition(config.startSeconds >= 0, "startSeconds must be >= 0")
        precondition(config.disorderBoundNanos >= 0, "disorderBoundNanos must be >= 0")
        precondition((config.days ?? 1) >= 1, "days must be >= 1")
        precondition(config.ridesPerThousandAppEvents >= 0 && config.ticketsPerThousandAppEvents >= 0)
        let second = RebuDataset.second, minute = RebuDataset.minute, day = RebuDataset.day
        let seed = config.seed
        let nUsers = config.resolvedUsers
        let start = config.startSeconds * second
        self.config = config
        self.users = nUsers
        self.startNanos = start

        // A. Visits and their events, with times relative to the visit start.
        var rng = Xoshiro256(seed: seed, stream: 1)
        var visitFirst: [Int32] = []
        var visitLength: [Int32] = []
        var rel: [Int64] = []
        var kind: [UInt8] = []
        var eventVisit: [Int32] = []
        rel.reserveCapacity(config.appEvents)
        kind.reserveCapacity(config.appEvents)
        eventVisit.reserveCapacity(config.appEvents)
        var remaining = config.appEvents
        while remaining > 0 {
            let length = min(remaining, min(80, 2 + Int(rng.exponential(mean: 8))))
            let v = Int32(visitFirst.count)
            visitFirst.append(Int32(rel.count))
            visitLength.append(Int32(length))
            var t: Int64 = 0
            for i in 0..<length {
                if i > 0 {
                    t += rng.chance(850)
                        ? rng.int(300_000_000, 25 * second) : rng.int(25 * second, 120 * second)
                }
                rel.append(t)
                eventVisit.append(v)
                if i == 0 {
                    kind.append(rng.chance(450) ? AppEventKind.login : AppEventKind.screenView)
                } else if i == length - 1 && length >= 3 && rng.chance(300) {
                    kind.append(AppEventKind.logout)
                } else {
                    let k = rng.weighted(AppEventKind.middleWeights, total: 1000)
                    kind.append(AppEventKind.middleKinds[k])
                }
            }
            remaining -= length
        }
        let visits = visitFirst.count
        var sub = [UInt8](repeating: 0, count: rel.count)

        // B. Users: Zipf-skewed activity over a random permutation of user numbers.
        var urng = Xoshiro256(seed: seed, stream: 2)
        let q = max(1.0, Double(nUsers) / 1000.0)
        var cdf = [Double](repeating: 0, count: nUsers)
        var acc = 0.0
        for r in 0..<nUsers {
            acc += 1.0 / (Double(r + 1) + q)
            cdf[r] = acc
        }
        var byRank = [Int32](0..<Int32(nUsers))
        if nUsers > 1 {
            for i in stride(from: nUsers - 1, to: 0, by: -1) {
                byRank.swapAt(i, urng.below(i + 1))
            }
        }
        let cityTotal = Words.cityWeights.reduce(0, +)
        var homeCity = [UInt8](repeating: 0, count: nUsers)
        var deviceCount = [UInt8](repeating: 1, count: nUsers)
        for u in 0..<nUsers {
            homeCity[u] = UInt8(urng.weighted(Words.cityWeights, total: cityTotal))
            deviceCount[u] = 1 + (urng.chance(250) ? 1 : 0) + (urng.chance(50) ? 1 : 0)
        }
        var visitUser = [Int32](repeating: 0, count: visits)
        var visitDevice = [UInt8](repeating: 0, count: visits)
        for v in 0..<visits {
            let x = urng.unit() * acc
            var lo = 0, hi = nUsers - 1
            while lo < hi {
                let mid = (lo + hi) >> 1
                if cdf[mid] > x { hi = mid } else { lo = mid + 1 }
            }
            let u = Int(byRank[lo])
            visitUser[v] = Int32(u)
            let devices = Int(deviceCount[u])
            if devices > 1 && !urng.chance(800) {
                visitDevice[v] = UInt8(1 + urng.below(devices - 1))
            }
        }

        // C. Rides: a random subset of visits requests one.
        var rrng = Xoshiro256(seed: seed, stream: 3)
        let rideCount = min(config.requestedRides, visits)
        var visitOrder = [Int32](0..<Int32(visits))
        for i in 0..<rideCount {
            visitOrder.swapAt(i, i + rrng.below(visits - i))
        }
        var visitRide = [Int32](repeating: -1, count: visits)
        var rideRequestRel = [Int64](repeating: 0, count: rideCount)
        var rideWait = [Int64](repeating: 0, count: rideCount)
        var rideLength = [Int64](repeating: 0, count: rideCount)
        var ridesDraft = [Ride]()
        ridesDraft.reserveCapacity(rideCount)
        let driversPerCity = max(3, nUsers / (8 * Words.cities.count))
        for j in 0..<rideCount {
            let v = Int(visitOrder[j])
            visitRide[v] = Int32(j)
            let first = Int(visitFirst[v]), length = Int(visitLength[v])
            let p = length == 1 ? 0 : 1 + rrng.below(length - 1)
            kind[first + p] = AppEventKind.buttonPressed
            sub[first + p] = AppEventKind.subRequestRide
            rideRequestRel[j] = rel[first + p]
            let user = Int(visitUser[v])
            let outcomeRoll = rrng.below(1000)
            let outcome: UInt8 =
                outcomeRoll < 850 ? RideOutcome.completed
                : outcomeRoll < 950 ? RideOutcome.cancelled : RideOutcome.endedEarly
            let wait: Int64, duration: Int64
            switch outcome {
            case RideOutcome.completed:
                wait = rrng.int(2 * minute, 12 * minute)
                duration = 5 * minute + min(35 * minute, Int64(rrng.exponential(mean: Double(12 * minute))))
            case RideOutcome.cancelled:
                wait = rrng.int(1 * minute, 10 * minute)
                duration = rrng.int(20 * second, 4 * minute)
            default:
                wait = rrng.int(2 * minute, 12 * minute)
                duration = rrng.int(3 * minute, 20 * minute)
            }
            rideWait[j] = wait
            rideLength[j] = duration
            let city = rrng.chance(920) ? Int(homeCity[user]) : rrng.weighted(Words.cityWeights, total: cityTotal)
            let driver = city + Words.cities.count * rrng.below(driversPerCity)
            // Fare: base + per minute + per km, times city and surge, rounded to 25 cents.
            let fare: Int64
            var rating: Int8 = -1
            if outcome == RideOutcome.cancelled {
                fare = rrng.chance(700) ? 500 : 0
            } else {
                let minutes = Double(duration) / Double(minute)
                let km = minutes * (0.3 + 0.5 * rrng.unit())
                var cents = 250.0 + 30.0 * minutes + 110.0 * km
                cents *= Double(Words.cityFarePerMille[city]) / 1000.0
                if rrng.chance(100) { cents *= 1.2 + 0.8 * rrng.unit() }  // surge
                let quarters = max(Int64(2), Int64(cents / 25.0 + 0.5))
                fare = quarters * 25
                if outcome == RideOutcome.completed {
                    if rrng.chance(750) {
                        let r = rrng.below(100)
                        rating = r < 60 ? 5 : r < 85 ? 4 : r < 93 ? 3 : r < 97 ? 2 : 1
                    }
                } else if rrng.chance(600) {
                    let r = rrng.below(100)
                    rating = r < 45 ? 1 : r < 75 ? 2 : r < 92 ? 3 : 4
                }
            }
            ridesDraft.append(
                Ride(
                    user: Int32(user), driver: Int32(driver), city: UInt8(city), outcome: outcome,
                    rating: rating, fareCents: fare, requested: 0, start: 0, end: 0))
        }

        // D. Place each user's visits in the period, separated by at least 15 minutes.
        var prng = Xoshiro256(seed: seed, stream: 4)
        let minGap = 15 * minute
        var slot = [Int64](repeating: 0, count: visits)
        for v in 0..<visits {
            let last = Int(visitFirst[v]) + Int(visitLength[v]) - 1
            var busy = rel[last]
            let j = Int(visitRide[v])
            if j >= 0 { busy = max(busy, rideRequestRel[j] + rideWait[j] + rideLength[j]) }
            slot[v] = busy + minGap
        }
        var userStart = [Int](repeating: 0, count: nUsers + 1)
        for v in 0..<visits { userStart[Int(visitUser[v]) + 1] += 1 }
        for u in 0..<nUsers { userStart[u + 1] += userStart[u] }
        var byUser = [Int32](repeating: 0, count: visits)
        var fill = userStart
        for v in 0..<visits {
            let u = Int(visitUser[v])
            byUser[fill[u]] = Int32(v)
            fill[u] += 1
        }
        var slotSum = [Int64](repeating: 0, count: nUsers)
        var maxSlotSum: Int64 = 0
        for u in 0..<nUsers {
            var s: Int64 = 0
            for i in userStart[u]..<userStart[u + 1] { s += slot[Int(byUser[i])] }
            slotSum[u] = s
            maxSlotSum = max(maxSlotSum, s)
        }
        // Derived period: the hottest user is busy about half of the time.
        let days = config.days ?? max(1, Int((2 * maxSlotSum + day - 1) / day))
        self.days = days
        let span = Int64(days) * day
        var visitStart = [Int64](repeating: 0, count: visits)
        var offsets: [Int64] = []
        // Demand (weekly rhythm, trend): an offset drawn uniformly in [0, free] is moved by
        // the inverse of the demand's cumulative share over the days of the period. The map
        // is monotone, so sorted offsets stay sorted and visits keep their spacing.
        let demandCDF = config.demand.map { Self.demandCDF($0, startNanos: start, days: days) }
        func warp(_ offset: Int64, _ free: Int64) -> Int64 {
            guard let cdf = demandCDF, free > 0 else { return offset }
            return Self.invert(cdf, fraction: Double(offset) / Double(free), span: free)
        }
        for u in 0..<nUsers {
            let lo = userStart[u], hi = userStart[u + 1]
            if lo == hi { continue }
            let free = span - slotSum[u]
            var before: Int64 = 0
            if free >= 0 {
                offsets.removeAll(keepingCapacity: true)
                for _ in lo..<hi { offsets.append(warp(prng.int(0, free), free)) }
                offsets.sort()
                for i in lo..<hi {
                    let v = Int(byUser[i])
                    visitStart[v] = start + offsets[i - lo] + before
                    before += slot[v]
                }
            } else {
                let scale = Double(span) / Double(slotSum[u])
                for i in lo..<hi {
                    let v = Int(byUser[i])
                    visitStart[v] = start + Int64(Double(before) * scale)
                    before += slot[v]
                }
            }
        }

        // E. Absolute times.
        var eventTime = rel
        for e in 0..<eventTime.count { eventTime[e] += visitStart[Int(eventVisit[e])] }
        for j in 0..<rideCount {
            let v = Int(visitOrder[j])
            let requested = visitStart[v] + rideRequestRel[j]
            ridesDraft[j].requested = requested
            ridesDraft[j].start = requested + rideWait[j]
            ridesDraft[j].end = requested + rideWait[j] + rideLength[j]
        }

        // F. Ride numbers follow request time.
        var rideRank = [Int32](0..<Int32(rideCount))
        rideRank.sort { a, b in
            let ta = ridesDraft[Int(a)].requested, tb = ridesDraft[Int(b)].requested
            return ta != tb ? ta < tb : a < b
        }
        let rides = rideRank.map { ridesDraft[Int($0)] }
        var firstRide = [Int64](repeating: Int64.max, count: nUsers)
        for ride in rides where ride.requested < firstRide[Int(ride.user)] {
            firstRide[Int(ride.user)] = ride.requested
        }

        // G. Support tickets.
        var trng = Xoshiro256(seed: seed, stream: 5)
        let channelTotal = Words.channelWeights.reduce(0, +)
        var ticketsDraft = [Ticket]()
        ticketsDraft.reserveCapacity(config.requestedTickets)
        let delayBuckets: [(Int64, Int64)] = [
            (2 * minute, 10 * minute), (10 * minute, 60 * minute), (60 * minute, 360 * minute),
            (360 * minute, 1440 * minute),
        ]
        for _ in 0..<config.requestedTickets {
            var ticket: Ticket? = nil
            if rides.isEmpty || trng.chance(100) {
                // A user who has not ridden yet (or never will).
                for _ in 0..<32 {
                    let u = trng.below(nUsers)
                    let until = min(firstRide[u], start + span)
                    if until - start < 10 * minute { continue }
                    let t = trng.int(start, until - 1)
                    ticket = Ticket(
                        user: Int32(u), time: t, channel: 0, aboutRide: false,
                        message: UInt8(trng.below(Words.generalMessages.count)))
                    break
                }
            }
            if ticket == nil && !rides.isEmpty {
                // About a previous ride; bad rides are more likely to get a ticket.
                var ride = rides[trng.below(rides.count)]
                while ride.outcome == RideOutcome.completed && !trng.chance(200) {
                    ride = rides[trng.below(rides.count)]
                }
                let bucket = delayBuckets[trng.below(delayBuckets.count)]
                ticket = Ticket(
                    user: ride.user, time: ride.end + trng.int(bucket.0, bucket.1), channel: 0,
                    aboutRide: true, message: UInt8(trng.below(Words.rideMessages.count)))
            }
            guard var t = ticket else { continue }
            t.channel = UInt8(trng.weighted(Words.channelWeights, total: channelTotal))
            ticketsDraft.append(t)
        }
        var ticketRank = [Int32](0..<Int32(ticketsDraft.count))
        ticketRank.sort { a, b in
            let ta = ticketsDraft[Int(a)].time, tb = ticketsDraft[Int(b)].time
            return ta != tb ? ta < tb : a < b
        }
        let tickets = ticketRank.map { ticketsDraft[Int($0)] }

        // H. Arrival orders.
        let bound = config.disorderBoundNanos
        self.appOrder = RebuDataset.arrivalOrder(eventTime, bound: bound, seed: seed, stream: 6)
        self.rideOrder = RebuDataset.arrivalOrder(rides.map { $0.end }, bound: bound, seed: seed, stream: 7)
        self.ticketOrder = RebuDataset.arrivalOrder(tickets.map { $0.time }, bound: bound, seed: seed, stream: 8)

        self.eventTime = eventTime
        self.eventVisit = eventVisit
        self.eventKind = kind
        self.eventSub = sub
        self.visitUser = visitUser
        self.visitDevice = visitDevice
        self.userHomeCity = homeCity
        self.rides = rides
        self.tickets = tickets
        self.userWidth = max(6, RebuDataset.digits(nUsers))
        self.rideWidth = max(8, RebuDataset.digits(rides.count))
        self.ticketWidth = max(7, RebuDataset.digits(tickets.count))
    }

    /// Number of lines `topic` renders to.
    public func lineCount(_ topic: RebuTopic) -> Int {
        switch topic {
        case .rides: return rides.count
        case .tickets: return tickets.count
        case .appEvents: return eventTime.count
        }
    }

    /// Indices of `times` sorted by `time + delay`, delay in `[0, bound]` (mostly under 2 s),
    /// ties by index.
    static func arrivalOrder(_ times: [Int64], bound: Int64, seed: UInt64, stream: UInt64) -> [Int32] {
        struct Key {
            var arrival: Int64
            var index: Int32
        }
        var rng = Xoshiro256(seed: seed, stream: stream)
        let small = min(bound, 2 * second)
        var keys = [Key]()
        keys.reserveCapacity(times.count)
        for (i, t) in times.enumerated() {
            var delay: Int64 = 0
            if bound > 0 {
                delay = rng.chance(800) ? rng.int(0, small) : rng.int(0, bound)
            }
            keys.append(Key(arrival: t + delay, index: Int32(i)))
        }
        keys.sort { $0.arrival != $1.arrival ? $0.arrival < $1.arrival : $0.index < $1.index }
        return keys.map { $0.index }
    }

    static func digits(_ n: Int) -> Int {
        var d = 1, x = n
        while x >= 10 {
            x /= 10
            d += 1
        }
        return d
    }

    /// Cumulative demand at the end of each day of the period, normalised to 1.
    static func demandCDF(_ demand: RebuConfig.Demand, startNanos: Int64, days: Int) -> [Double] {
        let dayNanos: Int64 = 86_400_000_000_000
        var cumulative: [Double] = []
        var total = 0.0
        for d in 0..<days {
            let epochDay = (startNanos / dayNanos) + Int64(d)
            let weekday = Int((epochDay + 3) % 7)  // 1970-01-01 was a Thursday; 0 = Monday
            total += Double(demand.weekday[weekday]) * (1 + demand.trendPerWeek * Double(d) / 7)
            cumulative.append(total)
        }
        return cumulative.map { $0 / total }
    }

    /// The time in [0, span] by which `fraction` of the demand has happened.
    static func invert(_ cdf: [Double], fraction: Double, span: Int64) -> Int64 {
        var lo = 0, hi = cdf.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cdf[mid] < fraction { lo = mid + 1 } else { hi = mid }
        }
        let before = lo == 0 ? 0 : cdf[lo - 1]
        let within = cdf[lo] > before ? (fraction - before) / (cdf[lo] - before) : 0
        let dayLength = Double(span) / Double(cdf.count)
        return min(span, max(0, Int64((Double(lo) + within) * dayLength)))
    }
}
