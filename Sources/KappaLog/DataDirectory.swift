import KappaCore
import KappaFormat

/// The root of all on-disk state. Layout:
///
/// ```
/// DATA/topics/NAME/topic.json                    TopicConfig
/// DATA/topics/NAME/P/lock                        writer lock (flock): one appender at a time
/// DATA/topics/NAME/P/<20-digit base>.log         record batches (RecordBatch v2)
/// DATA/topics/NAME/P/<20-digit base>.index       sparse offset index (rebuildable)
/// DATA/topics/NAME/P/<20-digit base>.timeindex   sparse time index (rebuildable)
/// DATA/groups/G/...                              consumer groups (KappaGroups)
/// ```
/// Every process on the machine may open the same directory; the per-partition lock
/// serialises appends, and readers see only whole batches (see `PartitionWriter`).
public struct DataDirectory: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public var topicsPath: String { root + "/topics" }
    public var groupsPath: String { root + "/groups" }
    public func topicPath(_ topic: String) -> String { topicsPath + "/" + topic }
    public func partitionPath(_ tp: TopicPartition) -> String { topicPath(tp.topic) + "/\(tp.partition)" }
    func configPath(_ topic: String) -> String { topicPath(topic) + "/topic.json" }

    /// Creates a topic with all its partition directories. Fails if it exists.
    /// The config is written last, atomically: a topic without topic.json is not a topic
    /// yet, so a crash mid-create leaves nothing half-made that others would use.
    public func createTopic(_ name: String, config: TopicConfig) throws(KappaError) {
        try validateName(name, what: "topic")
        try config.validate()
        guard !FS.exists(configPath(name)) else { throw KappaError(.alreadyExists, "topic '\(name)' already exists") }
        for p in 0..<config.partitions {
            try FS.makeDirectories(partitionPath(TopicPartition(name, p)))
        }
        try FS.writeAtomically(config.encoded(), to: configPath(name))
    }

    public func topicConfig(_ name: String) throws(KappaError) -> TopicConfig {
        try validateName(name, what: "topic")
        let path = configPath(name)
        guard FS.exists(path) else {
            throw KappaError(.notFound, "topic '\(name)' does not exist (create it with: kappa topics create \(name) --partitions N)")
        }
        return try TopicConfig.decode(try File(path: path, mode: .readOnly).readAll(), path: path)
    }

    public func topicExists(_ name: String) -> Bool { FS.exists(configPath(name)) }

    public func listTopics() throws(KappaError) -> [String] {
        guard FS.isDirectory(topicsPath) else { return [] }
        return try FS.list(topicsPath).filter { FS.exists(configPath($0)) }.sorted()
    }

    /// Deletes a topic and all its data (used for internal topics of dropped versions).
    public func deleteTopic(_ name: String) throws(KappaError) {
        try validateName(name, what: "topic")
        guard topicExists(name) else { throw KappaError(.notFound, "topic '\(name)' does not exist") }
        try FS.remove(configPath(name))
        try FS.removeTree(topicPath(name))
    }
}
