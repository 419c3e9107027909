import KappaCore
import KappaFormat
import KappaLog

/// Reads a topic's records for a front end (`kappa consume`, later a server): either the
/// chosen partitions from a start position, or, as a member of a consumer group, the
/// partitions the group assigns to this member, from the group's committed offsets. It
/// only reads the log (a `PartitionReader` per partition; never a writer).
///
/// Group protocol (see `GroupStore`, `GroupMember`): `maintain` rebalances every
/// `rebalanceNanos` (taking and releasing partitions by their ownership locks) and
/// commits every `commitNanos`; a partition given away is committed first; `commit`
/// commits every owned partition whose position moved. Positions are "the next offset
/// to deliver"; they move as records are delivered, so a front end must make delivered
/// records durable (flush its output) before it commits: every method that commits
/// calls the `flush` it is given first. Delivery is at-least-once across members.
///
/// Clock: `clock.monotonicNanos()` times rebalances and commits (tests drive it).
/// Not thread-safe: one thread polls.
public final class TopicConsumer {
    public enum Start: Equatable, Sendable {
        case beginning
        case end
        case offset(Offset)
    }

    struct Cursor {
        var reader: PartitionReader
        /// The next offset to deliver.
        var position: Offset
        var committed: Offset?
    }

    public let directory: DataDirectory
    public let topic: String
    public let config: TopicConfig
    let start: Start
    let clock: any WallClock
    private(set) var cursors: [Int32: Cursor] = [:]
    public let member: GroupMember?
    private let codec = LZ4Codec()
    private let scratch = ByteWriter(capacity: 1 << 20)
    private var lastRebalanceNanos: Int64?
    private var lastCommitNanos: Int64
    /// Messages for a person: readers' index warnings, offsets lost to retention.
    public private(set) var notices: [String] = []
    private var noticedWarnings: [Int32: Int] = [:]

    /// How often group members rebalance, and commit while reading.
    public static let rebalanceNanos: Int64 = 250_000_000
    public static let commitNanos: Int64 = 1_000_000_000

    /// Reads `partitions` (nil: all) from `start`.
    public init(directory: DataDirectory, topic: String, partitions: [Int32]?, start: Start, clock: any WallClock = SystemClock()) throws(KappaError) {
        self.directory = directory
        self.topic = topic
        config = try directory.topicConfig(topic)
        self.start = start
        self.clock = clock
        member = nil
        lastCommitNanos = clock.monotonicNanos()
        for p in partitions ?? Array(0..<config.partitions) {
            guard p >= 0, p < config.partitions else {
                throw KappaError(.invalidArgument, "topic \(topic) has partitions 0...\(config.partitions - 1), not \(p)")
            }
            try open(p)
        }
    }

    /// Joins `group` as `memberID`; partitions come with `maintain()`. `start` applies to
    /// partitions the group has no committed offset for (`.offset` is not allowed).
    public init(directory: DataDirectory, topic: String, group: String, memberID: String, start: Start,
                clock: any WallClock = SystemClock()) throws(KappaError) {
        precondition(start == .beginning || start == .end, "a group starts at its committed offsets, else at the beginning or the end")
        self.directory = directory
        self.topic = topic
        config = try directory.topicConfig(topic)
        self.start = start
        self.clock = clock
        member = try GroupMember(store: try GroupStore(directory: directory, group: group), id: memberID, topics: [topic])
        lastCommitNanos = clock.monotonicNanos()
    }

    /// The partition directories being read (to watch for appends).
    public var partitionDirectories: [String] { cursors.keys.sorted().map { cursors[$0]!.reader.directory } }

    /// The partitions being read now.
    public var partitions: [Int32] { cursors.keys.sorted() }

    /// Takes the notices gathered since the last call.
    public func takeNotices() -> [String] {
        defer { notices.removeAll() }
        return notices
    }

    // MARK: - Reading

    /// Delivers records of every partition in turn, each partition until it is caught up
    /// or `pause()` says to stop (the front end's output is full), at most `maxRecords`
    /// in all. Returns how many batches were read (0: caught up everywhere).
    /// `deliver` gets each record, its partition, and whether its batch came from a Kafka
    /// client (its value need not be JSON).
    public func poll(maxRecords: Int, pause: () -> Bool, _ deliver: (RecordView, TopicPartition, Bool) -> Void) throws(KappaError) -> Int {
        var batches = 0
        var remaining = maxRecords
        for p in cursors.keys.sorted() where remaining > 0 {
            var cursor = cursors[p]!
            defer { cursors[p] = cursor }
            let tp = TopicPartition(topic, p)
            while remaining > 0, !pause(), var records = try nextRecords(&cursor) {
                batches += 1
                while let record = try records.next() {
                    deliver(record, tp, records.fromKafkaClient)
                    cursor.position = record.offset + 1
                    remaining -= 1
                    if remaining == 0 { break }
                }
            }
            collectWarnings(p, cursor.reader)
        }
        return batches
    }

    /// The next batch's records at or after the cursor; when retention deleted what the
    /// cursor had not read yet, says so and goes on from the log start (Kafka's
    /// auto.offset.reset=earliest).
    private func nextRecords(_ cursor: inout Cursor) throws(KappaError) -> BatchRecords? {
        do {
            return try cursor.reader.nextRecords(from: cursor.position, codec: codec, scratch: scratch)
        } catch where error.code == .offsetOutOfRange {
            let start = try cursor.reader.startOffset()
            notices.append("\(error.description); continuing at \(start)")
            try cursor.reader.seek(to: start)
            cursor.position = start
            return try cursor.reader.nextRecords(from: start, codec: codec, scratch: scratch)
        }
    }

    private func collectWarnings(_ p: Int32, _ reader: PartitionReader) {
        let seen = noticedWarnings[p, default: 0]
        guard reader.warnings.count > seen else { return }
        notices += reader.warnings[seen...].map { "warning: " + $0 }
        noticedWarnings[p] = reader.warnings.count
    }

    // MARK: - Group upkeep

    /// Rebalances and commits when they are due (groups only). `flush` makes delivered
    /// records durable before any commit.
    public func maintain(flush: () -> Void) throws(KappaError) {
        guard member != nil else { return }
        let now = clock.monotonicNanos()
        if lastRebalanceNanos.map({ now - $0 >= Self.rebalanceNanos }) ?? true {
            try rebalance(flush: flush)
            lastRebalanceNanos = now
        }
        if now - lastCommitNanos >= Self.commitNanos {
            try commit(flush: flush)
        }
    }

    /// Commits each owned partition whose position moved (after `flush`).
    public func commit(flush: () -> Void) throws(KappaError) {
        flush()
        lastCommitNanos = clock.monotonicNanos()
        guard let member else { return }
        for (p, c) in cursors where c.position != c.committed {
            try member.commit(TopicPartition(topic, p), c.position)
            cursors[p]!.committed = c.position
        }
    }

    /// Leaves the group (without committing: call `commit` first).
    public func leave() { member?.leave() }

    private func rebalance(flush: () -> Void) throws(KappaError) {
        guard let member else { return }
        let change = try member.rebalance { (tp) throws(KappaError) in
            flush()
            if let c = cursors[tp.partition], c.position != c.committed { try member.commit(tp, c.position) }
            cursors[tp.partition] = nil
        }
        for tp in change.acquired { try open(tp.partition) }
    }

    /// Opens partition `p` at its starting offset: the group's committed offset, else
    /// the chosen start.
    private func open(_ p: Int32) throws(KappaError) {
        let tp = TopicPartition(topic, p)
        let reader = try PartitionReader(directory: directory, topicPartition: tp)
        let committed = try member?.store.committed(tp)
        let position: Offset
        if let committed {
            position = committed
        } else {
            switch start {
            case .offset(let o): position = o
            case .beginning: position = try reader.startOffset()
            case .end: position = try reader.visibleEnd()?.offset ?? .zero
            }
        }
        var cursor = Cursor(reader: reader, position: position, committed: committed)
        if case .belowStart(let logStart) = try reader.seek(to: position) {
            notices.append("\(tp.topic) partition \(p): offset \(position) was deleted by retention; starting at \(logStart)")
            cursor.position = logStart
        }
        cursors[p] = cursor
    }
}
