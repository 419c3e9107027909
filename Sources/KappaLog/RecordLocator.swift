import KappaCore
import KappaFormat

/// Where one record lies inside its batch, so that it can be read without reading,
/// checking and inflating the rest of the batch, and the checksum that proves the bytes
/// read are the bytes located. Derived state, kept beside a `BatchLocation` by indexes
/// (the user history); `RecordFetcher` uses it and falls back to the whole batch when it
/// does not check out.
///
/// For an uncompressed batch the record is `length` bytes at `blockStart` of the records
/// section. For an LZ4 batch it is `length` bytes at `inBlock` of one block's inflated
/// bytes, the block whose size field starts at `blockStart` of the frame and reads
/// `blockSizeField`; only frames of independent blocks are located (a block is inflated
/// alone), and a record that crosses a block boundary is not (about one in 1,000 at
/// 256 KiB blocks of 250-byte events: those read the whole batch).
public struct RecordLocator: Hashable, Sendable {
    public var blockStart: UInt32
    /// 0 for an uncompressed batch.
    public var blockSizeField: UInt32
    public var inBlock: UInt32
    public var length: UInt32
    /// CRC-32C of the batch header as stored (`RecordBatchLayout.headerBytes`) followed
    /// by the record's bytes: the batch CRC cannot be checked without the whole batch.
    public var crc: UInt32

    public init(blockStart: UInt32, blockSizeField: UInt32, inBlock: UInt32, length: UInt32, crc: UInt32) {
        self.blockStart = blockStart
        self.blockSizeField = blockSizeField
        self.inBlock = inBlock
        self.length = length
        self.crc = crc
    }

    static func checksum(header: UnsafeRawBufferPointer, record: UnsafeRawBufferPointer) -> UInt32 {
        CRC32C.checksum(record, continuing: CRC32C.checksum(header))
    }
}

/// Locates the records of one batch as an index reads them in order (`BatchRecords.
/// nextWithBytes`). Made right after the batch was decoded with `codec`, whose block map
/// describes it.
public struct RecordLocating {
    private let compressed: Bool
    private let blocks: [LZ4Block]
    private let headerCRC: UInt32
    private var block = 0

    /// Nil when the batch's records cannot be located (an LZ4 frame of linked blocks,
    /// block checksums, or a layout the codec did not map).
    public init?(_ records: BatchRecords, codec: LZ4Codec) {
        switch records.header.compression {
        case .none?:
            compressed = false
            blocks = []
        case .lz4?:
            guard !codec.blocks.isEmpty else { return nil }
            compressed = true
            blocks = codec.blocks
        default:
            return nil
        }
        headerCRC = CRC32C.checksum(records.headerBytes)
    }

    /// The locator of the record whose bytes start at `start` of the records section;
    /// records must come in order. Nil for a record that crosses a block boundary.
    public mutating func locator(start: Int, bytes: UnsafeRawBufferPointer) -> RecordLocator? {
        guard start >= 0, bytes.count <= Int(UInt32.max) else { return nil }
        let crc = CRC32C.checksum(bytes, continuing: headerCRC)
        guard compressed else {
            guard start <= Int(UInt32.max) else { return nil }
            return RecordLocator(blockStart: UInt32(start), blockSizeField: 0, inBlock: 0, length: UInt32(bytes.count), crc: crc)
        }
        while block + 1 < blocks.count && blocks[block + 1].inflatedStart <= start { block += 1 }
        let b = blocks[block]
        guard start >= b.inflatedStart else { return nil }
        if block + 1 < blocks.count && start + bytes.count > blocks[block + 1].inflatedStart { return nil }
        let inBlock = start - b.inflatedStart
        guard inBlock <= Int(UInt32.max) else { return nil }
        return RecordLocator(blockStart: b.frameOffset, blockSizeField: b.sizeField, inBlock: UInt32(inBlock), length: UInt32(bytes.count), crc: crc)
    }
}
