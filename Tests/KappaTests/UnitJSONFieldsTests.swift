import Testing
import KappaCore
@testable import KappaJSON

/// Field extraction from one JSON event: what `produce` needs of every line.
@Suite struct UnitJSONFieldsTests {
    /// Runs `body` on `json` with `JSONFieldExtractor.padding` readable bytes after it.
    /// The padding is junk on purpose: only the document's own bytes may count.
    static func padded<T>(_ json: String, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let bytes = Array(json.utf8)
        let buffer = bytes + [UInt8](repeating: UInt8(ascii: "}"), count: JSONFieldExtractor.padding)
        return try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<bytes.count])) }
    }

    /// The outcome of `EventFields.extract`, copied out of the parser's buffers.
    struct Extracted: Equatable, CustomStringConvertible {
        var key: String?
        var nanos: Int64
        var description: String { "key \(key ?? "nil"), time \(nanos)" }
    }

    static func extract(_ json: String, key: String? = "user_id", time: String = "time_utc") throws -> Result<Extracted, BadEvent> {
        let fields = try EventFields(keyField: key, timeField: time, lineBytesMax: 1 << 16)
        return padded(json) { doc in
            fields.extract(doc).map { Extracted(key: $0.key.map { String(decoding: $0, as: UTF8.self) }, nanos: $0.time.rawValue) }
        }
    }

    @Test func stringKeyAndStringTime() throws {
        let r = try Self.extract(#"{"event_type":"login","time_utc":"1457741907.959400112","user_id":"u000001"}"#)
        #expect(r == .success(Extracted(key: "u000001", nanos: 1_457_741_907_959_400_112)))
    }

    @Test func numberTimeKeepsEveryDigit() throws {
        // As a Double this would be 1457741907.9594002: the raw token must be used.
        let r = try Self.extract(#"{"time_utc": 1457741907.959400112 , "user_id":"u1"}"#)
        #expect(r == .success(Extracted(key: "u1", nanos: 1_457_741_907_959_400_112)))
        let e = try Self.extract(#"{"time_utc":1.4577419079594001e9,"user_id":"u1"}"#)
        #expect(e == .success(Extracted(key: "u1", nanos: 1_457_741_907_959_400_100)))
    }

    @Test func integerTimeIsWholeSeconds() throws {
        let r = try Self.extract(#"{"time_utc":1457741907,"user_id":"u1"}"#)
        #expect(r == .success(Extracted(key: "u1", nanos: 1_457_741_907_000_000_000)))
    }

    @Test func isoTime() throws {
        let r = try Self.extract(#"{"time_utc":"2016-03-12T01:18:27.959400112+01:00","user_id":"u1"}"#)
        #expect(r == .success(Extracted(key: "u1", nanos: 1_457_741_907_959_400_112)))
    }

    @Test func integerKeyIsItsDecimalText() throws {
        #expect(try Self.extract(#"{"time_utc":"1","user_id":42}"#) == .success(Extracted(key: "42", nanos: 1_000_000_000)))
        #expect(try Self.extract(#"{"time_utc":"1","user_id":-7}"#) == .success(Extracted(key: "-7", nanos: 1_000_000_000)))
        #expect(try Self.extract(#"{"time_utc":"1","user_id":0}"#) == .success(Extracted(key: "0", nanos: 1_000_000_000)))
    }

    @Test func nonIntegerKeyIsItsSourceText() throws {
        #expect(try Self.extract(#"{"time_utc":"1","user_id":1.50}"#) == .success(Extracted(key: "1.50", nanos: 1_000_000_000)))
    }

    @Test func escapedStringKeyIsUnescaped() throws {
        let r = try Self.extract(#"{"time_utc":"1","user_id":"a\"b\\c\/d\u00e9\n\ud83d\ude00"}"#)
        #expect(r == .success(Extracted(key: "a\"b\\c/d\u{e9}\n\u{1F600}", nanos: 1_000_000_000)))
    }

    @Test func nestedKeyPaths() throws {
        let json = #"{"time_utc":"2","user_id":"u9","event_details":{"button_type":"buy","purchased_items":[{"sku":"sku-1","qty":2},{"sku":"sku-\"2\"","price":9.990}]}}"#
        #expect(try Self.extract(json, key: "event_details.purchased_items[0].sku") == .success(Extracted(key: "sku-1", nanos: 2_000_000_000)))
        #expect(try Self.extract(json, key: "event_details.purchased_items[1].sku") == .success(Extracted(key: "sku-\"2\"", nanos: 2_000_000_000)))
        #expect(try Self.extract(json, key: "event_details.button_type") == .success(Extracted(key: "buy", nanos: 2_000_000_000)))
        #expect(try Self.extract(json, key: "event_details.purchased_items[0].qty") == .success(Extracted(key: "2", nanos: 2_000_000_000)))
        #expect(try Self.extract(json, key: "event_details.purchased_items[1].price") == .success(Extracted(key: "9.990", nanos: 2_000_000_000)))
        #expect(try Self.extract(json, key: "event_details.purchased_items[2].sku") == .failure(.missingField("event_details.purchased_items[2].sku", what: "key")))
        #expect(try Self.extract(json, key: "event_details.nope") == .failure(.missingField("event_details.nope", what: "key")))
    }

    @Test func nestedNumberTimeKeepsEveryDigit() throws {
        let json = #"{"user_id":"u1","meta":{"times":[0, {"t": 1457741907.959400112}]}}"#
        #expect(try Self.extract(json, time: "meta.times[1].t") == .success(Extracted(key: "u1", nanos: 1_457_741_907_959_400_112)))
    }

    @Test func noKeyFieldMeansNilKey() throws {
        #expect(try Self.extract(#"{"time_utc":"3"}"#, key: nil) == .success(Extracted(key: nil, nanos: 3_000_000_000)))
    }

    @Test func invalidJSON() throws {
        for json in [#"{"time_utc":"1","user_id":"u1""#, "{", "", "not json", #"{"time_utc":"1","user_id":"u1"}x"#,
                     #"{"time_utc":"1","user_id":"u1",}"#, #"{'time_utc':'1'}"#] {
            let r = try Self.extract(json)
            guard case .failure(.invalidJSON) = r else {
                Issue.record("\(json) gave \(r), expected invalidJSON")
                continue
            }
        }
    }

    @Test func invalidUTF8IsInvalidJSON() throws {
        let fields = try EventFields(keyField: "user_id", timeField: "time_utc", lineBytesMax: 1 << 16)
        var bytes = Array(#"{"time_utc":"1","user_id":"u?"}"#.utf8)
        bytes[bytes.firstIndex(of: UInt8(ascii: "?"))!] = 0xFF
        bytes += [UInt8](repeating: 0, count: JSONFieldExtractor.padding)
        let count = bytes.count - JSONFieldExtractor.padding
        let r = bytes.withUnsafeBytes { fields.extract(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        guard case .failure(.invalidJSON) = r else {
            Issue.record("invalid UTF-8 gave \(r), expected invalidJSON")
            return
        }
    }

    @Test func nonObjectIsInvalidJSON() throws {
        for json in ["[1,2]", #""text""#, "42", "null", "true"] {
            #expect(try Self.extract(json) == .failure(.invalidJSON("the JSON value is not an object")), "\(json)")
        }
    }

    /// SPEC 2: a missing key field is a bad line; a null one is a keyless record.
    @Test func missingOrNullKey() throws {
        #expect(try Self.extract(#"{"time_utc":"1"}"#) == .failure(.missingField("user_id", what: "key")))
        #expect(try Self.extract(#"{"time_utc":"1","user_id":null}"#) == .success(Extracted(key: nil, nanos: 1_000_000_000)))
        let fields = try EventFields(keyField: "user_id", timeField: "time_utc", lineBytesMax: 1 << 16)
        let nullKey = Self.padded(#"{"time_utc":"1","user_id":null}"#) { fields.extract($0).map(\.nullKey) }
        #expect(nullKey == .success(true))
        let present = Self.padded(#"{"time_utc":"1","user_id":"u"}"#) { fields.extract($0).map(\.nullKey) }
        #expect(present == .success(false))
    }

    @Test func keyOfTheWrongType() throws {
        #expect(try Self.extract(#"{"time_utc":"1","user_id":{"id":1}}"#) == .failure(.wrongType("user_id", what: "key", found: "an object")))
        #expect(try Self.extract(#"{"time_utc":"1","user_id":[1]}"#) == .failure(.wrongType("user_id", what: "key", found: "an array")))
        #expect(try Self.extract(#"{"time_utc":"1","user_id":true}"#) == .failure(.wrongType("user_id", what: "key", found: "a boolean")))
    }

    @Test func missingNullOrBadTime() throws {
        #expect(try Self.extract(#"{"user_id":"u1"}"#) == .failure(.missingField("time_utc", what: "time")))
        #expect(try Self.extract(#"{"user_id":"u1","time_utc":null}"#) == .failure(.missingField("time_utc", what: "time")))
        #expect(try Self.extract(#"{"user_id":"u1","time_utc":{}}"#) == .failure(.wrongType("time_utc", what: "time", found: "an object")))
        #expect(try Self.extract(#"{"user_id":"u1","time_utc":"yesterday"}"#) == .failure(.badTime("time_utc", .malformed)))
        #expect(try Self.extract(#"{"user_id":"u1","time_utc":""}"#) == .failure(.badTime("time_utc", .empty)))
        #expect(try Self.extract(#"{"user_id":"u1","time_utc":"1.0000000001"}"#) == .failure(.badTime("time_utc", .tooPrecise)))
        #expect(try Self.extract(#"{"user_id":"u1","time_utc":1.0000000001}"#) == .failure(.badTime("time_utc", .tooPrecise)))
        #expect(try Self.extract(#"{"user_id":"u1","time_utc":18446744073709551615}"#) == .failure(.badTime("time_utc", .outOfRange)))
        #expect(try Self.extract(#"{"user_id":"u1","time_utc":9223372037}"#) == .failure(.badTime("time_utc", .outOfRange)))
    }

    @Test func timeIsCheckedBeforeKey() throws {
        // Both are bad: the time's failure is the one reported.
        #expect(try Self.extract(#"{"user_id":null}"#) == .failure(.missingField("time_utc", what: "time")))
    }

    @Test func extractorReusesItsParserAcrossDocuments() throws {
        let fields = try EventFields(keyField: "user_id", timeField: "time_utc", lineBytesMax: 1 << 16)
        let docs = [(#"{"time_utc":1.5,"user_id":"a"}"#, "a", Int64(1_500_000_000)),
                    (#"{"user_id":"bb","time_utc":"2"}"#, "bb", Int64(2_000_000_000)),
                    (#"{"user_id":3,"time_utc":3.25}"#, "3", Int64(3_250_000_000))]
        for (json, key, nanos) in docs {
            let got = Self.padded(json) { doc in
                fields.extract(doc).map { Extracted(key: $0.key.map { String(decoding: $0, as: UTF8.self) }, nanos: $0.time.rawValue) }
            }
            #expect(got == .success(Extracted(key: key, nanos: nanos)), "\(json)")
        }
    }

    @Test(arguments: ["", "a..b", "a[]", "a[x]", "a[1", ".a"])
    func malformedPathsAreRefused(_ path: String) {
        #expect(throws: KappaError.self, "\(path)") { _ = try JSONFieldExtractor(paths: [path]) }
    }

    @Test func extractorReportsFieldKinds() throws {
        let x = try JSONFieldExtractor(paths: ["s", "i", "f", "n", "b", "o", "a", "missing"])
        try Self.padded(#"{"s":"x","i":-5,"f":2.50,"n":null,"b":false,"o":{},"a":[]}"#) { doc in
            try x.parse(doc)
            guard case .string(let s) = x.field(0) else { Issue.record("s is \(x.field(0).kindName)"); return }
            #expect(Array(s) == Array("x".utf8))
            guard case .integer(-5) = x.field(1) else { Issue.record("i is \(x.field(1).kindName)"); return }
            guard case .number(2.5, let raw) = x.field(2) else { Issue.record("f is \(x.field(2).kindName)"); return }
            #expect(String(decoding: raw, as: UTF8.self) == "2.50")
            guard case .null = x.field(3) else { Issue.record("n is \(x.field(3).kindName)"); return }
            guard case .bool(false) = x.field(4) else { Issue.record("b is \(x.field(4).kindName)"); return }
            guard case .object = x.field(5) else { Issue.record("o is \(x.field(5).kindName)"); return }
            guard case .array = x.field(6) else { Issue.record("a is \(x.field(6).kindName)"); return }
            guard case .absent = x.field(7) else { Issue.record("missing is \(x.field(7).kindName)"); return }
        }
    }
}
