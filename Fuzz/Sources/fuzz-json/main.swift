// fuzz-json: JSON field extraction (KappaJSON: JSONFieldExtractor.parse, the strict
// simdjson DOM validation `produce` runs on every line, and parseLazily, the on-demand
// extraction jobs run on records already in the log; EventFields; EventTime parsing).
//
// Input: `JSONCase` (a selector byte picking the field paths and the padding, the
// document). The document gets exactly `JSONFieldExtractor.padding` bytes after it in its
// own allocation, so AddressSanitizer sees any read beyond the padding.
//
// Invariants checked besides "no crash, no out-of-bounds read" (the lazy extraction also
// runs on documents the strict parser refuses: it must not crash on them either):
// - differential: where the strict parser accepts a document, the lazy extraction
//   accepts it too and finds the same fields, of the same kind, with the same value
//   (string bytes, integer, double bits and raw digits, boolean);
// - EventFields (what produce uses) agrees with the strict parser: it fails exactly on
//   invalid documents, and its key is the key field's text.
import FuzzSupport
import KappaCore
import KappaJSON

/// A field copied out of the extractor (its views are valid only until the next parse).
enum Field: Equatable, CustomStringConvertible {
    case absent, null, object, array
    case string([UInt8])
    case integer(Int64)
    case number(bits: UInt64, raw: [UInt8])
    case bool(Bool)

    init(_ f: JSONField) {
        switch f {
        case .absent: self = .absent
        case .null: self = .null
        case .object: self = .object
        case .array: self = .array
        case .string(let b): self = .string(Array(b))
        case .integer(let v): self = .integer(v)
        case .number(let d, let raw): self = .number(bits: d.bitPattern, raw: Array(raw))
        case .bool(let b): self = .bool(b)
        }
    }

    var description: String {
        switch self {
        case .absent: "absent"
        case .null: "null"
        case .object: "an object"
        case .array: "an array"
        case .string(let b): "string \"\(String(decoding: b, as: UTF8.self))\""
        case .integer(let v): "integer \(v)"
        case .number(let bits, let raw): "number \(Double(bitPattern: bits)) \"\(String(decoding: raw, as: UTF8.self))\""
        case .bool(let b): "\(b)"
        }
    }
}

nonisolated(unsafe) var extractors: [Int: JSONFieldExtractor] = [:]
nonisolated(unsafe) var eventFields: [Int: EventFields] = [:]

func extractor(_ set: Int, _ paths: [String]) -> JSONFieldExtractor? {
    if set != Int(JSONCase.customPaths), let e = extractors[set] { return e }
    guard let e = try? JSONFieldExtractor(paths: paths) else { return nil }  // a path that does not compile: nothing to extract
    if set != Int(JSONCase.customPaths) { extractors[set] = e }
    return e
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(UnsafeRawBufferPointer(start: data, count: size))
    let selector = input.byte()
    let set = Int(selector & 7)
    let fill = JSONCase.paddingFill[Int(selector >> 3) & 3]
    var paths = set < JSONCase.pathSets.count ? JSONCase.pathSets[set] : []
    if set == Int(JSONCase.customPaths) {
        let rest = input.rest()
        let line = rest.firstIndex(of: 0x0A) ?? rest.count
        paths = String(decoding: UnsafeRawBufferPointer(rebasing: rest[..<line]), as: UTF8.self).split(separator: ",").map(String.init)
        guard paths.count <= 8 else { return 0 }
        input = FuzzInput(UnsafeRawBufferPointer(rebasing: rest[min(rest.count, line + 1)...]))
    }
    let document = exactCopy(input.rest(), slack: JSONFieldExtractor.padding, fill: fill)
    defer { document.deallocate() }
    let doc = UnsafeRawBufferPointer(rebasing: document[..<(document.count - JSONFieldExtractor.padding)])
    guard let e = extractor(set, paths) else { return 0 }
    let strict: [Field]?
    do {
        try e.parse(doc)
        strict = paths.indices.map { Field(e.field($0)) }
    } catch {
        strict = nil
    }
    var lazy: [Field]?
    do {
        try e.parseLazily(doc)
        lazy = paths.indices.map { Field(e.field($0)) }
    } catch {
        lazy = nil
    }
    if let strict {
        require(lazy != nil, "the lazy extraction refuses a document the strict parser accepts (paths \(paths))")
        for (i, path) in paths.enumerated() {
            require(strict[i] == lazy![i], "field '\(path)': strict \(strict[i]), lazy \(lazy![i])")
        }
    }
    if set < 4 { checkEventFields(set, paths, doc, strict: strict) }
    return 0
}

/// produce's extraction (time field, key field) agrees with the strict parser.
func checkEventFields(_ set: Int, _ paths: [String], _ doc: UnsafeRawBufferPointer, strict: [Field]?) {
    let ef: EventFields
    if let cached = eventFields[set] {
        ef = cached
    } else {
        guard let made = try? EventFields(keyField: paths[1], timeField: paths[0], lineBytesMax: Limits.lineBytesDefault) else {  // the paths above compile
            require(false, "EventFields for \(paths) could not be made")
            return
        }
        eventFields[set] = made
        ef = made
    }
    switch ef.extract(doc) {
    case .failure(.invalidJSON(_)):
        require(strict == nil, "EventFields calls a document invalid that the strict parser accepts")
    case .failure:
        require(strict != nil, "EventFields judged the fields of a document the strict parser refuses")
    case .success(let event):
        guard let strict else {
            require(false, "EventFields accepted a document the strict parser refuses")
            return
        }
        switch strict[1] {
        case .string(let b): require(event.key.map { Array($0) } == b, "EventFields' key differs from the strict parser's")
        case .null: require(event.key == nil && event.nullKey, "EventFields' key of a null field")
        case .integer(let v): require(event.key.map { Array($0) } == Array(String(v).utf8), "EventFields' key of integer \(v)")
        case .number(_, let raw): require(event.key.map { Array($0) } == raw, "EventFields' key of a number")
        default: require(false, "EventFields accepted a key field that is \(strict[1])")
        }
    }
}
