import Testing
import KappaCore
import KappaIO
@testable import KappaFormat
@testable import KappaJSON
@testable import KappaLog
import KappaTesting
@testable import KappaStreams

/// What the fuzzers (Fuzz/, `tools/fuzz.sh`) found, replayed as unit tests. Each test
/// names its input in `Fuzz/Corpus/TARGET/crash-*`, which `tools/fuzz.sh regress` (CI)
/// also replays through the fuzz target itself.
@Suite struct FuzzRegressionTests {
    // MARK: - fuzz-json: the lazy extraction jobs run must agree with produce's

    /// Parses `json` with the strict (DOM) and the lazy (on-demand) extraction of
    /// `paths`: nil for a refusal, else the fields found.
    static func extract(_ paths: [String], _ json: String) throws -> (strict: [UnitJSONLazyTests.Found]?, lazy: [UnitJSONLazyTests.Found]?) {
        let x = try JSONFieldExtractor(paths: paths)
        return UnitJSONFieldsTests.padded(json) { doc in
            let strict = (try? x.parse(doc)).map { paths.indices.map { UnitJSONLazyTests.Found(x.field($0)) } }  // nil: refused
            let lazy = (try? x.parseLazily(doc)).map { paths.indices.map { UnitJSONLazyTests.Found(x.field($0)) } }  // nil: refused
            return (strict, lazy)
        }
    }

    static let eventPaths = ["event_details.button_type", "event_details.purchased_items[0].sku", "a.b.c", "a[1]"]

    /// crash-lazy-reads-on-after-malformed-value: a malformed value inside the object a
    /// path descends into was taken for "absent", and the next path read on through the
    /// broken iterator (a null dereference in simdjson). Now the error ends the
    /// extraction: the record is refused (a job dead-letters it), nothing crashes.
    @Test func lazyExtractionRefusesAMalformedValueItDescendsInto() throws {
        let json = #"{"event_type":"button_pressed","time_utc":"1457745057.740855451","user_id":"u000002","device_utc,user_id,eve_id":"dev-b7a9165c","event_details":{"button_type":"request_ride","screen":"home","ride_type":"rebuX","position":{"x":581,"y":1640},"app_version":"5.8.2","os":"ios 9.2.1","n.2.1","netwoi"}}"#
        let r = try Self.extract(Self.eventPaths, json)
        #expect(r.strict == nil && r.lazy == nil)
        // The same with one path per first key (the one-pass walk), looking past it.
        let one = try Self.extract(["event_details.network", "time_utc"], json)
        #expect(one.strict == nil && one.lazy == nil)
    }

    /// crash-lazy-key-with-quote: the on-demand parser compares a key raw up to its
    /// closing quote, so a wanted key holding a quote (`a":{"b`) matched inside
    /// `{"a":{"b":…}}`: a field the strict parse rightly calls absent was an object to
    /// the jobs. Keys with a quote, a backslash or a control byte use the DOM parser.
    @Test func lazyExtractionOfAKeyWithAQuoteAgreesWithTheStrictParse() throws {
        let json = #"{"event_taevtcils":{"scr":"e"}}"#
        for paths in [[#"event_taevtcils":{"scr"#], [#"x.a"b"#, "event_taevtcils.scr"]] {
            let r = try Self.extract(paths, json)
            #expect(r.strict != nil && r.lazy == r.strict, "\(paths)")
        }
        #expect(try Self.extract([#"event_taevtcils":{"scr"#], json).lazy?.first == UnitJSONLazyTests.Found.absent)
    }

    /// crash-strict-raw-number-of-escaped-key: the strict parse reads a non-integer
    /// number's exact digits with a second, on-demand walk, which compared keys raw: under
    /// an escaped key (`"user\u005fid":1e-400`) it found nothing, and produce saw a number
    /// without digits where the jobs saw "1e-400". Keys are compared unescaped there too.
    @Test func strictParseReadsTheDigitsOfANumberUnderAnEscapedKey() throws {
        let json = #"{"time_utc":"400112","user\u005fid":1e-400,"x":{"p\u0071":2.50}}"#
        let r = try Self.extract(["user_id", "x.pq"], json)
        #expect(r.strict != nil && r.lazy == r.strict)
        guard case .number(_, let raw)? = r.strict?.first, case .number(_, let raw2)? = r.strict?.last else {
            Issue.record("not numbers: \(String(describing: r.strict))"); return
        }
        #expect(raw == Array("1e-400".utf8) && raw2 == Array("2.50".utf8))
    }

    /// crash-lazy-double-of-20-digits: simdjson 3.0's on-demand get_double() wraps a
    /// mantissa of more than 19 digits (0.35922337203627758088 read as 0.17475593129918207),
    /// and window jobs sum the double: a silently wrong sum. Such numbers take the DOM
    /// parser's correctly rounded value.
    @Test func lazyExtractionOfANumberOfMoreThan19DigitsTakesTheDOMValue() throws {
        let json = #"{"epe":"ri_","fare":0.35922337203627758088,"fare":4.352208,"tip":12345678901234567890.5e-2}"#
        let r = try Self.extract(["fare", "tip"], json)
        #expect(r.strict != nil && r.lazy == r.strict)
        guard case .number(let fare, _)? = r.lazy?.first, case .number(let tip, _)? = r.lazy?.last else {
            Issue.record("not numbers: \(String(describing: r.lazy))"); return
        }
        #expect(Double(bitPattern: fare) == 0.35922337203627758088)
        #expect(Double(bitPattern: tip) == 123456789012345678.905)
        // An integer beyond 64 bits: both refuse the record (produce never stored one).
        let big = try Self.extract(["n"], #"{"n":35922337203627758088}"#)
        #expect(big.strict == nil && big.lazy == nil)
    }

    /// crash-lazy-second-lookup-after-malformed-value: simdjson asserted when a second
    /// lookup in one object followed a lookup that hit a malformed value.
    @Test func lazyExtractionSurvivesLookupsAfterAMalformedValue() throws {
        let json = #"{"event_type":"se[rch","time_ttc":"2915490268.129112117","user_i,d":"u000002","device_id":"dev-b7a9165c","eventevice_id":"dev-b7a9165c","event_details":{"query":"Wrigyle Field","p_version":"5.-08.2","os":"ios 9.2.1c":"145ork":"lte"}}"#
        let r = try Self.extract(Self.eventPaths, json)
        #expect(r.strict == nil && r.lazy == nil)
    }

    /// crash-lazy-decimal-of-19-digits-is-zero: simdjson 3.0's on-demand get_number()
    /// gives 0.0 for a decimal of 19 or more digits; windows summed 0 where produce saw
    /// the value.
    @Test func lazyExtractionReadsLongDecimals() throws {
        for number in ["1184467440737095516163.5", "1234567890123456789.5", "12345678901234567890.25"] {
            let r = try Self.extract(["time_utc", "city", "fare"], #"{"event_type":"16.137548510","fare":\#(number),"rating":5}"#)
            #expect(r.strict != nil && r.lazy == r.strict, "\(number): strict \(String(describing: r.strict)), lazy \(String(describing: r.lazy))")
            guard case .number(let bits, _)? = r.lazy?[2] else { Issue.record("\(number): not a number"); continue }
            #expect(Double(bitPattern: bits) == Double(number)!)
        }
    }

    /// crash-lazy-refuses-tiny-exponent: on-demand get_double() (which reading long
    /// decimals needs, above) refuses a number the DOM parser reads as 0.0, though the
    /// record was valid when produced: the lazy extraction hands any error to the DOM
    /// parser. (Found while fixing the test above; the code before it did not refuse.)
    @Test func lazyExtractionTakesWhatTheDOMParserTakes() throws {
        let json = #"{"evZent_type":"ri'de_compd","ti-e_utc":"291558039151.101e-4005528836","fare":444444444444444444444400001e-40000000000007154385578160670491,"rating":5}"#
        let r = try Self.extract(["time_utc", "city", "fare"], json)
        #expect(r.strict != nil && r.lazy == r.strict)
    }

    /// crash-lazy-escaped-{top-level,duplicate,nested}-key: simdjson's on-demand lookups
    /// compare keys raw, so `"user\u005fid"` was the key field to produce (DOM, which
    /// unescapes) and absent to the jobs: misrouted or dead-lettered records, and with
    /// a duplicate key the two saw different event times.
    @Test(arguments: [
        (["time_utc", "user_id"], #"{"time_utc":"1457741907.959400112","user\u005fid":"u1"}"#),
        (["time_utc", "user_id"], #"{"time\u005futc":"1457741907","user_id":"u1","time_utc":"5"}"#),
        (["event_details.button_type", "a.b.c"], #"{"event_details":{"button\u005ftype":"x","button_type":"y"},"a":{"b":{"\u0063":1}}}"#),
        (["\u{E9}t\u{E9}", "x"], #"{"\u00e9t\u00e9":1,"x":"\u0078"}"#),
    ])
    func lazyExtractionUnescapesKeysAsTheDOMParserDoes(_ paths: [String], _ json: String) throws {
        let r = try Self.extract(paths, json)
        #expect(r.strict != nil && r.lazy == r.strict, "strict \(String(describing: r.strict)), lazy \(String(describing: r.lazy))")
        #expect(r.strict?.contains(.absent) == false)
    }

    // MARK: - fuzz-segment: a recovery point the log disagrees with

    static let tp = TopicPartition("t", 0)

    /// A partition of three batches (two records each) written with `--fsync always`,
    /// then a power loss: no published end is trusted; recovery starts from the
    /// recovery point. Returns the segment's bytes too.
    static func restartedPartition() throws -> (SimulatedFileSystem, DataDirectory, log: [UInt8]) {
        let fs = SimulatedFileSystem(seed: 11)
        let data = DataDirectory(root: "/disk", fileSystem: fs)
        try data.createTopic("t", config: TopicConfig(partitions: 1, compression: .none))
        let writer = try PartitionWriter(directory: data, topicPartition: tp, config: try data.topicConfig("t"), fsync: .always, clock: ManualClock())
        let codec = LZ4Codec()
        for i in 0..<3 {
            let sealed = SealedBatches()
            sealed.seal([SimulatedCrashTests.record(2 * i, bytes: 40), SimulatedCrashTests.record(2 * i + 1, bytes: 40)], compression: .none, codec: codec)
            try writer.append(sealed)
        }
        try writer.close()
        fs.restart(.powerLoss)
        let log = try #require(fs.contents(SegmentFiles.logPath(data.partitionPath(tp), .zero)))
        return (fs, data, log)
    }

    /// Makes `point` the partition's newest recovery point copy (a valid CRC).
    static func setRecoveryPoint(_ point: LogPoint, _ fs: SimulatedFileSystem, _ data: DataDirectory) throws {
        let copy = RecoveryPoint(point: point, sequence: 1_000)  // newer than any the writer wrote; slot 0
        let file = try fs.openFile(RecoveryPoint.path(data.partitionPath(tp)), mode: .readWrite)
        try file.write(copy.encoded(), at: 0)
        try file.sync()
    }

    /// crash-rp-inside-first-batch: a recovery point past bytes of its segment but at
    /// its base offset (inside the first batch) made recovery derive a tail of bytes
    /// without offsets, and the writer asserted ("malformed tail"). Such a copy is no
    /// recovery point: the other copy (or none) counts.
    @Test func aRecoveryPointInsideTheFirstBatchIsIgnored() throws {
        let (fs, data, log) = try Self.restartedPartition()
        let inside = RecoveryPoint(point: LogPoint(segmentBase: .zero, position: FilePosition(100), offset: .zero), sequence: 1_000)
        #expect(inside.encoded().withUnsafeBytes { RecoveryPoint.decode(slot: $0) } == nil)
        try Self.setRecoveryPoint(inside.point, fs, data)
        #expect(try RecoveryPoint.read(fs, partitionDirectory: data.partitionPath(Self.tp))?.sequence ?? 0 < 1_000)
        let writer = try PartitionWriter(directory: data, topicPartition: Self.tp, config: try data.topicConfig("t"), fsync: .always, clock: ManualClock())
        #expect(writer.nextOffset == Offset(6) && writer.recoveries.isEmpty)
        #expect(fs.contents(SegmentFiles.logPath(data.partitionPath(Self.tp), .zero)) == log)
    }

    /// crash-rp-offset-ahead-of-log: a recovery point at the end of the log naming a
    /// higher offset than the batches reach. The writer appended at the log's real next
    /// offset, the recovery point stayed ahead, and the next writer after a restart cut
    /// the acknowledged batch as torn. Now the disagreement is corruption: reported,
    /// nothing cut, nothing appended after it.
    @Test func aRecoveryPointAheadOfTheLogIsCorruption() throws {
        let (fs, data, log) = try Self.restartedPartition()
        try Self.setRecoveryPoint(LogPoint(segmentBase: .zero, position: FilePosition(Int64(log.count)), offset: Offset(9)), fs, data)
        let error = #expect(throws: KappaError.self) {
            _ = try PartitionWriter(directory: data, topicPartition: Self.tp, config: try data.topicConfig("t"), fsync: .always, clock: ManualClock())
        }
        #expect(error?.code == .corruptData)
        #expect(error?.message.contains("recovery point says offset 9 at position \(log.count), but the batches before it end at offset 6") == true)
        #expect(fs.contents(SegmentFiles.logPath(data.partitionPath(Self.tp), .zero)) == log)
        // Readers report it too, rather than reading to a point the log does not have.
        let reader = try PartitionReader(directory: data, topicPartition: Self.tp)
        #expect(throws: KappaError.self) { _ = try reader.readAll(from: .zero) }
    }

    /// Found while reading fuzz-segment's finding crash-model-trusted-end-without-rp (a
    /// fault of the fuzzer's model: without a recovery point it protected the last
    /// segment's start, where the writer rightly cuts past a trusted end): the published
    /// end (this boot) at the end of segment 0 and the recovery point at the start of
    /// segment 6, which exists empty. Recovery trusted the end and moved the point's own
    /// segment aside as "created by an append that did not finish". An end behind the
    /// recovery point's segment is not trusted now; recovery starts from the point.
    /// A fresh one-partition topic on a simulated disk, with a writer opener and a
    /// two-record batch appender (records 2i and 2i + 1).
    struct Disk {
        let fs: SimulatedFileSystem
        let data: DataDirectory
        var dir: String { data.partitionPath(FuzzRegressionTests.tp) }

        init(seed: UInt64) throws {
            fs = SimulatedFileSystem(seed: seed)
            data = DataDirectory(root: "/disk", fileSystem: fs)
            try data.createTopic("t", config: TopicConfig(partitions: 1, compression: .none))
        }

        func open() throws -> PartitionWriter {
            try PartitionWriter(directory: data, topicPartition: FuzzRegressionTests.tp, config: try data.topicConfig("t"), fsync: .always, clock: ManualClock())
        }

        func append(_ writer: PartitionWriter, _ i: Int) throws {
            let sealed = SealedBatches()
            sealed.seal([SimulatedCrashTests.record(2 * i, bytes: 40), SimulatedCrashTests.record(2 * i + 1, bytes: 40)], compression: .none, codec: LZ4Codec())
            try writer.append(sealed)
        }
    }

    @Test func aPublishedEndBeforeTheRecoveryPointsSegmentIsNotTrusted() throws {
        let disk = try Disk(seed: 12)
        let (fs, data, dir) = (disk.fs, disk.data, disk.dir)
        func open() throws -> PartitionWriter { try disk.open() }
        func append(_ writer: PartitionWriter, _ i: Int) throws { try disk.append(writer, i) }
        let first = try open()
        for i in 0..<3 { try append(first, i) }
        try first.close()
        let log = try #require(fs.contents(SegmentFiles.logPath(dir, .zero)))
        let empty = try fs.openFile(SegmentFiles.logPath(dir, Offset(6)), mode: .createNew)
        try empty.sync()
        try fs.syncDirectory(dir)
        try Self.setRecoveryPoint(LogPoint(segmentBase: Offset(6), position: .zero, offset: Offset(6)), fs, data)

        let writer = try open()
        #expect(writer.nextOffset == Offset(6))
        #expect(writer.recoveries.isEmpty, "\(writer.recoveries)")
        #expect(fs.contents(SegmentFiles.logPath(dir, Offset(6))) != nil, "the recovery point's segment was moved aside")
        #expect(fs.contents(SegmentFiles.logPath(dir, .zero)) == log)
        try append(writer, 3)
        try writer.close()
        fs.restart(.powerLoss)
        let again = try open()
        #expect(again.nextOffset == Offset(8))
        let reader = try PartitionReader(directory: data, topicPartition: Self.tp)
        #expect(try reader.readAll(from: .zero).records.count == 8)
    }

    /// crash-trusted-end-below-rp-position: the published end (this boot) and the
    /// recovery point in one segment, the end at a lower position (bytes after it that
    /// the point says are durable). Recovery trusted the end and cut below the point.
    /// Now the end is not trusted: nothing at or below the point is cut.
    @Test func aPublishedEndBelowTheRecoveryPointsPositionCutsNothingBelowIt() throws {
        let disk = try Disk(seed: 13)
        let writer = try disk.open()
        for i in 0..<3 { try disk.append(writer, i) }
        try writer.close()
        let path = SegmentFiles.logPath(disk.dir, .zero)
        let log = try #require(disk.fs.contents(path))
        let tail = try disk.fs.openFile(path, mode: .readWrite)
        try [UInt8](repeating: 0xA5, count: 200).withUnsafeBytes { try tail.write($0, at: Int64(log.count)) }
        try tail.sync()
        let point = Int64(log.count + 100)
        try FuzzRegressionTests.setRecoveryPoint(LogPoint(segmentBase: .zero, position: FilePosition(point), offset: Offset(6)), disk.fs, disk.data)
        _ = try? disk.open()  // may refuse (damage below the point) or cut past it; never below
        let after = try #require(disk.fs.contents(path))
        #expect(after.count >= Int(point), "recovery cut segment 0 at \(after.count), below the recovery point's position \(point)")
        #expect(Array(after.prefix(log.count)) == log)
    }
}

// MARK: - fuzz-repartition: records from disk are checked, never trusted

@Suite struct FuzzRegressionRepartitionTests {
    /// crash-event-offset-delta-overflows: an events record whose second offset delta
    /// passes Int64's range wrapped to a negative offset (events going backwards); such a
    /// record is now refused as damage, as other malformed records are.
    @Test func anEventOffsetDeltaPastInt64IsRefused() throws {
        func record(secondDelta: Int64) -> [UInt8] {
            let w = ByteWriter(capacity: 64)
            w.append(RepartitionRecord.Event.session.rawValue)
            for b in withUnsafeBytes(of: UInt32(2).bigEndian, Array.init) { w.append(b) }
            w.put(Int64(22))
            w.put(Int64(1_457_741_907_959_400_112))
            for delta in [Int64(0), secondDelta] {
                w.put(delta)
                w.put(Int64(0))
                w.put("u1")
                w.put(false)
            }
            return Array(w.bytes)
        }
        func offsets(_ bytes: [UInt8]) throws -> [Int64] {
            try bytes.withUnsafeBytes { raw throws -> [Int64] in
                var reader = try EventReader(raw)
                var out: [Int64] = []
                while let e = try reader.next() { out.append(e.offset) }
                return out
            }
        }
        #expect(try offsets(record(secondDelta: 5)) == [22, 27])
        #expect(throws: RepartitionRecord.Failure.self) { _ = try offsets(record(secondDelta: .max)) }
    }
}

// MARK: - fuzz-jobfile: a job file the parser accepts runs

@Suite struct FuzzRegressionJobFileTests {
    /// seed-bom-huge-durations (and crash-session-gap-overflows): durations up to the
    /// Int64 nanoseconds limit were accepted, and the session operator's `stream time -
    /// gap - grace` overflowed at the job's first event. Durations are now at most 3650d.
    @Test func durationsLongerThanTenYearsAreRefused() throws {
        let yaml = "name: app-sessions\ninputs: [app_events]\nsession: { key: user_id, gap: 106751d, grace: 5m }\noutput: app-sessions\n"
        let error = #expect(throws: KappaError.self) { try JobFile.parse(yaml, path: "s.yaml") }
        #expect(error?.message == "s.yaml: line 3: 'gap' is 106751d, longer than the 3650d (ten years) a duration may be")
        let longest = yaml.replacingOccurrences(of: "106751d", with: "3650d").replacingOccurrences(of: "5m", with: "3650d")
        guard case .session(let s) = try JobFile.parse(longest, path: "s.yaml").operation else { Issue.record("not a session"); return }
        // The operator's arithmetic at a 2016 event time stays in range.
        let sessions = Sessionizer(spec: s)
        sessions.add(key: "u", time: TimestampNanos(1_457_741_907_959_400_112), type: nil, partition: 0, offset: 0)
        sessions.closeReady(watermark: TimestampNanos(1_457_741_907_959_400_112)) { _, _ in }
        #expect(sessions.openSessions == 1)
    }

    /// `size: 1d, advance: 1ms` put every event in 86 400 000 windows (a job that never
    /// got through its first event).
    @Test func hoppingWindowsOfTooManyWindowsPerEventAreRefused() throws {
        let yaml = "name: w\ninputs: [rides]\nwindow: { key: city, size: 1d, advance: 1ms, aggregates: [count] }\noutput: w\n"
        let error = #expect(throws: KappaError.self) { try JobFile.parse(yaml, path: "w.yaml") }
        #expect(error?.message == "w.yaml: line 3: 'advance' puts every event in 86400000 windows; at most 10000 (a larger 'advance')")
        _ = try JobFile.parse(yaml.replacingOccurrences(of: "1ms", with: "10s"), path: "w.yaml")  // 8 640 windows
    }
}
