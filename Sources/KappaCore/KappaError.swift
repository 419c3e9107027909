/// An operating error with its evidence: what went wrong (`code`), where (topic,
/// partition, offset, file, line), and a message a person can act on.
/// Programmer errors are `precondition`s, never a `KappaError`.
public struct KappaError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        case invalidArgument = "invalid argument"
        case notFound = "not found"
        case alreadyExists = "already exists"
        case corruptData = "corrupt data"
        case badInput = "bad input"
        case io = "I/O error"
        case limitExceeded = "limit exceeded"
        case conflict = "conflict"
        /// The records at this offset were deleted (retention) before they were read:
        /// the log is fine, the reader is late (Kafka's OFFSET_OUT_OF_RANGE).
        case offsetOutOfRange = "offset out of range"
    }

    public var code: Code
    public var message: String
    public var topicPartition: TopicPartition?
    public var offset: Offset?
    public var path: String?
    /// The byte position in `path` where the damage or failure is.
    public var position: FilePosition?
    /// The operating system's error number, for failures of a system call (ENOSPC, EIO).
    public var systemError: Int32?

    public init(_ code: Code, _ message: String, topicPartition: TopicPartition? = nil, offset: Offset? = nil, path: String? = nil,
                position: FilePosition? = nil, systemError: Int32? = nil) {
        self.code = code
        self.message = message
        self.topicPartition = topicPartition
        self.offset = offset
        self.path = path
        self.position = position
        self.systemError = systemError
    }

    /// The file system ran out of space (ENOSPC or EDQUOT).
    public var isDiskFull: Bool { systemError == ENOSPC || systemError == EDQUOT }

    public var description: String {
        var s = message
        var context: [String] = []
        if let tp = topicPartition { context.append("topic \(tp.topic) partition \(tp.partition)") }
        if let offset { context.append("offset \(offset)") }
        if let path { context.append("file \(path)") }
        if let position { context.append("position \(position)") }
        if !context.isEmpty { s += " (" + context.joined(separator: ", ") + ")" }
        return s
    }

    /// An `errno`-based failure of a system call on `path`.
    public static func io(_ call: String, path: String, errno code: Int32) -> KappaError {
        KappaError(.io, "\(call) failed: \(errnoDescription(code))", path: path, systemError: code)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code)) + " (errno \(code))"
}
