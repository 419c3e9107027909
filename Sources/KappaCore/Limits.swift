/// Every resource limit in one place, each with its reason. Limits are enforced at the
/// edge (input lines, batches read from disk, files opened), never trusted.
public enum Limits {
    /// Largest input line (one event) `produce` accepts: Kafka's default max.message.bytes
    /// is ~1 MB, and one event is a small JSON object; a longer line is an input error.
    public static let lineBytesDefault = 1 << 20

    /// Largest batch a reader accepts from disk (its `batchLength` field + 12). A larger
    /// value can only be corruption; the limit keeps a flipped length bit from making a
    /// reader allocate gigabytes.
    public static let batchBytesMax = 16 << 20

    /// Largest uncompressed records section of a batch a reader will inflate. Writers stay
    /// far below it (`batchTargetBytes`); it bounds memory on a corrupt or hostile batch.
    public static let batchInflatedBytesMax = 64 << 20

    /// Writers close a batch once its records reach this many uncompressed bytes: large
    /// enough to amortise the 61-byte header, the CRC and the LZ4 frame, small enough that
    /// a follower sees records promptly and a batch fits Kafka clients' fetch sizes.
    public static let batchTargetBytes = 512 << 10

    /// Records per batch, at most: bounds the per-batch work a reader does before it can
    /// yield, and keeps offset deltas far inside Int32.
    public static let batchRecordsMax = 32_768

    /// Segment size cap. Index entries store 32-bit positions, so a segment must stay
    /// below 4 GiB; 1 GiB is Kafka's default.
    public static let segmentBytesMax: Int64 = 1 << 30

    /// Offset index granularity: one entry per this many log bytes (Kafka's 4096).
    public static let indexIntervalBytes = 4096

    /// Longest topic or group name, and its alphabet, as Kafka's (249, [a-zA-Z0-9._-]).
    public static let nameBytesMax = 249

    /// Most partitions per topic: each is a directory with open files.
    public static let partitionsMax = 1024
}

/// Names of topics and groups are file names; refuse anything that is not.
public func validateName(_ name: String, what: String) throws(KappaError) {
    let bytes = Array(name.utf8)
    guard !bytes.isEmpty, bytes.count <= Limits.nameBytesMax, name != ".", name != ".." else {
        throw KappaError(.invalidArgument, "\(what) name '\(name)' must be 1 to \(Limits.nameBytesMax) characters and not '.' or '..'")
    }
    for b in bytes {
        let ok = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
        guard ok else {
            throw KappaError(.invalidArgument, "\(what) name '\(name)' may contain only letters, digits, '.', '_' and '-'")
        }
    }
}
