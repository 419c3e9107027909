import NIOCore

/// Kafka's pre-flexible primitive types, written big-endian into a response. The
/// counterpart of `KafkaReader`; a response never carries tagged fields (librdkafka 2.0,
/// inside Debian's kcat, misparses them), which is why only pre-flexible versions exist.
extension ByteBuffer {
    mutating func writeKafkaString(_ s: String) {
        precondition(s.utf8.count <= Int(Int16.max), "a Kafka string is at most 32767 bytes")
        writeInteger(Int16(s.utf8.count))
        writeString(s)
    }

    mutating func writeKafkaNullableString(_ s: String?) {
        guard let s else {
            writeInteger(Int16(-1))
            return
        }
        writeKafkaString(s)
    }

    mutating func writeKafkaBytes(_ bytes: [UInt8]) {
        writeInteger(Int32(bytes.count))
        writeBytes(bytes)
    }

    mutating func writeKafkaBytes(_ bytes: ByteBuffer) {
        writeInteger(Int32(bytes.readableBytes))
        writeImmutableBuffer(bytes)
    }

    mutating func writeKafkaArrayCount(_ count: Int) {
        writeInteger(Int32(count))
    }

    mutating func writeKafkaBool(_ b: Bool) {
        writeInteger(Int8(b ? 1 : 0))
    }

    mutating func writeKafkaArray<T>(_ elements: [T], _ body: (inout ByteBuffer, T) -> Void) {
        writeKafkaArrayCount(elements.count)
        for e in elements { body(&self, e) }
    }
}
