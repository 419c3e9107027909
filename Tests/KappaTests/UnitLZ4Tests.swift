import Foundation
import Testing
@testable import KappaCore
@testable import KappaFormat
import KappaTesting

/// LZ4Codec writes standard LZ4 frames (what Kafka's codec 3 reads) and reads any.
/// Checked against the reference `lz4` command-line tool.
@Suite struct UnitLZ4Tests {
    static func compress(_ data: [UInt8], codec: LZ4Codec = LZ4Codec()) -> [UInt8] {
        let out = ByteWriter(capacity: 64)
        data.withUnsafeBytes { codec.compress($0, appendingTo: out) }
        return Array(out.bytes)
    }

    /// nil and the output on success, else the reason.
    static func decompress(_ frame: [UInt8], codec: LZ4Codec = LZ4Codec(), limit: Int = Limits.batchInflatedBytesMax) -> Result<[UInt8], BatchDecodeError> {
        let out = ByteWriter(capacity: 64)
        if let reason = frame.withUnsafeBytes({ codec.decompress($0, into: out, limit: limit) }) {
            return .failure(BatchDecodeError(reason))
        }
        return .success(Array(out.bytes))
    }

    /// Runs `lz4 ARGS` with `input` written to a temporary file; returns stdout.
    static func lz4CLI(_ args: [String], input: [UInt8]) throws -> [UInt8] {
        let dir = try TemporaryDirectory(prefix: "kappa-lz4")
        return try withExtendedLifetime(dir) {
            let inPath = dir.path + "/in"
            try Data(input).write(to: URL(fileURLWithPath: inPath))
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["lz4"] + args + ["-c", inPath]
            let stdout = Pipe()
            let stderr = Pipe()
            p.standardOutput = stdout
            p.standardError = stderr
            try p.run()
            let data = stdout.fileHandleForReading.readDataToEndOfFile()
            let err = stderr.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw KappaError(.io, "lz4 \(args) exited \(p.terminationStatus): \(String(decoding: err, as: UTF8.self))")
            }
            return Array(data)
        }
    }

    static func samples() -> [(String, [UInt8])] {
        var rng = SeededRandom(seed: 0x1245_0001)
        var json: [UInt8] = []
        for i in 0..<3000 {
            json += Array(#"{"event_type":"ride_completed","user_id":"u\#(i % 97)","fare":\#(i % 50).25}"#.utf8)
            json.append(0x0A)
        }
        return [
            ("empty", []),
            ("one byte", [42]),
            ("zeros 200 KiB", [UInt8](repeating: 0, count: 200 << 10)),
            ("random 100 KiB", rng.bytes(100 << 10)),
            ("json lines", json),
            ("64 KiB exactly", rng.bytes(64 << 10)),
        ]
    }

    @Test func lz4CommandLineToolDecodesOurFrames() throws {
        for (name, data) in Self.samples() {
            let frame = Self.compress(data)
            let back = try Self.lz4CLI(["-d", "-q"], input: frame)
            #expect(back == data, "\(name): lz4 -d gave \(back.count) bytes, expected \(data.count)")
        }
    }

    @Test func weDecodeTheCommandLineToolsFrames() throws {
        // Default settings (4 MiB blocks, content checksum), Kafka-like 64 KiB blocks, and
        // block checksums and linked blocks: a reader must take any standard frame.
        let settings: [[String]] = [["-q"], ["-q", "-B4", "--no-frame-crc"], ["-q", "-B4", "-BD", "-BX"], ["-q", "-9", "--content-size"]]
        for (name, data) in Self.samples() {
            for s in settings {
                let frame = try Self.lz4CLI(s, input: data)
                #expect(Self.decompress(frame) == .success(data), "\(name) compressed by lz4 \(s)")
            }
        }
    }

    @Test func roundTripsWithOneReusedCodec() {
        let codec = LZ4Codec()
        var rng = SeededRandom(seed: 0x1245_0002)
        for i in 0..<200 {
            let data = rng.chance(50) ? rng.bytes(rng.int(0...70_000)) : [UInt8](repeating: UInt8(i), count: rng.int(0...300_000))
            let frame = Self.compress(data, codec: codec)
            #expect(Self.decompress(frame, codec: codec) == .success(data), "round \(i), \(data.count) bytes, \(rng)")
        }
    }

    @Test func truncatedAndTrailingFramesAreRefused() {
        var rng = SeededRandom(seed: 0x1245_0003)
        let data = rng.bytes(100_000)
        let frame = Self.compress(data)
        let codec = LZ4Codec()
        for cut in [0, 3, 4, 6, 7, 100, frame.count / 2, frame.count - 4, frame.count - 1] {
            guard case .failure = Self.decompress(Array(frame.prefix(cut)), codec: codec) else {
                Issue.record("a frame cut to \(cut) of \(frame.count) bytes decoded")
                continue
            }
            // The codec must be usable again after any refusal.
            #expect(Self.decompress(frame, codec: codec) == .success(data), "after a frame cut to \(cut)")
        }
        guard case .failure = Self.decompress(frame + [0], codec: codec) else {
            Issue.record("a byte after the frame went unnoticed")
            return
        }
        #expect(Self.decompress(frame, codec: codec) == .success(data))
    }

    @Test func inflationLimitIsEnforced() throws {
        let data = [UInt8](repeating: 0, count: 1 << 20)
        let frame = Self.compress(data)
        guard case .failure = Self.decompress(frame, limit: 128 << 10) else {
            Issue.record("1 MiB inflated under a 128 KiB limit")
            return
        }
        #expect(Self.decompress(frame, limit: 2 << 20) == .success(data))
        // A frame declaring 4 MiB blocks that holds little inflates under a smaller limit.
        let small = [UInt8](repeating: 1, count: 100 << 10)
        let cli = try Self.lz4CLI(["-q", "-B7", "-BI"], input: small)
        #expect(Self.decompress(cli, limit: 1 << 20) == .success(small))
    }

    /// A codec that refused an over-limit frame is reused for the next batch (one codec
    /// per reader thread): it must decode a good frame next, not fail on leftover state.
    @Test func codecRecoversAfterRefusingAnOverLimitFrame() {
        let codec = LZ4Codec()
        let bomb = Self.compress([UInt8](repeating: 0, count: 1 << 20))
        let good = Array("a small, valid batch".utf8)
        let goodFrame = Self.compress(good)
        guard case .failure = Self.decompress(bomb, codec: codec, limit: 128 << 10) else {
            Issue.record("1 MiB inflated under a 128 KiB limit")
            return
        }
        #expect(Self.decompress(goodFrame, codec: codec) == .success(good))
    }

    /// The block map `decompress` records: for frames of independent blocks without block
    /// checksums (ours, and lz4's with -BI at every block size), the blocks chain through
    /// the frame, tile the inflated bytes, and each inflates alone (any prefix of it) to
    /// exactly its part; frames of linked blocks or with block checksums get no map.
    @Test func blockMapLocatesEveryBlockAndEachInflatesAlone() throws {
        var rng = SeededRandom(seed: 0x1245_0004)
        let mappable: [[String]] = [["-q", "-B4", "-BI", "--no-frame-crc"], ["-q", "-B5", "-BI"], ["-q", "-B7", "-BI", "--content-size"]]
        let unmappable: [[String]] = [["-q", "-B4", "-BD"], ["-q", "-B4", "-BI", "-BX"]]
        for (name, data) in Self.samples() + [("json 300 KiB", Array(Self.samples()[4].1.prefix(300 << 10)) + rng.bytes(70_000))] {
            var frames = [("ours", Self.compress(data))]
            for s in mappable { frames.append(("lz4 \(s)", try Self.lz4CLI(s, input: data))) }
            for (how, frame) in frames {
                let codec = LZ4Codec()
                #expect(Self.decompress(frame, codec: codec) == .success(data), "\(name), \(how)")
                let blocks = codec.blocks
                if data.isEmpty { #expect(blocks.isEmpty); continue }
                try #require(!blocks.isEmpty, "\(name), \(how): no map")
                #expect(blocks.first?.inflatedStart == 0)
                for (k, b) in blocks.enumerated() {
                    let end = k + 1 < blocks.count ? blocks[k + 1].inflatedStart : data.count
                    if k + 1 < blocks.count { #expect(Int(b.frameOffset) + b.frameBytes == Int(blocks[k + 1].frameOffset), "\(name), \(how): block \(k)") }
                    let bytes = Array(frame[Int(b.frameOffset)..<(Int(b.frameOffset) + b.frameBytes)])
                    let out = ByteWriter()
                    for count in Set([1, end - b.inflatedStart, rng.int(1...(end - b.inflatedStart))]) {
                        let ok = bytes.withUnsafeBytes { LZ4Codec.inflatePrefix(ofBlock: $0, count: count, into: out) }
                        #expect(ok && Array(out.bytes) == Array(data[b.inflatedStart..<(b.inflatedStart + count)]), "\(name), \(how): block \(k), \(count) bytes")
                    }
                    // More than the block holds, or a damaged block: refused, never out of bounds.
                    #expect(!bytes.withUnsafeBytes { LZ4Codec.inflatePrefix(ofBlock: $0, count: end - b.inflatedStart + 1, into: out) })
                    #expect(!bytes.dropLast().withUnsafeBytes { LZ4Codec.inflatePrefix(ofBlock: $0, count: 1, into: out) })
                    var bad = bytes
                    for _ in 0..<20 { bad[rng.int(0...(bad.count - 1))] = UInt8(truncatingIfNeeded: rng.next()) }
                    _ = bad.withUnsafeBytes { LZ4Codec.inflatePrefix(ofBlock: $0, count: end - b.inflatedStart, into: out) }
                }
            }
            for s in unmappable {
                let codec = LZ4Codec()
                let frame = try Self.lz4CLI(s, input: data)
                #expect(Self.decompress(frame, codec: codec) == .success(data), "\(name), lz4 \(s)")
                // lz4 writes a frame of one block as independent whatever it was asked.
                let independent = frame.count > 4 && frame[4] & 0x20 != 0 && frame[4] & 0x10 == 0
                #expect(codec.blocks.isEmpty != independent || data.isEmpty, "\(name), lz4 \(s): a map of blocks that do not inflate alone, or none")
            }
        }
    }

    /// Kappa writes independent 256 KiB blocks: a record read alone inflates at most one
    /// of them (a 512 KiB batch has two).
    @Test func framesUseIndependentQuarterMiBBlocks() {
        let frame = Self.compress([UInt8](repeating: 7, count: 600 << 10))
        #expect(frame[5] >> 4 & 7 == 5, "BD block size id")
        #expect(frame[4] & 0x20 != 0, "FLG block independence")
    }

    /// The block the batch fuzzer found: its 7th sequence copies with offset 0, which the
    /// LZ4 format forbids and liblz4 1.9.4 inflates anyway (from whatever the output
    /// buffer held). `matchOffsetsValid` refuses it — and a match reaching back before
    /// the block's start — and accepts every frame liblz4 writes, linked blocks included.
    @Test func matchOffsetsOutsideTheOutputAreFound() throws {
        let block: [UInt8] = [228, 0, 0, 0, 129, 168, 4, 0, 0, 0, 14, 117, 48, 1, 0, 242, 52, 240, 3, 123, 34, 101, 118, 101, 110, 116, 95, 116, 121, 112, 101, 34, 58, 34, 114, 105, 100, 101, 95, 99, 111, 109, 112, 108, 101, 116, 101, 100, 34, 44, 34, 116, 105, 109, 101, 95, 117, 116, 99, 34, 58, 34, 49, 52, 53, 55, 55, 52, 55, 56, 53, 51, 46, 48, 56, 50, 56, 49, 57, 56, 49, 52, 34, 44, 51, 0, 32, 105, 100, 61, 0, 1, 84, 0, 162, 48, 48, 53, 34, 44, 34, 117, 115, 101, 114, 22, 0, 2, 107, 0, 132, 50, 34, 4, 0, 0, 0, 0, 0, 0, 0, 16, 100, 41, 0, 16, 50, 42, 0, 240, 0, 99, 105, 116, 121, 34, 58, 34, 78, 101, 119, 32, 89, 111, 114, 107, 82, 0, 137, 101, 113, 117, 101, 115, 116, 101, 100, 121, 0, 250, 7, 53, 48, 53, 55, 46, 55, 52, 48, 56, 53, 53, 52, 53, 49, 34, 44, 34, 115, 116, 97, 114, 116, 35, 0, 27, 52, 156, 0, 240, 26, 102, 97, 114, 101, 34, 58, 53, 53, 46, 50, 53, 44, 34, 114, 97, 116, 105, 110, 103, 34, 58, 110, 117, 108, 108, 125, 2, 16, 107, 97, 112, 112, 97, 46, 110, 115, 8, 0, 6, 26, 240]
        let header: [UInt8] = [4, 34, 77, 24, 0x60, 0x40, 0]  // independent 64 KiB blocks (HC unchecked here)
        let end: [UInt8] = [0, 0, 0, 0]
        #expect(!(header + block + end).withUnsafeBytes { LZ4Codec.matchOffsetsValid($0) })
        // 8 literals, then a match 9 back: before the block's start.
        let tooFar: [UInt8] = [0x80] + Array("abcdefgh".utf8) + [9, 0] + [0x50] + Array("tail!".utf8)
        let tooFarFrame = header + [UInt8(tooFar.count), 0, 0, 0] + tooFar + end
        #expect(!tooFarFrame.withUnsafeBytes { LZ4Codec.matchOffsetsValid($0) })
        // The same 8 back is a valid copy.
        var near = tooFar
        near[9] = 8
        #expect((header + [UInt8(near.count), 0, 0, 0] + near + end).withUnsafeBytes { LZ4Codec.matchOffsetsValid($0) })
        for (name, data) in Self.samples() {
            #expect(Self.compress(data).withUnsafeBytes { LZ4Codec.matchOffsetsValid($0) }, "\(name), ours")
            for s in [["-q"], ["-q", "-B4", "-BD"], ["-q", "-B4", "-BD", "-BX"], ["-q", "-9", "-B4", "-BD"]] {
                let frame = try Self.lz4CLI(s, input: data)
                #expect(frame.withUnsafeBytes { LZ4Codec.matchOffsetsValid($0) }, "\(name), lz4 \(s)")
            }
        }
    }
}
