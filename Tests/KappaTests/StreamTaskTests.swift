import Testing
import KappaCore
import KappaLog
import KappaTesting
@testable import KappaStreams

/// A JobTask driven in-process with a manual clock: what makes it checkpoint.
@Suite struct StreamTaskTests {
    static func produce(_ dir: DataDirectory, _ topic: String, _ lines: [String]) throws {
        let w = try TopicWriter(directory: dir, topic: topic, fsync: .never)
        for line in lines {
            let bytes = Array(line.utf8)
            try bytes.withUnsafeBytes { try w.append(partition: 0, key: nil, value: $0, timestamp: TimestampNanos(0)) }
        }
        try w.close()
    }

    /// With `idle_timeout`, tickets whose rides stopped coming are released by the clock
    /// alone — a step that reads nothing. Those results must be published (checkpointed),
    /// not held until the next record arrives.
    @Test func resultsReleasedByAnIdleTimeoutArePublished() throws {
        try TemporaryDirectory.with { tmp in
            let dir = tmp.dataDirectory
            for t in ["tickets", "rides"] { try dir.createTopic(t, config: TopicConfig(partitions: 1, keyField: "user_id")) }
            try Self.produce(dir, "rides", [#"{"time_utc":"1000","user_id":"u1","ride_id":"r1"}"#])
            try Self.produce(dir, "tickets", [#"{"time_utc":"1100","user_id":"u1","ticket_id":"t1"}"#])
            let def = try JobFile.parse("""
                name: m
                inputs: [tickets, rides]
                idle_timeout: 30s
                match: { key: user_id, time: time_utc, tickets: tickets, rides: rides, grace: 10m }
                output: matches
                """, path: "m.yaml")
            try JobVersions.prepare(def, version: 1, directory: dir)
            let clock = ManualClock()
            let task = try JobTask(directory: dir, definition: def, version: 1, task: 0, fsync: .never, clock: clock)
            #expect(try task.step() == 2)
            try task.checkpoint()
            #expect(try ResultReader.rows(directory: dir, definition: def, version: 1).isEmpty)  // waiting for rides past 1100 + 10m
            #expect(try task.step() == 0)
            #expect(!task.needsCheckpoint)
            clock.advance(byNanos: 31_000_000_000)
            #expect(try task.step() == 0)  // nothing read, but the rides are idle now: the ticket is final
            #expect(task.needsCheckpoint)
            try task.checkpoint()
            let rows = try ResultReader.rows(directory: dir, definition: def, version: 1)
            #expect(rows.map(\.key) == ["t1"] && rows.map(\.rideId) == ["r1"])
        }
    }

    /// A task output that is never written (most late-events and dead-letter partitions)
    /// creates no log: starting, rolling back to 0, flushing and publishing leave its
    /// partition as the topic made it, and readers see it empty. Once written it has a log,
    /// and a task that starts again from an earlier checkpoint cuts its records back.
    @Test func anOutputNeverWrittenCreatesNoLogAndOneWrittenIsCutBackOnRestart() throws {
        try TemporaryDirectory.with { tmp in
            let dir = tmp.dataDirectory
            try dir.createTopic("out", config: TopicConfig(partitions: 1, keyField: "k", transactional: true))
            let tp = TopicPartition("out", 0)
            let path = dir.partitionPath(tp)
            let made = try dir.fileSystem.list(path).sorted()
            do {
                let out = try TaskOutput(directory: dir, topicPartition: tp, fsync: .never)
                try out.rollBack(to: .zero)
                #expect(try out.flush() == .zero)
                try out.sync()
                try out.publish()
                #expect(out.end == .zero)
            }
            #expect(try dir.fileSystem.list(path).sorted() == made)
            #expect(try PartitionStatus.read(dir, tp).endOffset == .zero)
            // A checkpoint that counts records in a partition without a log is an error.
            #expect(throws: KappaError.self) { try TaskOutput(directory: dir, topicPartition: tp, fsync: .never).rollBack(to: Offset(3)) }
            do {
                let out = try TaskOutput(directory: dir, topicPartition: tp, fsync: .never)
                for i in 0..<3 { out.append(key: Array("k\(i)".utf8), value: Array("{}".utf8), timestamp: TimestampNanos(0), headers: []) }
                #expect(try out.flush() == Offset(3))
                try out.publish()
            }
            #expect(try dir.fileSystem.list(path).contains { $0.hasSuffix(".log") })
            #expect(try PartitionStatus.read(dir, tp).endOffset == Offset(3))
            let restarted = try TaskOutput(directory: dir, topicPartition: tp, fsync: .never)
            #expect(restarted.end == Offset(3))  // opened at once: it holds a log
            try restarted.rollBack(to: .zero)  // the last checkpoint was before them
            #expect(restarted.end == .zero)
            #expect(try PartitionStatus.read(dir, tp).endOffset == .zero)
        }
    }
}

