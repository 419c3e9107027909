import KappaCore

/// The end of what readers may see of a transactional partition (Kafka's "last stable
/// offset"): `DATA/topics/T/P/committed` holds `SEGMENT_BASE POSITION OFFSET` in decimal,
/// replaced atomically by the task that owns the partition after each checkpoint. Readers
/// stop at it (and at the published end, whichever comes first); what lies beyond is
/// output of a checkpoint not yet taken, which the owner truncates if it crashes. A
/// transactional partition without a marker, or with one that does not parse (replaced
/// without fsync and cut by a power loss), shows nothing until its owner publishes again.
public struct CommittedMarker: Equatable, Sendable {
    public var segmentBase: Offset
    public var position: FilePosition
    public var offset: Offset

    public static let fileName = "committed"

    public init(segmentBase: Offset, position: FilePosition, offset: Offset) {
        self.segmentBase = segmentBase
        self.position = position
        self.offset = offset
    }

    public static let empty = CommittedMarker(segmentBase: .zero, position: .zero, offset: .zero)

    public static func read(_ fs: any FileSystem = PosixFileSystem.shared, partitionDirectory dir: String) throws(KappaError) -> CommittedMarker {
        guard let bytes = try fs.readFileIfExists(dir + "/" + fileName, limit: 256) else { return .empty }
        return parse(bytes) ?? .empty
    }

    static func parse(_ bytes: [UInt8]) -> CommittedMarker? {
        let parts = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int64($0) }
        guard parts.count == 3, parts.allSatisfy({ $0 >= 0 }) else { return nil }
        return CommittedMarker(segmentBase: Offset(parts[0]), position: FilePosition(parts[1]), offset: Offset(parts[2]))
    }

    public func write(_ fs: any FileSystem = PosixFileSystem.shared, partitionDirectory dir: String) throws(KappaError) {
        try fs.writeAtomically(Array("\(segmentBase) \(position) \(offset)\n".utf8), to: dir + "/" + Self.fileName, sync: false)
    }

    /// The committed part of what is visible up to `end`.
    func limit(_ end: LogPoint) -> LogPoint {
        guard offset < end.offset else { return end }
        return LogPoint(segmentBase: segmentBase, position: position, offset: offset)
    }
}
