import KappaCore

/// Writes JSON string literals. Input bytes are UTF-8 (keys extracted from validated
/// JSON, topic names); control characters, quote and backslash are escaped.
public enum JSONEscape {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `"…"` with `bytes` escaped.
    public static func appendString(_ bytes: UnsafeRawBufferPointer, to out: ByteWriter) {
        out.reserve(bytes.count + 2)
        out.append(UInt8(ascii: "\""))
        var runStart = 0
        for i in 0..<bytes.count {
            let b = bytes[i]
            guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
            out.append(UnsafeRawBufferPointer(rebasing: bytes[runStart..<i]))
            runStart = i + 1
            switch b {
            case UInt8(ascii: "\""): out.append(Array("\\\"".utf8))
            case UInt8(ascii: "\\"): out.append(Array("\\\\".utf8))
            case 0x0A: out.append(Array("\\n".utf8))
            case 0x0D: out.append(Array("\\r".utf8))
            case 0x09: out.append(Array("\\t".utf8))
            default:
                out.append(Array("\\u00".utf8))
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0xF)])
            }
        }
        out.append(UnsafeRawBufferPointer(rebasing: bytes[runStart..<bytes.count]))
        out.append(UInt8(ascii: "\""))
    }

    public static func appendString(_ string: String, to out: ByteWriter) {
        var s = string
        s.withUTF8 { appendString(UnsafeRawBufferPointer($0), to: out) }
    }

    /// Appends `"…"` with `string` escaped to a byte array.
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in string.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0x0A: out.append(contentsOf: "\\n".utf8)
            case 0x0D: out.append(contentsOf: "\\r".utf8)
            case 0x09: out.append(contentsOf: "\\t".utf8)
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    public static func quoted(_ string: String) -> String {
        let out = ByteWriter(capacity: string.utf8.count + 16)
        appendString(string, to: out)
        return String(decoding: out.bytes, as: UTF8.self)
    }
}
