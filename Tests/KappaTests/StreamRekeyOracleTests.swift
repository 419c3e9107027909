import Foundation
import Testing
@testable import KappaCore
@testable import KappaLog
@testable import KappaStreams
import KappaTesting

/// SPEC §5: results never depend on how the inputs are keyed. Sessions of users over app
/// events keyed by user or by device (each user has up to three devices), and matches of
/// tickets and rides keyed by user or by their own ids, with equal and with different
/// partition counts, must all equal a plain batch computation — while the tasks run in
/// a random order with random budgets, checkpoint at random, and "crash" at random (every
/// task dropped without a checkpoint and restarted from disk, as after kill -9).
@Suite struct StreamRekeyOracleTests {
    static let gap = 30 * StreamFx.minute
    static let grace = 5 * StreamFx.minute

    // MARK: sessions

    struct AppEvent {
        var user: String
        var device: String
        var time: Int64
        var type: String
    }

    /// Users with one to three devices, visits of up to twelve events (gaps from 0 to
    /// exactly `gap`, so equal times and boundary joins occur), visits separated by more
    /// than `gap` (sometimes by one nanosecond more). Returned in arrival order: bounded
    /// disorder below grace, so no event is late in any partition however keyed.
    static func appEvents(users: Int, rng: inout SeededRandom) -> [AppEvent] {
        let types = ["login", "screen_view", "button_pressed", "search", "app_error", "logout"]
        var all: [AppEvent] = []
        for u in 0..<users {
            let user = "u\(u)"
            let devices = (0..<rng.int(1...3)).map { "d\(u)-\($0)" }
            var t = StreamFx.base + Int64(rng.int(0...(2 * 1440))) * StreamFx.minute + Int64(rng.int(0...999_999_999))
            for _ in 0..<rng.int(1...4) {
                for _ in 0..<rng.int(1...12) {
                    all.append(AppEvent(user: user, device: devices[rng.int(0...(devices.count - 1))], time: t, type: types[rng.int(0...(types.count - 1))]))
                    switch rng.int(0...9) {
                    case 0: break  // the same time
                    case 1: t += gap  // exactly the gap: still one session
                    default: t += Int64(rng.int(1...Int(gap / StreamFx.second))) * StreamFx.second - Int64(rng.int(0...999))
                    }
                }
                t += rng.chance(20) ? gap + 1 : gap + Int64(rng.int(1...180)) * StreamFx.minute
            }
        }
        let order = StreamFx.arrivalOrder(all.map(\.time), bound: grace, rng: &rng)
        return order.map { all[$0] }
    }

    static func json(_ e: AppEvent) -> [UInt8] {
        Array(#"{"time_utc":"\#(TimestampNanos(e.time).decimalSeconds)","user_id":"\#(e.user)","device_id":"\#(e.device)","event_type":"\#(e.type)"}"#.utf8)
    }

    /// Sessions computed plainly: each user's events sorted by time, split where two
    /// consecutive events are more than `gap` apart; as the output's JSON.
    static func sessionOracle(_ events: [AppEvent]) -> [String] {
        var byUser: [String: [AppEvent]] = [:]
        for e in events { byUser[e.user, default: []].append(e) }
        var out: [String] = []
        for (user, list) in byUser {
            let sorted = list.sorted { $0.time < $1.time }
            var start = 0
            for i in 1...sorted.count where i == sorted.count || sorted[i].time - sorted[i - 1].time > gap {
                let s = sorted[start..<i]
                var types: [String: Int] = [:]
                for e in s { types[e.type, default: 0] += 1 }
                let typesJSON = types.keys.sorted().map { "\"\($0)\":\(types[$0]!)" }.joined(separator: ",")
                out.append(#"{"key":"\#(user)","session_start":"\#(TimestampNanos(s.first!.time).decimalSeconds)","session_end":"\#(TimestampNanos(s.last!.time).decimalSeconds)","events":\#(s.count),"event_types":{\#(typesJSON)}}"#)
                start = i
            }
        }
        return out.sorted()
    }

    struct Layout: CustomTestStringConvertible, Sendable {
        var keyField: String
        var partitions: Int32
        var testDescription: String { "keyed by \(keyField), \(partitions) partitions" }
    }

    static let sessionLayouts = [
        Layout(keyField: "user_id", partitions: 4),  // co-partitioned: read directly
        Layout(keyField: "device_id", partitions: 4),  // re-keyed
        Layout(keyField: "device_id", partitions: 3),
        Layout(keyField: "user_id", partitions: 3),
    ]

    @Test(arguments: sessionLayouts, [UInt64(1), 2])
    func sessionsEqualTheBatchOracle(_ layout: Layout, _ seed: UInt64) throws {
        var rng = SeededRandom(seed: seed &* 7919 &+ UInt64(layout.partitions) &+ (layout.keyField == "user_id" ? 0 : 100))
        let events = Self.appEvents(users: 150, rng: &rng)
        let tmp = try TemporaryDirectory()
        let dir = tmp.dataDirectory
        try dir.createTopic("app_events", config: TopicConfig(partitions: layout.partitions, keyField: layout.keyField))
        try Self.produce(dir, "app_events", events.map { (layout.keyField == "user_id" ? $0.user : $0.device, Self.json($0), $0.time) })
        try Self.closeEverything(dir, "app_events") { #"{"time_utc":"\#(TimestampNanos(StreamFx.farFuture).decimalSeconds)","user_id":"\#($0)","device_id":"\#($0)","event_type":"end"}"# }
        let def = try JobFile.parse("""
            name: sessions
            inputs: [app_events]
            session: { key: user_id, time: time_utc, gap: 30m, grace: 5m }
            output: sessions
            """, path: "sessions.yaml")
        let harness = try TaskHarness(dir: dir, def: def)
        #expect(harness.plan.repartitioned == (layout.keyField != "user_id"), "\(layout.testDescription): plan \(harness.plan)")
        try harness.run(&rng, crashPercent: 8)
        let rows = try harness.rows().filter { !$0.hasPrefix(#"{"key":"~"#) }
        let oracle = Self.sessionOracle(events)
        let context = "\(layout.testDescription), seed \(seed), \(harness.crashes) crashes"
        #expect(rows.count == oracle.count, "\(context): \(rows.count) sessions, the oracle has \(oracle.count)")
        let missing = Set(oracle).subtracting(rows), extra = Set(rows).subtracting(oracle)
        #expect(missing.isEmpty && extra.isEmpty, "\(context): missing \(missing.sorted().prefix(2)), unexpected \(extra.sorted().prefix(2))")
        #expect(try harness.count(JobRegistry.lateTopic(def, 1)) == 0, "\(context): late events where disorder stayed below grace")
        #expect(try harness.count(JobRegistry.deadLetterTopic(def, 1)) == 0, "\(context): dead letters")
    }

    // MARK: matches

    struct Ride { var id: String; var user: String; var time: Int64 }
    struct Ticket { var id: String; var user: String; var time: Int64 }

    /// Rides at distinct times per user (a tie's winner would depend on the keying: the
    /// README's rule orders equal times by partition and offset), tickets before any
    /// ride, exactly at a ride, between rides, and of users with no rides. Each topic in
    /// its own arrival order with disorder below grace.
    static func matchData(users: Int, rng: inout SeededRandom) -> (rides: [Ride], tickets: [Ticket]) {
        var rides: [Ride] = []
        var tickets: [Ticket] = []
        for u in 0..<users {
            let user = "u\(u)"
            var t = StreamFx.base + Int64(rng.int(0...(2 * 1440))) * StreamFx.minute
            var mine: [Int64] = []
            if u % 10 != 0 {  // every tenth user never rides
                for _ in 0..<rng.int(1...6) {
                    t += Int64(rng.int(1...240)) * StreamFx.minute + Int64(rng.int(0...999_999))
                    mine.append(t)
                    rides.append(Ride(id: "r\(rides.count)", user: user, time: t))
                }
            }
            for _ in 0..<rng.int(0...4) {
                let time: Int64
                switch rng.int(0...3) {
                case 0 where !mine.isEmpty: time = mine[rng.int(0...(mine.count - 1))]  // exactly at a ride
                case 1: time = (mine.first ?? t) - Int64(rng.int(1...600)) * StreamFx.minute  // before every ride
                default: time = (mine.first ?? t) + Int64(rng.int(0...(24 * 60))) * StreamFx.minute + 17
                }
                tickets.append(Ticket(id: "t\(tickets.count)", user: user, time: time))
            }
        }
        let rideOrder = StreamFx.arrivalOrder(rides.map(\.time), bound: grace, rng: &rng)
        let ticketOrder = StreamFx.arrivalOrder(tickets.map(\.time), bound: grace, rng: &rng)
        return (rideOrder.map { rides[$0] }, ticketOrder.map { tickets[$0] })
    }

    static func matchOracle(rides: [Ride], tickets: [Ticket]) -> [String] {
        var byUser: [String: [Ride]] = [:]
        for r in rides { byUser[r.user, default: []].append(r) }
        return tickets.map { t in
            let best = (byUser[t.user] ?? []).filter { $0.time <= t.time }.max { $0.time < $1.time }
            let ride = best.map { #""\#($0.id)","ride_time":"\#(TimestampNanos($0.time).decimalSeconds)""# } ?? #"null,"ride_time":null"#
            return #"{"ticket_id":"\#(t.id)","user_id":"\#(t.user)","ticket_time":"\#(TimestampNanos(t.time).decimalSeconds)","ride_id":\#(ride)}"#
        }.sorted()
    }

    struct MatchLayout: CustomTestStringConvertible, Sendable {
        var rides: Layout
        var tickets: Layout
        var testDescription: String { "rides \(rides.testDescription); tickets \(tickets.testDescription)" }
    }

    static let matchLayouts = [
        MatchLayout(rides: Layout(keyField: "user_id", partitions: 4), tickets: Layout(keyField: "user_id", partitions: 4)),
        MatchLayout(rides: Layout(keyField: "ride_id", partitions: 4), tickets: Layout(keyField: "ticket_id", partitions: 4)),
        MatchLayout(rides: Layout(keyField: "user_id", partitions: 4), tickets: Layout(keyField: "ticket_id", partitions: 4)),
        MatchLayout(rides: Layout(keyField: "user_id", partitions: 4), tickets: Layout(keyField: "user_id", partitions: 3)),
        MatchLayout(rides: Layout(keyField: "ride_id", partitions: 3), tickets: Layout(keyField: "user_id", partitions: 5)),
    ]

    @Test(arguments: matchLayouts, [UInt64(1), 2])
    func matchesEqualTheBatchOracle(_ layout: MatchLayout, _ seed: UInt64) throws {
        var rng = SeededRandom(seed: seed &* 104_729 &+ UInt64(layout.rides.partitions * 10 + layout.tickets.partitions))
        let (rides, tickets) = Self.matchData(users: 200, rng: &rng)
        let tmp = try TemporaryDirectory()
        let dir = tmp.dataDirectory
        try dir.createTopic("rides", config: TopicConfig(partitions: layout.rides.partitions, keyField: layout.rides.keyField))
        try dir.createTopic("tickets", config: TopicConfig(partitions: layout.tickets.partitions, keyField: layout.tickets.keyField))
        func rideJSON(_ r: Ride) -> String { #"{"time_utc":"\#(TimestampNanos(r.time).decimalSeconds)","ride_id":"\#(r.id)","user_id":"\#(r.user)","city":"Lima"}"# }
        try Self.produce(dir, "rides", rides.map { (layout.rides.keyField == "user_id" ? $0.user : $0.id, Array(rideJSON($0).utf8), $0.time) })
        try Self.produce(dir, "tickets", tickets.map { t in
            (layout.tickets.keyField == "user_id" ? t.user : t.id,
             Array(#"{"time_utc":"\#(TimestampNanos(t.time).decimalSeconds)","ticket_id":"\#(t.id)","user_id":"\#(t.user)"}"#.utf8), t.time)
        })
        try Self.closeEverything(dir, "rides") { rideJSON(Ride(id: $0, user: $0, time: StreamFx.farFuture)) }
        let def = try JobFile.parse("""
            name: match
            inputs: [tickets, rides]
            match: { key: user_id, time: time_utc, tickets: tickets, rides: rides, grace: 5m }
            output: matches
            """, path: "match.yaml")
        let harness = try TaskHarness(dir: dir, def: def)
        let routes = harness.plan.inputs.map(\.route)
        let direct = { (l: Layout) in l.keyField == "user_id" && l.partitions == max(layout.rides.partitions, layout.tickets.partitions) }
        #expect(routes == [direct(layout.tickets) ? .direct : .rekeyed, direct(layout.rides) ? .direct : .rekeyed], "\(layout.testDescription): \(routes)")
        try harness.run(&rng, crashPercent: 8)
        let rows = try harness.rows()
        let oracle = Self.matchOracle(rides: rides, tickets: tickets)
        let context = "\(layout.testDescription), seed \(seed), \(harness.crashes) crashes"
        #expect(rows.count == oracle.count, "\(context): \(rows.count) matches, the oracle has \(oracle.count)")
        let missing = Set(oracle).subtracting(rows), extra = Set(rows).subtracting(oracle)
        #expect(missing.isEmpty && extra.isEmpty, "\(context): missing \(missing.sorted().prefix(2)), unexpected \(extra.sorted().prefix(2))")
        #expect(try harness.count(JobRegistry.lateTopic(def, 1)) == 0, "\(context): late events where disorder stayed below grace")
    }

    // MARK: plumbing

    /// Appends `(key, value, time)` records, routed by key as `kappa produce` does.
    static func produce(_ dir: DataDirectory, _ topic: String, _ records: [(String, [UInt8], Int64)], fsync: FsyncPolicy = .never) throws {
        let w = try TopicWriter(directory: dir, topic: topic, fsync: fsync)
        for (key, value, time) in records {
            var k = key
            try k.withUTF8 { kb in try value.withUnsafeBytes { v in try w.append(key: UnsafeRawBufferPointer(kb), value: v, timestamp: TimestampNanos(time)) } }
        }
        try w.close()
    }

    /// A far-future record in every partition of `topic`, keyed so that it belongs
    /// there (`~` keys, left out of the comparisons): every source's stream time passes
    /// everything, so every result becomes final.
    static func closeEverything(_ dir: DataDirectory, _ topic: String, fsync: FsyncPolicy = .never, _ json: (String) -> String) throws {
        let partitions = try dir.topicConfig(topic).partitions
        var records: [(String, [UInt8], Int64)] = []
        for p in 0..<partitions {
            let key = (0...).lazy.map { "~\($0)" }.first { k in
                var k = k
                return k.withUTF8 { Partitioner.partition(forKey: UnsafeRawBufferPointer($0), partitions: partitions) } == p
            }!
            records.append((key, Array(json(key).utf8), StreamFx.farFuture))
        }
        try produce(dir, topic, records, fsync: fsync)
    }
}

/// One job version's tasks run in this process as daemons run them, over a real data
/// directory: random order, random budgets, checkpoints at random, and crashes — every
/// task dropped without a checkpoint (unflushed output and unsent repartition records
/// lost, as after kill -9) and reopened from disk.
final class TaskHarness {
    let dir: DataDirectory
    let def: JobDefinition
    let plan: JobPlan
    let fsync: FsyncPolicy
    private(set) var tasks: [JobTask] = []
    private var shared: SharedTopicWriter?
    private(set) var crashes = 0

    init(dir: DataDirectory, def: JobDefinition, fsync: FsyncPolicy = .never) throws {
        self.dir = dir
        self.def = def
        self.fsync = fsync
        plan = try JobVersions.prepare(def, version: 1, directory: dir)
        try open()
    }

    private func open() throws {
        shared = plan.repartitioned ? try SharedTopicWriter(directory: dir, topic: JobRegistry.repartitionTopic(def, 1)) : nil
        tasks = try (0..<plan.tasks).map {
            try JobTask(directory: dir, definition: def, version: 1, task: $0, plan: plan, fsync: fsync, clock: ManualClock(), repartitionWriter: shared)
        }
    }

    /// Drops every task without a checkpoint (as when their process died), for a test
    /// that brings the machine back itself before `reopen`.
    func abandon() {
        tasks = []
        shared = nil
    }

    func reopen() throws { try open() }

    func crash() throws {
        tasks = []
        shared = nil
        crashes += 1
        try open()
    }

    /// Runs until every task has read everything twice in a row (the second pass sees
    /// what the first sent through the repartition topic), then checkpoints all.
    func run(_ rng: inout SeededRandom, crashPercent: Int) throws {
        var quiet = 0
        var rounds = 0
        while quiet < 2 {
            rounds += 1
            precondition(rounds < 100_000, "the tasks never settle")
            var read = 0
            var crashed = false
            for i in tasks.indices.shuffled(using: &rng) {
                read += try tasks[i].step(budget: rng.int(1...300))
                if rng.chance(25) { try tasks[i].checkpoint() }
                if crashPercent > 0 && rng.chance(crashPercent) {
                    try crash()
                    crashed = true
                    break
                }
            }
            quiet = read == 0 && !crashed ? quiet + 1 : 0
        }
        for t in tasks { try t.checkpoint() }
    }

    /// The final results, one JSON line each, sorted; each must be in the output topic
    /// once (a reader keeps the last record of a key, which would hide a duplicate).
    func rows() throws -> [String] {
        let rows = try ResultReader.rows(directory: dir, definition: def, version: 1)
        let records = try count(JobRegistry.outputTopic(def, 1))
        #expect(records == rows.count, "the output topic holds \(records) records for \(rows.count) results (\(crashes) crashes)")
        return rows.map { String(decoding: $0.json, as: UTF8.self) }.sorted()
    }

    /// Records committed in a topic.
    func count(_ topic: String) throws -> Int {
        var n = 0
        for p in 0..<(try dir.topicConfig(topic).partitions) {
            n += Int(try PartitionStatus.read(dir, TopicPartition(topic, p)).endOffset.rawValue)
        }
        return n
    }
}
