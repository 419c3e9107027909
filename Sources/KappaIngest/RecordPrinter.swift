import KappaCore
import KappaFormat
import KappaJSON
import KappaLog

/// Turns decoded records into JSON Lines: the stored value as it is, or with
/// `--with-meta` wrapped as {"topic","partition","offset","timestamp","key","value"}
/// where `value` is the stored JSON itself and `timestamp` the exact event time in
/// decimal seconds. A record with headers (besides `kappa.ns`, which is folded into the
/// timestamp) also gets `"headers":[["key","value"],...]`, in order, before `value`.
/// Appends to the caller's buffer; no per-record allocation.
///
/// Values that may not be JSON: a raw-values topic's (dead letters) print as JSON strings
/// with `--with-meta`; a record a Kafka client wrote through `kappa serve` (its batch
/// says so, `TopicConfig.cameFromKafkaClient`) prints as it is when it is valid JSON,
/// else as a JSON string (invalid UTF-8 replaced by U+FFFD), and an empty value as null,
/// in both modes, so every line stays JSON. `kappa produce` validated every other value.
public struct RecordPrinter {
    public let withMeta: Bool
    /// Values may be any bytes (dead letters): print them as JSON strings.
    public let rawValues: Bool
    private var scratch: [UInt8] = []
    private var validator: JSONValidator?
    private let padded = ByteWriter(capacity: 4096)
    private static let nsHeader = Array(RecordBatchLayout.subMilliNanosHeader.utf8)

    public init(withMeta: Bool, rawValues: Bool = false) {
        self.withMeta = withMeta
        self.rawValues = rawValues
        scratch.reserveCapacity(32)
    }

    public mutating func append(_ record: RecordView, topic: TopicPartition, fromKafkaClient: Bool = false, to out: ByteWriter) {
        guard withMeta else {
            if fromKafkaClient {
                appendClientValue(record.value, to: out)
            } else {
                out.reserve(record.value.count + 1)
                out.append(record.value)
            }
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
            appendText(key, to: out)
        } else {
            out.append(Array("null".utf8))
        }
        if record.headerCount > 0 { appendHeaders(record, to: out) }
        out.append(Array(",\"value\":".utf8))
        if fromKafkaClient {
            appendClientValue(record.value, to: out)
        } else if record.value.isEmpty {
            out.append(Array("null".utf8))
        } else if rawValues {
            appendText(record.value, to: out)
        } else {
            out.append(record.value)
        }
        out.append(Array("}\n".utf8))
    }

    /// `"headers":[["k","v"],...]`, leaving out `kappa.ns`; nothing when that is all.
    private func appendHeaders(_ record: RecordView, to out: ByteWriter) {
        var first = true
        record.forEachHeader { key, value in
            if key.elementsEqual(Self.nsHeader) { return }
            out.append(Array((first ? ",\"headers\":[[" : ",[").utf8))
            first = false
            appendText(key, to: out)
            out.append(UInt8(ascii: ","))
            appendText(value, to: out)
            out.append(UInt8(ascii: "]"))
        }
        if !first { out.append(UInt8(ascii: "]")) }
    }

    /// A JSON string of bytes that should be UTF-8: escaped as they are when they are,
    /// with U+FFFD for what is not (JSON strings cannot carry other bytes).
    private func appendText(_ bytes: UnsafeRawBufferPointer, to out: ByteWriter) {
        // ASCII (the common case) needs no decoding to be known valid.
        if !bytes.contains(where: { $0 >= 0x80 }) || String(validating: bytes, as: UTF8.self) != nil {
            JSONEscape.appendString(bytes, to: out)
        } else {
            JSONEscape.appendString(String(decoding: bytes, as: UTF8.self), to: out)
        }
    }

    private mutating func appendClientValue(_ value: UnsafeRawBufferPointer, to out: ByteWriter) {
        guard !value.isEmpty else { return out.append(Array("null".utf8)) }
        if validator == nil { validator = try? JSONValidator() }
        padded.removeAll()
        padded.reserve(value.count + JSONFieldExtractor.padding)
        padded.append(value)
        let valid = validator?.isValid(UnsafeRawBufferPointer(start: padded.base, count: value.count)) ?? false
        if valid { out.append(value) } else { appendText(value, to: out) }
    }
}
