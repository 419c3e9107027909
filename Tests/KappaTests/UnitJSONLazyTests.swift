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
            case .integer(let v): "integer \(v)"
            case .bool(let b): "\(b)"
            case .absent: "absent"
            case .null: "null"
            case .object: "an object"
            case .array: "an array"
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
            case 2: return pick(["0", "-0", "-5", "42", "999999999999999999", "-999999999999999999", "1000000000000000000",
                                 "9223372036854775807", "-9223372036854775808", "9223372036854775808", "18446744073709551615"])
            case 3: return pick(["2.50", "-0.0", "0.0", "1e5", "1E+2", "1.5E-3", "-1.0e-2", "5.0", "0.1", "123456789.123456789", "1e300",
                                 "0.35922337203627758088", "1234567890123456789.5", "4.9e-324", "1.7976931348623157e308"])
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

    /// The byte scan that serves top-level fields: where it answers, it answers as the
    /// DOM does; it declines only what it must (escapes in wanted keys or strings,
    /// numbers the parsers may judge differently), so ordinary events never reach the
    /// on-demand parser.
    @Test(arguments: 0..<4)
    func theByteScanAgreesWithTheDOMOrDeclines(seed: UInt64) throws {
        var g = Generator(random: SeededRandom(seed: 300 + seed), keys: ["time_utc", "city", "fare", "user_id", "t", "c", "x"])
        let paths = ["time_utc", "city", "fare", "user_id", "t"]
        let dom = try JSONFieldExtractor(paths: paths)
        let scan = try JSONFieldExtractor(paths: paths)
        var served = 0
        for _ in 0..<600 {
            let doc = g.object(depth: 0, unique: seed % 2 == 0)
            try UnitJSONFieldsTests.padded(doc) { bytes in
                try dom.parse(bytes)
                guard scan.scanOnly(bytes) else { return }
                served += 1
                for i in paths.indices { #expect(Found(scan.field(i)) == Found(dom.field(i)), "\(paths[i]) in \(doc)") }
            }
        }
        #expect(served > 200)
    }

    @Test func theByteScanServesOrdinaryEventsAndDeclinesTheRest() throws {
        let x = try JSONFieldExtractor(paths: ["time_utc", "user_id", "fare", "n", "ok"])
        let event = #"{"event_type":"ride_completed","time_utc":"1457741203.915452601","note":"a \"quoted\" \\ word","nested":{"user_id":"no","a":[1,{"b":"}"}]},"user_id":"u073046","fare":12.75,"n":-42,"ok":true,"tail":[}"#
        try UnitJSONFieldsTests.padded(event) { doc in
            #expect(x.scanOnly(doc))
            #expect(Found(x.field(0)) == .string(Array("1457741203.915452601".utf8)))
            #expect(Found(x.field(1)) == .string(Array("u073046".utf8)))  // the top-level one, not the nested one
            #expect(Found(x.field(2)) == .number((12.75).bitPattern, raw: Array("12.75".utf8)))
            #expect(Found(x.field(3)) == .integer(-42))
            #expect(Found(x.field(4)) == .bool(true))
        }
        for declined in [#"{"user_id":"u\u0030"}"#,  // an escape in a wanted string: unescaping is the parser's
                         #"{"user\u005fid":"u1"}"#,  // an escape in a key
                         #"{"n":12345678901234567890}"#,  // beyond int64
                         #"{"fare":1e400}"#,  // beyond a double
                         #"{"n":01}"#, #"[1]"#, #"{"n":1"#, #"{"n" 1}"#, #"{"a":"x"#] {
            try UnitJSONFieldsTests.padded(declined) { doc in #expect(!x.scanOnly(doc), "\(declined)") }
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
