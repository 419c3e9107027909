import CSimdJSON
import KappaCore

/// A field found in a JSON document by `JSONFieldExtractor`. Byte views point into the
/// parser (strings) or the input (raw numbers) and are valid until the next parse.
public enum JSONField {
    case absent
    case string(UnsafeRawBufferPointer)
    case integer(Int64)
    /// A non-integer number: its value and its exact source digits.
    case number(Double, raw: UnsafeRawBufferPointer)
    case null
    case bool(Bool)
    case object
    case array

    /// A key or id as text: a string's content, or a number's digits; nil otherwise.
    public var text: String? {
        switch self {
        case .string(let b): return String(decoding: b, as: UTF8.self)
        case .integer(let v): return String(v)
        case .number(_, let raw): return String(decoding: raw, as: UTF8.self)
        default: return nil
        }
    }

    /// The kind, for error messages ("is a object").
    public var kindName: String {
        switch self {
        case .absent: "absent"
        case .string: "a string"
        case .integer, .number: "a number"
        case .null: "null"
        case .bool: "a boolean"
        case .object: "an object"
        case .array: "an array"
        }
    }
}

/// Validates JSON documents (simdjson's DOM parser: the whole document, UTF-8 included)
/// and extracts only the fields compiled at init: a path like `event_details.button_type`
/// or `items[0].sku`. Reuses its parser across documents; one extractor per thread.
///
/// Every document handed in must have `JSONFieldExtractor.padding` readable bytes after
/// it (their content does not matter): simdjson reads ahead with 64-byte vector loads.
public final class JSONFieldExtractor {
    public static let padding = Int(KJ_PADDING)
    public let paths: [String]
    private let parser: OpaquePointer
    private let fields: OpaquePointer?
    private let values: UnsafeMutablePointer<kj_value>
    private let valueCount: Int

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public init(paths: [String], documentBytesMax: Int = Limits.lineBytesDefault) throws(KappaError) {
        self.paths = paths
        guard let parser = kj_parser_create(documentBytesMax) else {
            throw KappaError(.io, "could not allocate a JSON parser for \(documentBytesMax)-byte documents")
        }
        self.parser = parser
        if paths.isEmpty {
            fields = nil
        } else {
            var cStrings = paths.map { strdup($0) }
            defer { cStrings.forEach { free($0) } }
            let compiled = cStrings.withUnsafeMutableBufferPointer { buf in
                buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) {
                    kj_fields_create($0, buf.count)
                }
            }
            guard let compiled else {
                kj_parser_destroy(parser)
                throw KappaError(.invalidArgument, "invalid field path in \(paths)")
            }
            fields = compiled
        }
        valueCount = max(1, paths.count)
        values = .allocate(capacity: valueCount)
        values.initialize(repeating: kj_value(), count: valueCount)
    }

    deinit {
        values.deallocate()
        kj_parser_destroy(parser)
        if let fields { kj_fields_destroy(fields) }
    }

    /// Parses one document (padded as described above). Throws `ParseError` for invalid
    /// JSON or a document that is not an object.
    @inline(__always)
    public func parse(_ document: UnsafeRawBufferPointer) throws(ParseError) {
        let code = kj_parse_extract(parser, fields, document.baseAddress?.assumingMemoryBound(to: UInt8.self), document.count, values)
        guard code == 0 else { throw ParseError(message: String(cString: kj_error_message(code))) }
    }

    /// Extracts the compiled fields reading only what it must, without validating the
    /// rest of the document: for records already validated. Top-level fields are found by
    /// a forward scan of the bytes (no structural index); what it declines — escapes,
    /// unusual numbers, nested paths — goes to simdjson's on-demand parser.
    @inline(__always)
    public func parseLazily(_ document: UnsafeRawBufferPointer) throws(ParseError) {
        let code = kj_lazy_extract(parser, fields, document.baseAddress?.assumingMemoryBound(to: UInt8.self), document.count, values)
        guard code == 0 else { throw ParseError(message: String(cString: kj_error_message(code))) }
    }

    /// `parseLazily`'s first step alone (for tests): true when the byte scan served the
    /// document, false when it declined it to the on-demand parser.
    func scanOnly(_ document: UnsafeRawBufferPointer) -> Bool {
        kj_scan_extract(fields, document.baseAddress?.assumingMemoryBound(to: UInt8.self), document.count, values) == 0
    }

    /// The `i`th compiled field of the last parsed document.
    @inline(__always)
    public func field(_ i: Int) -> JSONField {
        precondition(i >= 0 && i < valueCount, "field index out of range")
        let v = values[i]
        switch v.kind {
        case Int32(KJ_STRING.rawValue): return .string(UnsafeRawBufferPointer(start: v.ptr, count: v.len))
        case Int32(KJ_INT.rawValue): return .integer(v.int_value)
        case Int32(KJ_FLOAT.rawValue): return .number(v.double_value, raw: UnsafeRawBufferPointer(start: v.ptr, count: v.len))
        case Int32(KJ_NULL.rawValue): return .null
        case Int32(KJ_BOOL.rawValue): return .bool(v.int_value != 0)
        case Int32(KJ_OBJECT.rawValue): return .object
        case Int32(KJ_ARRAY.rawValue): return .array
        default: return .absent
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
