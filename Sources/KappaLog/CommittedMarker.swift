import KappaCore

/// The end of what readers may see of a transactional partition (Kafka's "last stable
/// offset"): `DATA/topics/T/P/committed` holds `SEGMENT_BASE POSITION OFFSET`, replaced
/// atomically by the task that owns the partition after each checkpoint. Readers stop
/// at it; what lies beyond is output of a checkpoint not yet taken, which the owner
/// truncates if it crashes. A transactional partition without a marker shows nothing.
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

    public static func read(partitionDirectory dir: String) -> CommittedMarker {
        guard let f = try? File(path: dir + "/" + fileName, mode: .readOnly), let bytes = try? f.readAll(limit: 256) else { return .empty }
        let parts = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int64($0) }
        guard parts.count == 3 else { return .empty }
        return CommittedMarker(segmentBase: Offset(parts[0]), position: FilePosition(parts[1]), offset: Offset(parts[2]))
    }

    public func write(partitionDirectory dir: String) throws(KappaError) {
        try FS.writeAtomically(Array("\(segmentBase) \(position) \(offset)\n".utf8), to: dir + "/" + Self.fileName, sync: false)
    }

    /// How many bytes of segment `base` a reader may see, given the file's size.
    func visibleBytes(segment base: Offset, fileBytes: Int64) -> Int64 {
        if base < segmentBase { return fileBytes }
        if base == segmentBase { return min(fileBytes, position.rawValue) }
        return 0
    }
}
