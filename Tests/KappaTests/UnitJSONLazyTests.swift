import Testing
import KappaCore
import KappaTesting
@testable import KappaJSON

/// The lazy extraction jobs use (simdjson on-demand, one walk in document order, string
/// contents read in place) must find exactly what the validating DOM extraction finds.
@Suite struct UnitJSONLazyTests {
    /// A field as plain values, comparable across the two parsers.
    enum Found: Equatable, CustomStringConvertible {
        case absent, null, object, array
        case string([UInt8])
        case integer(Int64)
        case number(UInt64, raw: [UInt8])  // the double's bits
        case bool(Bool)

        init(_ f: JSONField) {
            switch f {
            case .absent: self = .absent
            case .null: self = .null
            case .object: self = .object
            case .array: self = .array
            case .string(let b): self = .string(Array(b))
            case .integer(let v): self = .integer(v)
            case .number(let d, let raw): self = .number(d.bitPattern, raw: Array(raw))
            case .bool(let b): self = .bool(b)
            }
        }

        var description: String {
            switch self {
            case .string(let b): "string \(String(decoding: b, as: UTF8.self))"
            case .number(let bits, let raw): "number \(Double(bitPattern: bits)) raw \(String(decoding: raw, as: UTF8.self))"
            default: "\(self)"
            }
        }
    }

    static func both(_ paths: [String], _ json: String) throws -> (dom: [Found], lazy: [Found]) {
        let dom = try JSONFieldExtractor(paths: paths)
        let lazy = try JSONFieldExtractor(paths: paths)
        return try UnitJSONFieldsTests.padded(json) { doc in
            try dom.parse(doc)
            try lazy.parseLazily(doc)
            return (paths.indices.map { Found(dom.field($0)) }, paths.indices.map { Found(lazy.field($0)) })
        }
    }

    /// Random JSON, built as text so that spacing, escapes and number spellings vary.
    struct Generator {
        var random: SeededRandom
        let keys: [String]

        mutating func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &random)] }
        mutating func space() -> String { pick(["", "", "", " ", "\n  ", "\t"]) }

        mutating func string() -> String {
            let pieces = ["a", "Mexico City", "1457741203.915452601", "\\\"", "\\\\", "\\n", "\\u00e9", "é", "日本", "\\/", ",", "}", "]", ":"]
            var s = "\""
            for _ in 0..<Int.random(in: 0...4, using: &random) { s += pick(pieces) }
            return s + "\""
        }

        mutating func value(depth: Int) -> String {
            let choice = Int.random(in: 0..<(depth < 3 ? 10 : 7), using: &random)
            switch choice {
            case 0, 1: return string()
            case 2: return pick(["0", "-5", "42", "9223372036854775807", "-9223372036854775808", "18446744073709551615"])
            case 3: return pick(["2.50", "-0.0", "1e5", "1.5E-3", "5.0", "0.1", "123456789.123456789", "1e300"])
            case 4: return pick(["null", "true", "false"])
            case 5: return "\"" + pick(["", "x"]) + "\""
            case 6: return pick(["{}", "[]"])
            case 7, 8: return object(depth: depth + 1)
            default:
                var a = "["
                for i in 0..<Int.random(in: 0...3, using: &random) { a += (i > 0 ? "," : "") + space() + value(depth: depth + 1) + space() }
                return a + "]"
            }
        }

        mutating func object(depth: Int, unique: Bool = true) -> String {
            var used = Set<String>()
            var o = "{"
            var first = true
            for _ in 0..<Int.random(in: 0...6, using: &random) {
                let k = pick(keys)
                if unique && !used.insert(k).inserted { continue }
                o += (first ? "" : ",") + space() + "\"\(k)\"" + space() + ":" + space() + value(depth: depth) + space()
                first = false
            }
            return o + "}"
        }
    }

    /// Top-level keys only: the one-pass walk. Duplicate keys allowed (the first counts).
    @Test(arguments: 0..<4)
    func topLevelFieldsMatchTheDOM(seed: UInt64) throws {
        var g = Generator(random: SeededRandom(seed: 100 + seed), keys: ["time_utc", "city", "fare", "user_id", "ride_id", "t", "c"])
        let paths = ["time_utc", "city", "fare", "user_id", "t"]
        for _ in 0..<400 {
            let doc = g.object(depth: 0, unique: seed % 2 == 0)
            let (dom, lazy) = try Self.both(paths, doc)
            #expect(dom == lazy, "\(doc)")
        }
    }

    /// Nested paths, array indexes and paths sharing a first key: the general walk.
    @Test(arguments: 0..<4)
    func nestedPathsMatchTheDOM(seed: UInt64) throws {
        var g = Generator(random: SeededRandom(seed: 200 + seed), keys: ["a", "b", "c", "x", "y"])
        let path: [[String]] = [["a", "b.x", "a.y"], ["a.x", "a.y", "c[0]", "c[1].x"], ["b", "c.a.b", "x[0][0]"], ["y", "x", "a.b.c"]]
        for _ in 0..<400 {
            let doc = g.object(depth: 0)
            let (dom, lazy) = try Self.both(path[Int(seed)], doc)
            #expect(dom == lazy, "\(doc)")
        }
    }

    @Test func stringsWithoutEscapesAreReadInPlace() throws {
        let x = try JSONFieldExtractor(paths: ["s", "e"])
        try UnitJSONFieldsTests.padded(#"{"s" : "Mexico City" , "e":"a\"b\u00e9"}"#) { doc in
            try x.parseLazily(doc)
            guard case .string(let s) = x.field(0), case .string(let e) = x.field(1) else { Issue.record("not strings"); return }
            #expect(String(decoding: s, as: UTF8.self) == "Mexico City")
            #expect(s.baseAddress! >= doc.baseAddress! && s.baseAddress! < doc.baseAddress! + doc.count)
            #expect(String(decoding: e, as: UTF8.self) == "a\"bé")  // unescaped, in the parser's buffer
        }
    }

    @Test func laterFieldsAfterAllAreFoundAreNotRead() throws {
        // The walk stops once every path is found: a broken tail is never looked at.
        // (Records in a log were validated when produced; this shows the reading stops.)
        let x = try JSONFieldExtractor(paths: ["a", "b"])
        try UnitJSONFieldsTests.padded(#"{"b":1,"a":"x","c":nope}"#) { doc in
            try x.parseLazily(doc)
            #expect(Found(x.field(0)) == .string(Array("x".utf8)) && Found(x.field(1)) == .integer(1))
        }
    }
}
