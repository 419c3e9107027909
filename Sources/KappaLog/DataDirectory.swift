@_exported import KappaIO
import KappaCore
import KappaFormat

/// The root of all on-disk state, and the file system it lives on. Layout:
///
/// ```
/// DATA/topics/NAME/topic.json                       TopicConfig
/// DATA/topics/NAME/P/lock                           writer lock (flock): one appender at a time
/// DATA/topics/NAME/P/end                            where the log ends, as published (PublishedEnd)
/// DATA/topics/NAME/P/recovery-point                 what is known durable (RecoveryPoint)
/// DATA/topics/NAME/P/<20-digit base>.log            record batches (RecordBatch v2)
/// DATA/topics/NAME/P/<20-digit base>.index          sparse offset index (a cache)
/// DATA/topics/NAME/P/<20-digit base>.timeindex      sparse time index (a cache)
/// DATA/topics/NAME/P/<20-digit base>.log.torn-<O>   bytes a writer cut from a torn tail (evidence)
/// DATA/groups/G/...                                 consumer groups (KappaGroups)
/// ```
/// Every process on the machine may open the same directory; the per-partition lock
/// serialises appends, and readers see only what a writer published (see
/// `PartitionWriter`). All file operations of the log and the groups go through
/// `fileSystem` (the real one unless a test injects `KappaTesting.SimulatedFileSystem`).
public struct DataDirectory: Sendable {
    public let root: String
    public let fileSystem: any FileSystem

    public init(root: String, fileSystem: any FileSystem = PosixFileSystem.shared) {
        self.root = root
        self.fileSystem = fileSystem
    }

    public var topicsPath: String { root + "/topics" }
    public var groupsPath: String { root + "/groups" }
    public func topicPath(_ topic: String) -> String { topicsPath + "/" + topic }
    public func partitionPath(_ tp: TopicPartition) -> String { topicPath(tp.topic) + "/\(tp.partition)" }
    func configPath(_ topic: String) -> String { topicPath(topic) + "/topic.json" }

    /// Creates a topic with all its partition directories. Fails if it exists.
    /// The config is written last, atomically: a topic without topic.json is not a topic
    /// yet, so a crash mid-create leaves nothing half-made that others would use. Every
    /// directory made is durable before the config names the topic.
    public func createTopic(_ name: String, config: TopicConfig) throws(KappaError) {
        try validateName(name, what: "topic")
        try config.validate()
        guard !fileSystem.exists(configPath(name)) else { throw KappaError(.alreadyExists, "topic '\(name)' already exists") }
        // The config's name makes the topic exist, so everything else is durable first:
        // each partition directory is fsynced with its recovery-point file in it, and
        // the topic directory, which names them, once for all of them (not once per
        // partition) before the config is written.
        try fileSystem.makeDirectories(topicPath(name))
        for p in 0..<config.partitions {
            let dir = partitionPath(TopicPartition(name, p))
            if !fileSystem.isDirectory(dir) { try fileSystem.makeDirectory(dir) }
            try RecoveryPointFile.create(fileSystem, partitionDirectory: dir)
        }
        try fileSystem.syncDirectory(topicPath(name))
        try fileSystem.writeAtomically(try config.encoded(), to: configPath(name))
    }

    public func topicConfig(_ name: String) throws(KappaError) -> TopicConfig {
        try validateName(name, what: "topic")
        let path = configPath(name)
        guard let bytes = try fileSystem.readFileIfExists(path) else {
            throw KappaError(.notFound, "topic '\(name)' does not exist (create it with: kappa topics create \(name) --partitions N)")
        }
        return try TopicConfig.decode(bytes, path: path)
    }

    public func topicExists(_ name: String) -> Bool { fileSystem.exists(configPath(name)) }

    public func listTopics() throws(KappaError) -> [String] {
        guard fileSystem.isDirectory(topicsPath) else { return [] }
        return try fileSystem.list(topicsPath).filter { fileSystem.exists(configPath($0)) }.sorted()
    }

    /// Deletes a topic and all its data (used for internal topics of dropped versions).
    public func deleteTopic(_ name: String) throws(KappaError) {
        try validateName(name, what: "topic")
        guard topicExists(name) else { throw KappaError(.notFound, "topic '\(name)' does not exist") }
        try fileSystem.remove(configPath(name))
        try fileSystem.removeTree(topicPath(name))
    }
}
