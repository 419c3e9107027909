import KappaCore
import KappaFormat
import KappaJSON
import KappaLog

/// Turns decoded records into JSON Lines: the stored value as it is, or with
/// `--with-meta` wrapped as {"topic","partition","offset","timestamp","key","value"}
/// where `value` is the stored JSON itself and `timestamp` the exact event time in
/// decimal seconds. Appends to the caller's buffer; no per-record allocation.
struct RecordPrinter {
    let withMeta: Bool
    /// Values may be any bytes (dead letters): print them as JSON strings.
    let rawValues: Bool
    private var scratch: [UInt8] = []

    init(withMeta: Bool, rawValues: Bool = false) {
        self.withMeta = withMeta
        self.rawValues = rawValues
        scratch.reserveCapacity(32)
    }

    mutating func append(_ record: RecordView, topic: TopicPartition, to out: ByteWriter) {
        guard withMeta else {
            out.reserve(record.value.count + 1)
            out.append(record.value)
            out.append(0x0A)
            return
        }
        out.append(Array("{\"topic\":".utf8))
        JSONEscape.appendString(topic.topic, to: out)
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: ",\"partition\":".utf8)
        appendInteger(Int64(topic.partition), to: &scratch)
        scratch.append(contentsOf: ",\"offset\":".utf8)
        appendInteger(record.offset.rawValue, to: &scratch)
        scratch.append(contentsOf: ",\"timestamp\":\"".utf8)
        record.timestamp.appendDecimalSeconds(to: &scratch)
        scratch.append(contentsOf: "\",\"key\":".utf8)
        out.append(scratch)
        if let key = record.key {
            JSONEscape.appendString(key, to: out)
        } else {
            out.append(Array("null".utf8))
        }
        out.append(Array(",\"value\":".utf8))
        if record.value.isEmpty {
            out.append(Array("null".utf8))
        } else if rawValues {
            JSONEscape.appendString(String(decoding: record.value, as: UTF8.self), to: out)
        } else {
            out.append(record.value)
        }
        out.append(Array("}\n".utf8))
    }
}
