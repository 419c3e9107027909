// fuzz-seeds: writes the generated seed corpora of the fuzz targets from data Kappa wrote.
//
//   fuzz-seeds OUT DATA…
//
// OUT is Fuzz/Corpus; each DATA a kappa data directory (`tools/fuzz.sh seeds` makes them:
// the demo's, a second topic layout with re-keyed sessions and matches, checkpoint format
// 1's fixture). Writes OUT/TARGET/gen-* files (replacing the previous gen-* ones) and
// leaves every other file alone: hand-written seeds and regression inputs (crash-*).
// Deterministic: the same data gives the same files.
import Foundation
import FuzzSupport
import KappaCore
import KappaFormat
import KappaLog
import KappaStreams
import KappaTesting

let args = CommandLine.arguments
guard args.count >= 3 else {
    FileHandle.standardError.write(Data("usage: fuzz-seeds OUT DATA…\n".utf8))
    exit(2)
}
let out = args[1]
let dataDirs = Array(args[2...])
let fm = FileManager.default

/// Seeds written so far, per target, by name.
nonisolated(unsafe) var seeds: [String: [String: [UInt8]]] = [:]

func seed(_ target: String, _ name: String, _ bytes: [UInt8]) {
    precondition(bytes.count <= 65_536, "seed \(target)/\(name) is \(bytes.count) bytes, above -max_len")
    seeds[target, default: [:]]["gen-" + name] = bytes
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("fuzz-seeds: \(message)\n".utf8))
    exit(1)
}

// MARK: - Reading what Kappa wrote

/// The records of a topic's partition, as (key, value), at most `limit`.
func records(_ data: DataDirectory, _ topic: String, partition: Int32, limit: Int = .max) -> [(key: [UInt8]?, value: [UInt8])] {
    do {
        let reader = try PartitionReader(directory: data, topicPartition: TopicPartition(topic, partition))
        let read = try reader.readAll(from: .zero).records
        return read.prefix(limit).map { ($0.record.key, $0.record.value) }
    } catch {
        fail("reading \(topic)/\(partition) in \(data.root): \(error)")
    }
}

/// The Rebu lines of the demo's input topics, a few of each.
func rebuLines(_ data: DataDirectory) -> [String: [[UInt8]]] {
    var out: [String: [[UInt8]]] = [:]
    for topic in ["rides", "tickets", "app_events"] where data.topicExists(topic) {
        out[topic] = records(data, topic, partition: 0, limit: 12).map(\.value)
    }
    return out
}

func file(_ path: String) -> [UInt8] {
    guard let d = fm.contents(atPath: path) else { fail("cannot read \(path)") }
    return Array(d)
}

// MARK: - fuzz-batch

/// Batches as Kappa writes them (RecordBatchBuilder), from real lines, both codecs, with
/// null keys, headers and sub-millisecond times; and the first batch of real segments.
func batchSeeds(_ lines: [[UInt8]], _ data: [DataDirectory]) {
    let coding = BatchCoding()
    var records: [ReferenceRecord] = []
    for (i, line) in lines.prefix(6).enumerated() {
        let key: [UInt8]? = i == 2 ? nil : Array("u00000\(i)".utf8)
        let headers = i == 3 ? [RecordHeader(key: "trace", value: [1, 2, 3]), RecordHeader(key: "", value: [])] : []
        let time = TimestampNanos(1_457_741_907_959_400_112 + Int64(i) * 1_000_000_007)
        records.append(ReferenceRecord(key: key, value: line, timestamp: time, headers: headers))
    }
    records.append(ReferenceRecord(key: [], value: [], timestamp: TimestampNanos(-1_500_000)))
    for compression in [CompressionCodec.none, .lz4] {
        let one = coding.encode(Array(records.prefix(1)), compression: compression, baseOffset: Offset(0))
        let all = coding.encode(records, compression: compression, baseOffset: Offset(1))
        let three = coding.encode(Array(records.prefix(3)), compression: compression, baseOffset: Offset(1 + Int64(records.count)))
        let stream = one + all + three
        seed("batch", "stored-\(compression)", BatchCase.input(.stored, stream))
        seed("batch", "crcfixed-\(compression)", BatchCase.input(.crcFixed, all))
        seed("batch", "headers-\(compression)", BatchCase.input(.headers, stream))
        // sealed: the header of an uncompressed batch and its records section.
        let plain = coding.encode(records, compression: .none)
        seed("batch", "sealed-\(compression)", BatchCase.input(.sealed, lz4: compression == .lz4, plain))
    }
    for d in data {
        for topic in ["rides", "app_events", "rides-per-city.v1.repartition"] {
            let path = SegmentFiles.logPath(d.partitionPath(TopicPartition(topic, 0)), .zero)
            guard fm.fileExists(atPath: path) else { continue }
            let log = file(path)
            let first = log.withUnsafeBytes { raw -> [UInt8]? in
                guard case .batch(let h)? = try? RecordBatchFramer.frame(raw), h.totalBytes <= 32_768 else { return nil }  // too big or not a batch: no seed
                return Array(raw[..<h.totalBytes])
            }
            if let first { seed("batch", "real-\(topic)", BatchCase.input(.stored, first)) }
        }
    }
}

// MARK: - fuzz-segment

/// Partitions written by PartitionWriter on the simulated disk (several segments, both
/// codecs, indexes), and real segments; each with the recovery point and published end
/// cases that matter: clean, torn tail, damage before and after the recovery point,
/// trusted end, end from another boot.
func segmentSeeds(_ lines: [[UInt8]], _ data: [DataDirectory]) {
    let fs = SimulatedFileSystem(seed: 7)
    let root = DataDirectory(root: "/seed", fileSystem: fs)
    let tp = TopicPartition("t", 0)
    do {
        try root.createTopic("t", config: TopicConfig(partitions: 1, compression: .lz4, segmentBytes: 4_096))
        let writer = try PartitionWriter(directory: root, topicPartition: tp, config: try root.topicConfig("t"), fsync: .always, clock: ManualClock())
        let coding = BatchCoding()
        for i in 0..<14 {
            let sealed = SealedBatches()
            let batch = (0..<(1 + i % 4)).map { k in
                ReferenceRecord(key: Array("u\(i)".utf8), value: lines[(i * 3 + k) % lines.count], timestamp: TimestampNanos(1_457_741_907_000_000_000 + Int64(i) * 60_000_000_000 + Int64(k)))
            }
            sealed.seal(batch, compression: i % 2 == 0 ? .lz4 : .none, codec: coding.codec)
            try writer.append(sealed)
        }
        try writer.close()
    } catch {
        fail("writing the seed partition: \(error)")
    }
    let dir = root.partitionPath(tp)
    let bases = (try? SegmentFiles.bases(in: dir, fileSystem: fs)) ?? []  // listing a directory just written
    let logs = bases.map { fs.contents(SegmentFiles.logPath(dir, $0)) ?? [] }
    let index = bases.last.flatMap { fs.contents(SegmentFiles.indexPath(dir, $0)) } ?? []
    let timeIndex = bases.last.flatMap { fs.contents(SegmentFiles.timeIndexPath(dir, $0)) } ?? []
    let segments = Array(logs.suffix(3))
    let last = UInt8(segments.count - 1)
    typealias P = SegmentCase.PointSpec
    let end = P(segment: last, boundary: 200)  // past the last batch: the end of the log
    let F = SegmentCase.Flag.self
    func add(_ name: String, _ flags: UInt8, rp: P, published: P, logs: [[UInt8]] = segments, seek: UInt8 = 0) {
        let c = SegmentCase(flags: flags | F.indexes, recoveryPoint: rp, publishedEnd: published, seek: seek, segments: logs, index: index, timeIndex: timeIndex)
        seed("segment", name, c.encoded)
    }
    add("clean-restart", F.recoveryPoint | F.append | F.seek, rp: end, published: end, seek: 3)
    add("clean-trusted", F.recoveryPoint | F.publishedEnd | F.thisBoot | F.append, rp: end, published: end)
    add("other-boot", F.recoveryPoint | F.publishedEnd | F.append, rp: P(segment: last, boundary: 1), published: end)
    add("no-recovery-point", F.append, rp: end, published: end)
    var torn = segments
    torn[torn.count - 1].removeLast(17)
    add("torn-tail", F.recoveryPoint | F.append, rp: P(segment: last, boundary: 1), published: end, logs: torn)
    var flipped = segments
    flipped[flipped.count - 1][flipped[flipped.count - 1].count - 30] ^= 0x10
    add("damage-after-rp", F.recoveryPoint | F.append, rp: P(segment: last, boundary: 0), published: end, logs: flipped)
    add("damage-before-rp", F.recoveryPoint | F.append, rp: end, published: end, logs: flipped)
    add("damage-fixed-crc", F.recoveryPoint | F.fixCRCs | F.append, rp: P(segment: 0, boundary: 0), published: end, logs: flipped)
    add("trusted-past-rp", F.recoveryPoint | F.publishedEnd | F.thisBoot | F.append, rp: P(segment: 0, boundary: 1), published: P(segment: last, boundary: 1))
    add("raw-rp", F.recoveryPoint | F.append, rp: P(segment: last, boundary: P.rawBoundary, rawPosition: 100), published: end)
    for d in data {
        let path = SegmentFiles.logPath(d.partitionPath(TopicPartition("rides", 1)), .zero)
        guard fm.fileExists(atPath: path) else { continue }
        let real = file(path)
        guard real.count < 16_000 else { continue }
        let c = SegmentCase(flags: F.recoveryPoint | F.append, recoveryPoint: P(segment: 0, boundary: 200), publishedEnd: P(segment: 0, boundary: 200),
                            segments: [real])
        seed("segment", "real-rides-\(URL(fileURLWithPath: d.root).lastPathComponent)", c.encoded)
    }
}

// MARK: - fuzz-json

func jsonSeeds(_ lines: [String: [[UInt8]]]) {
    let sets: [String: [UInt8]] = ["rides": [0, 1, 3], "tickets": [0, 3], "app_events": [0, 2, 4]]
    for (topic, topicLines) in lines {
        for (i, line) in topicLines.prefix(4).enumerated() {
            for set in sets[topic] ?? [] {
                seed("json", "\(topic)-\(i)-set\(set)", JSONCase.input(pathSet: set, padding: UInt8(i % 4), document: line))
            }
        }
        if let line = topicLines.first {
            seed("json", "\(topic)-custom", JSONCase.input(pathSet: JSONCase.customPaths, customPaths: ["time_utc", "user_id", "event_details.items[0]"], document: line))
        }
    }
}

// MARK: - fuzz-checkpoint and fuzz-repartition

/// Every task checkpoint in `data`, for the jobs and plans `FuzzJob.all` knows.
func checkpointSeeds(_ data: DataDirectory, tag: String) {
    let registry = JobRegistry(directory: data)
    for name in (try? registry.names()) ?? [] {  // no jobs: no seeds
        guard let record = try? registry.load(name) else { continue }  // unreadable: skip
        for v in record.versions {
            guard let plan = try? JobPlan.make(v.definition, directory: data), let job = FuzzJob.index(of: v.definition, plan: plan) else {
                print("fuzz-seeds: \(name) v\(v.version) in \(data.root) is not in FuzzJob.all; skipped")
                continue
            }
            for task in 0..<plan.tasks {
                let path = registry.checkpointPath(name, v.version, task: task)
                guard fm.fileExists(atPath: path) else { continue }
                let selector = CheckpointCase.selector(job: job, task: task, version: v.version)
                seed("checkpoint", "\(tag)-\(name)-v\(v.version)-\(task)", CheckpointCase.input(selector: selector, checkpoint: file(path)))
            }
        }
    }
}

/// A few records of each kind from every repartition topic in `data`.
func repartitionSeeds(_ data: DataDirectory, tag: String) {
    let registry = JobRegistry(directory: data)
    for name in (try? registry.names()) ?? [] {  // no jobs: no seeds
        guard let record = try? registry.load(name) else { continue }  // unreadable: skip
        for v in record.versions {
            let topic = "\(name).v\(v.version).repartition"
            guard data.topicExists(topic), let plan = try? JobPlan.make(v.definition, directory: data),
                  let job = FuzzJob.index(of: v.definition, plan: plan) else { continue }
            var kinds: [UInt8: Int] = [:]
            for p in 0..<plan.tasks {
                for r in records(data, topic, partition: p) {
                    guard let kind = r.value.first, kinds[kind, default: 0] < 3, r.value.count < 16_000 else { continue }
                    kinds[kind, default: 0] += 1
                    seed("repartition", "\(tag)-\(name)-v\(v.version)-\(p)-kind\(kind)-\(kinds[kind]!)", RepartitionCase.input(job: job, key: r.key, value: r.value))
                }
            }
        }
    }
}

// MARK: - fuzz-jobfile

func jobFileSeeds() {
    for (name, yaml) in [("rides-per-city", FuzzJob.ridesPerCity), ("app-sessions", FuzzJob.appSessions), ("ticket-ride-match", FuzzJob.ticketRideMatch)] {
        seed("jobfile", name, Array((yaml + "\n").utf8))
    }
}

// MARK: - main

let directories = dataDirs.map { DataDirectory(root: $0) }
var lines: [String: [[UInt8]]] = [:]
for d in directories { for (t, l) in rebuLines(d) where lines[t] == nil { lines[t] = l } }
guard let rides = lines["rides"], !rides.isEmpty else { fail("no rides in \(dataDirs)") }
batchSeeds(rides + (lines["app_events"] ?? []), directories)
segmentSeeds(rides + (lines["tickets"] ?? []), directories)
jsonSeeds(lines)
jobFileSeeds()
for d in directories {
    let tag = URL(fileURLWithPath: d.root).lastPathComponent == "data" ? "format1" : URL(fileURLWithPath: d.root).lastPathComponent
    checkpointSeeds(d, tag: tag)
    repartitionSeeds(d, tag: tag)
}
for (target, files) in seeds.sorted(by: { $0.key < $1.key }) {
    let dir = out + "/" + target
    try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)  // exists already, or the write below fails
    for old in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where old.hasPrefix("gen-") { try? fm.removeItem(atPath: dir + "/" + old) }  // replaced below
    for (name, bytes) in files.sorted(by: { $0.key < $1.key }) {
        guard fm.createFile(atPath: dir + "/" + name, contents: Data(bytes)) else { fail("cannot write \(dir)/\(name)") }
    }
    print("fuzz-seeds: \(target): \(files.count) generated seeds, \(files.values.reduce(0) { $0 + $1.count }) bytes")
}
