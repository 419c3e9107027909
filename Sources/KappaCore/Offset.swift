/// A record's position in one partition: dense, starting at 0, never reused or changed.
public struct Offset: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int64

    @inlinable public init(rawValue: Int64) { self.rawValue = rawValue }
    @inlinable public init(_ value: Int64) { self.rawValue = value }

    public static let zero = Offset(0)

    @inlinable public static func < (a: Offset, b: Offset) -> Bool { a.rawValue < b.rawValue }
    @inlinable public static func + (a: Offset, n: Int64) -> Offset { Offset(a.rawValue + n) }
    @inlinable public static func - (a: Offset, b: Offset) -> Int64 { a.rawValue - b.rawValue }

    public var description: String { String(rawValue) }
}

/// A byte position in one segment file. Segments are capped below 4 GiB so that index
/// entries can store positions in 32 bits, as Kafka's do.
public struct FilePosition: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int64

    @inlinable public init(rawValue: Int64) { self.rawValue = rawValue }
    @inlinable public init(_ value: Int64) { self.rawValue = value }

    public static let zero = FilePosition(0)

    @inlinable public static func < (a: FilePosition, b: FilePosition) -> Bool { a.rawValue < b.rawValue }

    public var description: String { String(rawValue) }
}

/// One partition of one topic.
public struct TopicPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }

    public var description: String { "\(topic)/\(partition)" }

    /// "topic T partition P", as messages name a partition.
    public var readable: String { "topic \(topic) partition \(partition)" }
}
