import Testing
import KappaTesting
@testable import KappaStreams

/// KeyIndex against a Dictionary: the same ids for the same bytes, across growth,
/// inline (≤ 16 bytes) and arena keys, and keys that differ only late or only in length.
@Suite struct StreamKeyIndexTests {
    static func bytes(_ s: String, _ body: (UnsafeRawBufferPointer) -> Int32) -> Int32 {
        var k = s
        return k.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    @Test(arguments: 0..<3)
    func matchesADictionary(seed: UInt64) {
        var random = SeededRandom(seed: 300 + seed)
        let index = KeyIndex()
        var model: [String: Int32] = [:]
        let stems = ["", "u", "u073046", "Mexico City", "0123456789abcdef", "0123456789abcdefX", "ride-", "é日本"]
        for _ in 0..<20_000 {
            var key = stems[Int.random(in: 0..<stems.count, using: &random)]
            for _ in 0..<Int.random(in: 0...3, using: &random) { key += String(Int.random(in: 0..<40, using: &random)) }
            // `find` (the prefetch stage's lookup) answers the model and never interns;
            // `prefetch` is a hint that changes nothing.
            let found = Self.bytes(key) { k in index.prefetch(k); return index.find(k) ?? -1 }
            #expect(found == model[key] ?? -1, "\(key)")
            #expect(index.count == model.count)
            let id = Self.bytes(key) { index.id(of: $0) }
            if let known = model[key] {
                #expect(id == known, "\(key)")
            } else {
                #expect(Int(id) == model.count, "\(key) is new: the next id")
                model[key] = id
            }
        }
        #expect(index.count == model.count)
        for (key, id) in model { #expect(index.key(Int(id)) == key) }
        // Ordered by UTF-8 bytes, as sorted byte arrays are.
        let sorted = index.sortedByKey(Array(0..<index.count)).map { index.key($0) }
        #expect(sorted.map { Array($0.utf8) } == model.keys.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func prefixesAndLengthsAreDistinct() {
        let index = KeyIndex()
        let keys = ["", "a", "a\0", "a\0\0", String(repeating: "k", count: 16), String(repeating: "k", count: 17),
                    String(repeating: "k", count: 16) + "a", String(repeating: "k", count: 16) + "b",
                    String(repeating: "k", count: 40) + "a", String(repeating: "k", count: 40) + "b"]
        let ids = keys.map { k in Self.bytes(k) { index.id(of: $0) } }
        #expect(Set(ids).count == keys.count)
        #expect(keys.map { k in Self.bytes(k) { index.id(of: $0) } } == ids)
    }
}
