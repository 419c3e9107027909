import Foundation
import KappaCore
import KappaLog

/// The versions of one job, in `DATA/jobs/JOB/job.json` (replaced atomically under
/// `DATA/jobs/JOB/lock`). Version N writes `OUTPUT.vN` and keeps its internal topics as
/// `JOB.vN.late`, `JOB.vN.dead-letter`, `JOB.vN.repartition`; its task checkpoints live
/// in `DATA/jobs/JOB/vN/tasks/P.ckpt`. `current` is what `process`, `query` and
/// `consume OUTPUT` use.
public struct JobRecord: Codable, Equatable, Sendable {
    public struct Version: Codable, Equatable, Sendable {
        public var version: Int
        public var definition: JobDefinition
        public var createdMillis: Int64
        /// Set once a replay (or live run) has caught up with the head of the log.
        public var caughtUpMillis: Int64?

        public init(version: Int, definition: JobDefinition, createdMillis: Int64, caughtUpMillis: Int64?) {
            self.version = version
            self.definition = definition
            self.createdMillis = createdMillis
            self.caughtUpMillis = caughtUpMillis
        }
    }

    public var name: String
    public var current: Int?
    public var versions: [Version]

    public init(name: String, current: Int?, versions: [Version]) {
        self.name = name
        self.current = current
        self.versions = versions
    }

    public func version(_ n: Int) -> Version? { versions.first { $0.version == n } }
    public var latest: Version? { versions.max { $0.version < $1.version } }
}

public struct JobRegistry: Sendable {
    public let directory: DataDirectory

    public init(directory: DataDirectory) { self.directory = directory }

    public var jobsPath: String { directory.root + "/jobs" }
    public func jobPath(_ job: String) -> String { jobsPath + "/" + job }
    public func versionPath(_ job: String, _ version: Int) -> String { jobPath(job) + "/v\(version)" }
    public func checkpointPath(_ job: String, _ version: Int, task: Int32) -> String { versionPath(job, version) + "/tasks/\(task).ckpt" }
    /// The task's `TaskStatus`, written beside its checkpoint.
    public func statusPath(_ job: String, _ version: Int, task: Int32) -> String { versionPath(job, version) + "/tasks/\(task).status.json" }

    public static func outputTopic(_ def: JobDefinition, _ version: Int) -> String { "\(def.output).v\(version)" }
    public static func lateTopic(_ def: JobDefinition, _ version: Int) -> String { "\(def.name).v\(version).late" }
    public static func deadLetterTopic(_ def: JobDefinition, _ version: Int) -> String { "\(def.name).v\(version).dead-letter" }
    public static func repartitionTopic(_ def: JobDefinition, _ version: Int) -> String { "\(def.name).v\(version).repartition" }

    public func names() throws(KappaError) -> [String] {
        let fs = directory.fileSystem
        guard fs.isDirectory(jobsPath) else { return [] }
        return try fs.list(jobsPath).filter { fs.exists(jobPath($0) + "/job.json") }.sorted()
    }

    public func load(_ job: String) throws(KappaError) -> JobRecord? {
        let path = jobPath(job) + "/job.json"
        guard let bytes = try directory.fileSystem.readFileIfExists(path) else { return nil }
        do {
            return try JSONDecoder().decode(JobRecord.self, from: Data(bytes))
        } catch {
            throw KappaError(.corruptData, "job record is not valid: \(error)", path: path)
        }
    }

    public func require(_ job: String) throws(KappaError) -> JobRecord {
        guard let r = try load(job) else { throw KappaError(.notFound, "job '\(job)' has no versions (start it with: kappa process JOB.yaml)") }
        return r
    }

    /// Reads, changes and writes the record under the job's lock.
    @discardableResult
    public func update<T>(_ job: String, _ body: (inout JobRecord?) throws(KappaError) -> T) throws(KappaError) -> T {
        try validateName(job, what: "job")
        try directory.fileSystem.makeDirectories(jobPath(job))
        let lock = try FileLock(path: jobPath(job) + "/lock", fileSystem: directory.fileSystem)
        return try lock.withExclusive { () throws(KappaError) -> T in
            var record = try load(job)
            let before = record
            let result = try body(&record)
            if let record, record != before {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                let data = (try? encoder.encode(record)) ?? Data()
                try directory.fileSystem.writeAtomically(Array(data) + [0x0A], to: jobPath(job) + "/job.json")
            }
            return result
        }
    }

    /// The job whose output is `topic`, and its current version's topic, if any.
    public func currentOutputTopic(for topic: String) throws(KappaError) -> String? {
        for name in try names() {
            guard let r = try load(name), let c = r.current, let v = r.version(c), v.definition.output == topic else { continue }
            return Self.outputTopic(v.definition, c)
        }
        return nil
    }
}
