// fuzz-batch: the RecordBatch v2 decoder (KappaFormat: RecordBatchFramer, RecordBatchDecoder,
// RecordIterator, LZ4Codec.decompress), with both codecs.
//
// Input: one mode byte, then bytes whose meaning the mode gives (`BatchCase`):
//   stored     a stream of batches as they lie in a segment; CRCs as they are
//   crcFixed   the same, but each framed batch's CRC-32C is recomputed first, so mutated
//              record bytes (and LZ4 frames) get past the checksum into the decoder
//   sealed     a 61-byte header, then an uncompressed records section that the harness
//              compresses (bit 2 of the mode: LZ4, else none) and seals with a valid
//              length and CRC: the record parser behind LZ4, fed fuzzed records
//   headers    the header-only framing a header walk does (bodies not read)
// Bit 3 of the mode sets each stored batch's base offset near Int64.max (a peer may send
// any; random mutation rarely reaches the edge).
//
// Invariants checked besides "no crash, no out-of-bounds read (ASan)":
// - a frame is a whole batch within the limits, with magic 2;
// - every record's offset lies in the batch's offsets, its views lie in live memory;
// - `validate` accepts exactly the batches whose CRC matches and whose records all decode;
// - an LZ4 frame's block map (`LZ4Codec.blocks`) tiles the inflated records and each
//   block inflates alone to its part (`LZ4Codec.inflatePrefix`), for frames whose match
//   offsets are valid (`matchOffsetsValid`, true of every frame liblz4 compresses);
// - a batch that decodes re-encodes through `RecordBatchBuilder` (same codec) into a
//   batch that decodes to the same records (key, value, timestamp, headers).
import FuzzSupport
import KappaCore
import KappaFormat
import KappaTesting

nonisolated(unsafe) let codec = LZ4Codec()
nonisolated(unsafe) let scratch = ByteWriter(capacity: 1 << 16)
nonisolated(unsafe) let rebuilt = ByteWriter(capacity: 1 << 16)
nonisolated(unsafe) let rebuiltScratch = ByteWriter(capacity: 1 << 16)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBatch(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(UnsafeRawBufferPointer(start: data, count: size))
    let mode = input.byte()
    let body = exactCopy(input.rest())
    defer { body.deallocate() }
    switch BatchCase.Mode(rawValue: mode & 3)! {
    case .stored: walk(body, fixingCRC: false, highOffsets: mode & BatchCase.highOffsetsBit != 0)
    case .crcFixed: walk(body, fixingCRC: true, highOffsets: mode & BatchCase.highOffsetsBit != 0)
    case .sealed: sealAndDecode(UnsafeRawBufferPointer(body), compression: mode & 4 != 0 ? .lz4 : CompressionCodec.none)
    case .headers: walkHeaders(UnsafeRawBufferPointer(body))
    }
    return 0
}

/// Frames batch after batch, as a reader does, and decodes each whole one.
/// With `highOffsets`, each batch's base offset becomes one of the last few an Int64
/// holds (batches from a network peer may claim any; random mutation rarely gets there).
func walk(_ bytes: UnsafeMutableRawBufferPointer, fixingCRC: Bool, highOffsets: Bool) {
    var at = 0
    while at < bytes.count {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[at...])
        guard case .batch(let framed)? = try? RecordBatchFramer.frame(rest) else { return }  // a frame error or a short read ends the stream
        checkFrame(framed, available: rest.count)
        let batch = UnsafeMutableRawBufferPointer(rebasing: bytes[at..<(at + framed.totalBytes)])
        var header = framed
        if highOffsets {
            header.baseOffset = Offset(Int64.max - Int64(batch[RecordBatchLayout.baseOffsetOffset + 7] & 0x0F))
            batch.storeBytes(of: header.baseOffset.rawValue.bigEndian, toByteOffset: RecordBatchLayout.baseOffsetOffset, as: Int64.self)
            // Framed again, as a reader would: offsets past Int64.max are refused there.
            guard case .batch? = try? RecordBatchFramer.frame(UnsafeRawBufferPointer(batch)) else {
                at += framed.totalBytes
                continue
            }
        }
        if fixingCRC { sealCRC(batch) }
        decode(UnsafeRawBufferPointer(batch), header: header)
        at += header.totalBytes
    }
}

func checkFrame(_ header: RecordBatchHeader, available: Int) {
    require(header.magic == RecordBatchLayout.magic, "framed a batch of magic \(header.magic)")
    require(header.totalBytes >= RecordBatchLayout.headerBytes && header.totalBytes <= Limits.batchBytesMax,
            "framed a batch of \(header.totalBytes) bytes")
    require(header.totalBytes <= available, "framed \(header.totalBytes) bytes out of \(available)")
}

/// Writes the CRC-32C the batch's covered bytes call for.
func sealCRC(_ batch: UnsafeMutableRawBufferPointer) {
    let covered = UnsafeRawBufferPointer(rebasing: batch[RecordBatchLayout.attributesOffset...])
    let crc = CRC32C.checksum(covered)
    for i in 0..<4 { batch[RecordBatchLayout.crcOffset + i] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * i)) }
}

/// Decodes one framed batch fully and checks what it yields; round-trips it when it is valid.
func decode(_ batch: UnsafeRawBufferPointer, header: RecordBatchHeader) {
    let crcOK = RecordBatchFramer.crcMatches(batch)
    var decoded: (records: [ReferenceRecord], lossless: Bool)? = nil
    if crcOK { decoded = decodeRecords(batch, header: header, scratch: scratch) }
    let validated = (try? RecordBatchFramer.validate(batch, header: header, codec: codec, scratch: scratch)) != nil  // the answer is the value
    require(validated == (crcOK && decoded != nil), "validate says \(validated), CRC \(crcOK), records decode \(decoded != nil)")
    if let decoded, decoded.lossless, !decoded.records.isEmpty, let compression = header.compression {
        roundTrip(decoded.records, compression: compression)
    }
}

nonisolated(unsafe) let blockScratch = ByteWriter(capacity: 1 << 16)

/// The block map `decompress` left: blocks chain through the frame, tile the inflated
/// bytes, and each inflates alone (whole, and a prefix) to exactly its part — what the
/// history's located reads rely on.
func checkBlockMap(_ frame: UnsafeRawBufferPointer, inflated: UnsafeRawBufferPointer) {
    let blocks = codec.blocks
    // A stream with a match from before its start inflates to whatever the buffer held
    // (liblz4 1.9.4 does not refuse it); Kafka clients' batches are refused for it.
    guard !blocks.isEmpty, LZ4Codec.matchOffsetsValid(frame) else { return }
    require(blocks[0].inflatedStart == 0, "first block starts at \(blocks[0].inflatedStart)")
    for (k, b) in blocks.enumerated() {
        let end = k + 1 < blocks.count ? blocks[k + 1].inflatedStart : inflated.count
        require(b.inflatedStart < end || inflated.isEmpty, "block \(k) is empty or out of order")
        if k + 1 < blocks.count { require(Int(b.frameOffset) + b.frameBytes == Int(blocks[k + 1].frameOffset), "block \(k) does not chain") }
        require(Int(b.frameOffset) + b.frameBytes <= frame.count, "block \(k) past the frame")
        let bytes = UnsafeRawBufferPointer(rebasing: frame[Int(b.frameOffset)..<(Int(b.frameOffset) + b.frameBytes)])
        for count in Set([end - b.inflatedStart, (end - b.inflatedStart + 1) / 2]) where count > 0 {
            require(LZ4Codec.inflatePrefix(ofBlock: bytes, count: count, into: blockScratch), "block \(k) does not inflate alone")
            require(blockScratch.bytes.elementsEqual(inflated[b.inflatedStart..<(b.inflatedStart + count)]), "block \(k) inflates to other bytes: blocks \(blocks), inflated \(inflated.count), count \(count)")
        }
    }
}

/// The records of a batch as owned values, or nil when one does not decode. Checks each
/// record against the header and reads every byte of its views. `lossless` is false
/// when a header key is not UTF-8 (the builder takes `String` keys: no round trip then).
func decodeRecords(_ batch: UnsafeRawBufferPointer, header: RecordBatchHeader, scratch: ByteWriter) -> (records: [ReferenceRecord], lossless: Bool)? {
    guard var iterator = try? RecordBatchDecoder.records(of: batch, header: header, codec: codec, scratch: scratch) else { return nil }  // refused: a value here
    if header.compression == .lz4 { checkBlockMap(UnsafeRawBufferPointer(rebasing: batch[RecordBatchLayout.recordsOffset...]), inflated: scratch.bytes) }
    var out: [ReferenceRecord] = []
    var lossless = true
    while true {
        let view: RecordView?
        do { view = try iterator.next() } catch { return nil }
        guard let view else { break }
        let (last, overflow) = header.baseOffset.rawValue.addingReportingOverflow(Int64(header.lastOffsetDelta))
        require(!overflow && view.offset >= header.baseOffset && view.offset.rawValue <= last,
                "record offset \(view.offset) outside \(header.baseOffset) + 0...\(header.lastOffsetDelta)")
        _ = touch(view.key) ^ touch(view.value) ^ touch(view.headers)
        var headers: [RecordHeader] = []
        var seen = 0
        view.forEachHeader { k, v in
            seen += 1
            _ = touch(k) ^ touch(v)
            let isNanos = k.elementsEqual(RecordBatchLayout.subMilliNanosHeader.utf8) && v.count == 4
            let key = String(decoding: k, as: UTF8.self)
            if !key.utf8.elementsEqual(k) { lossless = false }
            if !isNanos { headers.append(RecordHeader(key: key, value: Array(v))) }
        }
        require(seen == view.headerCount, "forEachHeader saw \(seen) of \(view.headerCount) headers")
        out.append(ReferenceRecord(key: view.key.map { Array($0) }, value: Array(view.value), timestamp: view.timestamp, headers: headers))
    }
    require(out.count == Int(header.recordsCount), "decoded \(out.count) records of \(header.recordsCount)")
    return (out, lossless)
}

/// Re-encodes `records` with the production builder and checks they decode the same.
/// Header keys that are not UTF-8 cannot be rebuilt (the builder takes `String` keys).
func roundTrip(_ records: [ReferenceRecord], compression: CompressionCodec) {
    guard compression == .none || compression == .lz4 else { return }
    let builder = RecordBatchBuilder(compression: compression)
    for r in records { BatchCoding.append(r, to: builder) }
    rebuilt.removeAll()
    builder.seal(into: rebuilt, codec: codec)
    guard case .batch(let header)? = try? RecordBatchFramer.frame(rebuilt.bytes) else {  // must frame: checked below
        require(false, "a rebuilt batch of \(rebuilt.count) bytes does not frame")
        return
    }
    require(RecordBatchFramer.crcMatches(rebuilt.bytes), "a rebuilt batch fails its CRC")
    let again = decodeRecords(rebuilt.bytes, header: header, scratch: rebuiltScratch)
    require(again?.records == records, "records differ after a round trip through the builder")
}

/// Seals `[header][records]` into a batch with a correct length and CRC, then decodes it.
func sealAndDecode(_ body: UnsafeRawBufferPointer, compression: CompressionCodec) {
    guard body.count >= RecordBatchLayout.headerBytes else { return }
    let out = ByteWriter(capacity: body.count + 128)
    out.append(UnsafeRawBufferPointer(rebasing: body[..<RecordBatchLayout.headerBytes]))
    let records = UnsafeRawBufferPointer(rebasing: body[RecordBatchLayout.headerBytes...])
    let attributes = (body.loadBigEndian(at: RecordBatchLayout.attributesOffset, as: Int16.self) & ~RecordBatchLayout.compressionMask) | compression.rawValue
    out.setBigEndian(attributes, at: RecordBatchLayout.attributesOffset)
    out.setBigEndian(RecordBatchLayout.magic, at: RecordBatchLayout.magicOffset)
    if compression == .lz4 {
        codec.compress(records, appendingTo: out)
        let frame = UnsafeRawBufferPointer(rebasing: out.bytes[RecordBatchLayout.headerBytes...])
        require(LZ4Codec.matchOffsetsValid(frame), "liblz4's own frame has a match from before its start")
    } else {
        out.append(records)
    }
    guard out.count <= Limits.batchBytesMax else { return }
    out.setBigEndian(Int32(out.count - RecordBatchLayout.logOverheadBytes), at: RecordBatchLayout.batchLengthOffset)
    let batch = UnsafeMutableRawBufferPointer(start: out.base, count: out.count)
    sealCRC(batch)
    // Offsets past Int64.max (the fuzzed header's base offset and last offset delta) are
    // refused by the framer; anything else sealed this way must frame.
    let claimed = RecordBatchHeader(UnsafeRawBufferPointer(batch))
    let (last, overflow) = claimed.baseOffset.rawValue.addingReportingOverflow(Int64(claimed.lastOffsetDelta))
    let framed = try? RecordBatchFramer.frame(UnsafeRawBufferPointer(batch))
    if overflow || last == Int64.max {
        require(framed == nil, "a sealed batch of offsets \(claimed.baseOffset) + \(claimed.lastOffsetDelta) frames")
        return
    }
    guard case .batch(let header)? = framed else {
        require(false, "a sealed batch of \(out.count) bytes does not frame")
        return
    }
    decode(UnsafeRawBufferPointer(batch), header: header)
}

/// The header-only framing of a header walk: never reads past the 61 header bytes.
func walkHeaders(_ bytes: UnsafeRawBufferPointer) {
    var at = 0
    while at + RecordBatchLayout.headerBytes <= bytes.count {
        let head = exactCopy(UnsafeRawBufferPointer(rebasing: bytes[at..<(at + RecordBatchLayout.headerBytes)]))
        defer { head.deallocate() }
        guard case .batch(let header)? = try? RecordBatchFramer.frame(UnsafeRawBufferPointer(head), headerOnly: true) else { return }  // a frame error ends the walk
        require(header.magic == RecordBatchLayout.magic, "header walk framed magic \(header.magic)")
        require(header.totalBytes >= RecordBatchLayout.headerBytes && header.totalBytes <= Limits.batchBytesMax,
                "header walk framed \(header.totalBytes) bytes")
        at += header.totalBytes
    }
}
