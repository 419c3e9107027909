import KappaCore

/// The input layout of `fuzz-batch`: a mode byte, then the bytes (see that target).
public enum BatchCase {
    public enum Mode: UInt8, CaseIterable, Sendable {
        /// Batches as stored; CRCs as they are.
        case stored = 0
        /// Batches as stored; each framed batch's CRC recomputed before decoding.
        case crcFixed = 1
        /// A 61-byte header and an uncompressed records section, sealed by the harness.
        case sealed = 2
        /// Header-only framing, as a header walk does.
        case headers = 3
    }

    /// Bit 2 of the mode byte: seal with LZ4 (`sealed` mode).
    public static let lz4Bit: UInt8 = 4
    /// Bit 3 of the mode byte: base offsets near Int64.max (`stored`, `crcFixed`).
    public static let highOffsetsBit: UInt8 = 8

    public static func input(_ mode: Mode, lz4: Bool = false, highOffsets: Bool = false, _ body: [UInt8]) -> [UInt8] {
        [mode.rawValue | (lz4 ? lz4Bit : 0) | (highOffsets ? highOffsetsBit : 0)] + body
    }
}

/// The input layout of `fuzz-segment`: one partition's files, and what to do with them.
///
/// ```
/// flags u8          see `Flag`
/// firstBase u8      base offset of the first segment
/// recovery point    PointSpec (5 bytes)
/// published end     PointSpec (5 bytes)
/// seek u8           the offset a second reader seeks to, relative to the first base
/// segments u8       1 + n % 3 segment files follow
/// segment…          chunk: the .log bytes; each segment's base offset is where the
///                   previous one's batches end (as framed), so seeds chain
/// index             chunk: the last segment's .index bytes (with `Flag.indexes`)
/// timeindex         chunk: its .timeindex bytes
/// ```
public struct SegmentCase {
    public enum Flag {
        /// A recovery point file names `recoveryPoint`; else the file is all zeros.
        public static let recoveryPoint: UInt8 = 1 << 0
        /// An `end` file names `publishedEnd`; else there is none.
        public static let publishedEnd: UInt8 = 1 << 1
        /// The end was published in this boot (else in another one: a restart).
        public static let thisBoot: UInt8 = 1 << 2
        /// Recompute the CRC of every batch that frames, so that mutated records get
        /// past the checksum into the record checks.
        public static let fixCRCs: UInt8 = 1 << 3
        /// Rewrite each framed batch's base offset to continue the previous batch's.
        public static let fixOffsets: UInt8 = 1 << 4
        /// After recovery, append a batch through the writer and read everything again.
        public static let append: UInt8 = 1 << 5
        /// The last segment's index files come from the input (else there are none).
        public static let indexes: UInt8 = 1 << 6
        /// A second reader seeks to `seek` and reads from there.
        public static let seek: UInt8 = 1 << 7
    }

    /// A place in the log the files name: the start of batch `boundary` of segment
    /// `segment` (as the harness frames it; `boundary` past the last batch means the end
    /// of the framed batches), or, when `boundary` is 255, byte `rawPosition`. The offset
    /// is the batch's (the end's) plus `offsetSkew`: non-zero makes a point that does not
    /// agree with the log.
    public struct PointSpec: Equatable {
        public var segment: UInt8
        public var boundary: UInt8
        public var rawPosition: Int
        public var offsetSkew: Int8

        public static let rawBoundary: UInt8 = 255

        public init(segment: UInt8, boundary: UInt8, rawPosition: Int = 0, offsetSkew: Int8 = 0) {
            self.segment = segment
            self.boundary = boundary
            self.rawPosition = rawPosition
            self.offsetSkew = offsetSkew
        }
    }

    public var flags: UInt8
    public var firstBase: UInt8
    public var recoveryPoint: PointSpec
    public var publishedEnd: PointSpec
    public var seek: UInt8
    public var segments: [[UInt8]]
    public var index: [UInt8]
    public var timeIndex: [UInt8]

    public init(flags: UInt8, firstBase: UInt8 = 0, recoveryPoint: PointSpec, publishedEnd: PointSpec, seek: UInt8 = 0,
                segments: [[UInt8]], index: [UInt8] = [], timeIndex: [UInt8] = []) {
        precondition((1...3).contains(segments.count))
        self.flags = flags
        self.firstBase = firstBase
        self.recoveryPoint = recoveryPoint
        self.publishedEnd = publishedEnd
        self.seek = seek
        self.segments = segments
        self.index = index
        self.timeIndex = timeIndex
    }

    public func has(_ flag: UInt8) -> Bool { flags & flag != 0 }

    public init(_ input: inout FuzzInput) {
        flags = input.byte()
        firstBase = input.byte()
        recoveryPoint = Self.point(&input)
        publishedEnd = Self.point(&input)
        seek = input.byte()
        let count = 1 + Int(input.byte() % 3)
        segments = (0..<count).map { _ in Array(input.chunk()) }
        index = Array(input.chunk())
        timeIndex = Array(input.chunk())
    }

    private static func point(_ input: inout FuzzInput) -> PointSpec {
        PointSpec(segment: input.byte(), boundary: input.byte(), rawPosition: input.u16(), offsetSkew: Int8(bitPattern: input.byte()))
    }

    public var encoded: [UInt8] {
        var b = FuzzInputBuilder()
        b.byte(flags)
        b.byte(firstBase)
        for p in [recoveryPoint, publishedEnd] {
            b.byte(p.segment)
            b.byte(p.boundary)
            b.u16(p.rawPosition)
            b.byte(UInt8(bitPattern: p.offsetSkew))
        }
        b.byte(seek)
        b.byte(UInt8(segments.count - 1))
        for s in segments { b.chunk(s) }
        b.chunk(index)
        b.chunk(timeIndex)
        return b.bytes
    }
}

/// The input layout of `fuzz-json`: a selector byte, then (for the custom path set) a
/// line of comma-separated field paths, then the document.
///
/// Selector: the low 3 bits pick a path set (`pathSets`; 7 = custom), the next 2 bits
/// what the 64 bytes of padding after the document hold (`paddingFill`).
public enum JSONCase {
    /// Path sets as Kappa asks for them: produce's time and key, the shipped jobs'
    /// fields, nested paths, none (validation only).
    public static let pathSets: [[String]] = [
        ["time_utc", "user_id"],
        ["time_utc", "city", "fare"],
        ["time_utc", "user_id", "event_type"],
        ["time_utc", "user_id", "ticket_id", "ride_id"],
        ["event_details.button_type", "event_details.purchased_items[0].sku", "a.b.c", "a[1]"],
        ["user_id", "user_id.x", "[0]", "time_utc[0]"],
        [],
    ]
    public static let customPaths: UInt8 = 7
    public static let paddingFill: [UInt8] = [0x00, 0x20, 0x22, 0x7D]  // NUL, space, '"', '}'

    public static func input(pathSet: UInt8, padding: UInt8 = 0, customPaths paths: [String] = [], document: [UInt8]) -> [UInt8] {
        var out = [pathSet & 7 | (padding & 3) << 3]
        if pathSet == customPaths { out += Array(paths.joined(separator: ",").utf8) + [0x0A] }
        return out + document
    }
}
