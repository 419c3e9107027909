import ArgumentParser
import KappaCore
import KappaGroups
import KappaJSON
import KappaLog

struct GroupsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups", abstract: "List, describe and reset consumer groups.",
        subcommands: [List.self, Describe.self, Reset.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List groups, one JSON object per line.")
        @OptionGroup var data: DataOptions

        func run() throws {
            try runReportingErrors {
                let dir = DataDirectory(root: data.path)
                let out = StdoutWriter()
                for g in try GroupStore.list(dir) {
                    let store = try GroupStore(directory: dir, group: g)
                    out.line("{\"group\":\(JSONEscape.quoted(g)),\"members\":\(try store.liveMembers().count),\"topics\":[\(try store.topics().map(JSONEscape.quoted).joined(separator: ","))]}")
                }
                out.flush()
            }
        }
    }

    struct Describe: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "describe", abstract: "Per partition: committed offset, end offset, lag, owner.")
        @OptionGroup var data: DataOptions
        @Argument var group: String

        func run() throws {
            try runReportingErrors {
                let dir = DataDirectory(root: data.path)
                let store = try GroupStore(directory: dir, group: group)
                guard store.exists else { throw KappaError(.notFound, "group '\(group)' does not exist") }
                let out = StdoutWriter()
                for topic in try store.topics() where dir.topicExists(topic) {
                    for p in 0..<(try dir.topicConfig(topic).partitions) {
                        let tp = TopicPartition(topic, p)
                        let status = try PartitionStatus.read(dir, tp)
                        let committed = try store.committed(tp)
                        let lag = status.endOffset - (committed ?? status.startOffset)
                        let owner = try store.owner(tp)
                        out.line("{\"group\":\(JSONEscape.quoted(group)),\"topic\":\(JSONEscape.quoted(topic)),\"partition\":\(p),\"committed\":\(committed.map { "\($0)" } ?? "null"),\"end\":\(status.endOffset),\"lag\":\(lag),\"owner\":\(owner.map(JSONEscape.quoted) ?? "null")}")
                    }
                }
                out.flush()
            }
        }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reset", abstract: "Move a group's committed offsets for a topic (the group must have no live members).")
        @OptionGroup var data: DataOptions
        @Argument var group: String
        @Option var topic: String
        @Flag(name: .customLong("to-earliest")) var toEarliest = false
        @Flag(name: .customLong("to-latest")) var toLatest = false
        @Option(name: .customLong("to-offset")) var toOffset: Int64?

        func validate() throws {
            let chosen = (toEarliest ? 1 : 0) + (toLatest ? 1 : 0) + (toOffset != nil ? 1 : 0)
            guard chosen == 1 else { throw ValidationError("choose exactly one of --to-earliest, --to-latest, --to-offset N") }
            if let toOffset, toOffset < 0 { throw ValidationError("--to-offset must be at least 0") }
        }

        func run() throws {
            try runReportingErrors {
                let dir = DataDirectory(root: data.path)
                let store = try GroupStore(directory: dir, group: group)
                let config = try dir.topicConfig(topic)
                let live = try store.liveMembers()
                guard live.isEmpty else {
                    throw KappaError(.conflict, "group '\(group)' has \(live.count) live member\(live.count == 1 ? "" : "s") (\(live.map(\.id).joined(separator: ", "))); stop them before resetting")
                }
                let out = StdoutWriter()
                for p in 0..<config.partitions {
                    let tp = TopicPartition(topic, p)
                    let status = try PartitionStatus.read(dir, tp)
                    var target: Offset
                    if toEarliest { target = status.startOffset } else if toLatest { target = status.endOffset } else { target = Offset(toOffset!) }
                    // Clamp into the stored range, as Kafka's tool does.
                    target = Swift.max(status.startOffset, Swift.min(target, status.endOffset))
                    try store.writeCommitted(tp, target)
                    out.line("{\"group\":\(JSONEscape.quoted(group)),\"topic\":\(JSONEscape.quoted(topic)),\"partition\":\(p),\"committed\":\(target)}")
                }
                out.flush()
            }
        }
    }
}
