import KappaCore
import KappaFormat
import KappaLog

/// A decoded record with its offset, as read back from a real log.
public struct ReadRecord: Equatable, Sendable {
    public var offset: Offset
    public var record: ReferenceRecord
}

extension RecordIterator {
    /// Decodes every remaining record into owned values (copies the bytes), splitting
    /// the `kappa.ns` header off the user headers. Throws the first decode error.
    public mutating func collect() throws(BatchDecodeError) -> [ReadRecord] {
        var out: [ReadRecord] = []
        while let view = try next() {
            var headers: [RecordHeader] = []
            view.forEachHeader { k, v in
                let key = String(decoding: k, as: UTF8.self)
                if key != RecordBatchLayout.subMilliNanosHeader { headers.append(RecordHeader(key: key, value: Array(v))) }
            }
            let record = ReferenceRecord(key: view.key.map { Array($0) }, value: Array(view.value), timestamp: view.timestamp, headers: headers)
            out.append(ReadRecord(offset: view.offset, record: record))
        }
        return out
    }
}

extension PartitionReader {
    /// Seeks to `offset` and decodes every record from there to the committed end,
    /// dropping the records below `offset` in the first batch. Returns the seek result
    /// and the records. A test helper: it copies everything, so keep logs small.
    public func readAll(from offset: Offset) throws -> (seek: SeekResult, records: [ReadRecord]) {
        let seek = try seek(to: offset)
        let codec = LZ4Codec()
        let scratch = ByteWriter(capacity: 1 << 16)
        var out: [ReadRecord] = []
        while let batch = try nextBatch() {
            var it = try RecordBatchDecoder.records(of: batch.bytes, header: batch.header, codec: codec, scratch: scratch)
            for r in try it.collect() where r.offset >= offset { out.append(r) }
        }
        return (seek, out)
    }
}
