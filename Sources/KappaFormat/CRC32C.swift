import CCRC32C

/// CRC-32C (Castagnoli), the checksum of Kafka's RecordBatch v2. Uses the CPU's CRC
/// instruction (SSE 4.2 / ARMv8) when present, else slicing-by-8 (see CCRC32C).
public enum CRC32C {
    @inline(__always) public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        kappa_crc32c(crc, bytes.baseAddress, bytes.count)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    public static var usesHardware: Bool { kappa_crc32c_hardware() != 0 }
}
