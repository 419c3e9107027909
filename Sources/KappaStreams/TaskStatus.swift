import Foundation
import KappaCore

/// What one task's last checkpoint holds, for people and tools: written as JSON beside
/// the checkpoint (`DATA/jobs/JOB/vN/tasks/P.status.json`) each time it is replaced,
/// and again when a task restores a checkpoint its status does not describe (a kill
/// between the two files); read by `kappa jobs describe` and the daemons' status lines. One `Codable` value is
/// the only thing written and read; times are epoch seconds as decimal strings, as in
/// every output. Keys are snake_case.
public struct TaskStatus: Codable, Equatable, Sendable {
    public struct Source: Codable, Equatable, Sendable {
        /// `topic/partition` of the input partition.
        public var source: String
        public var streamTime: String?
        public var idle: Bool
    }

    public var task: Int32
    public var processed: Int64
    public var late: Int64
    public var deadLetters: Int64
    /// Next offset to read, per input topic (partition `task` of each).
    public var inputOffsets: [String: Int64]
    /// Next offset to read of partition `task` of the repartition topic, if the job has one.
    public var repartitionOffset: Int64?
    public var idleInputs: [String]
    /// The largest stream time among this task's own input partitions.
    public var streamTime: String?
    /// What results wait for: the smallest stream time of the sources below (windows
    /// and sessions), or of the rides' and the tickets' sources (matches).
    public var watermark: String?
    public var ridesWatermark: String?
    public var ticketsWatermark: String?
    /// Every source this task's results wait for, with its stream time as last heard.
    public var sources: [Source]
    public var openWindows: Int?
    public var openSessions: Int?
    public var pendingTickets: Int?
    public var ridesHeld: Int?
    /// Copies a restarted sender sent again, dropped by sequence.
    public var duplicatesDropped: Int64
    /// Records that reached a result already final (only after an idle source woke up).
    public var lateAtOwner: Int64
    /// Filled by `jobs describe`: records not yet read, per input topic (and repartition).
    public var lag: [String: Int64]?
    /// Filled by `jobs describe`: the group member running the task.
    public var owner: String?

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    public func json() -> [UInt8] {
        // Encoding plain strings, integers and dictionaries cannot fail.
        Array((try? Self.encoder.encode(self)) ?? Data("{}".utf8))
    }

    public static func decode(_ bytes: [UInt8], path: String) throws(KappaError) -> TaskStatus {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try d.decode(TaskStatus.self, from: Data(bytes))
        } catch {
            throw KappaError(.corruptData, "task status is not valid: \(error)", path: path)
        }
    }
}
