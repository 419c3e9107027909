import Foundation
import KappaCore
import KappaFormat
import KappaLog
import RebuGenerator

/// The shared input of every benchmark: 1,000,000 Rebu `app_events` lines (~250 bytes
/// each, seed 7) in a file, generated once, and the same lines pre-split for the
/// library-level benchmark. Also finds the release `kappa` binary and runs commands.
enum Fixture {
    static let events = 1_000_000
    static let directory = ProcessInfo.processInfo.environment["KAPPA_BENCH_DIR"] ?? "/tmp/kappa-bench"
    static let input = directory + "/app_events.jsonl"

    /// `../.build/release/kappa` (built by tools/bench.sh), or $KAPPA_BIN.
    static let kappa: String = {
        if let bin = ProcessInfo.processInfo.environment["KAPPA_BIN"] { return bin }
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return here.appendingPathComponent(".build/release/kappa").path
    }()

    static func prepareInput() {
        if FileManager.default.fileExists(atPath: input) { return }
        _ = try! RebuGenerator.writeAppEvents(RebuConfig(seed: 7, appEvents: events), to: input)
    }

    /// The input lines with their keys and exact event times, extracted once.
    struct Records {
        let bytes: [UInt8]
        let lines: [(value: Range<Int>, key: Range<Int>, time: TimestampNanos)]
    }

    static let records: Records = {
        prepareInput()
        let bytes = [UInt8](FileManager.default.contents(atPath: input)!)
        var lines: [(Range<Int>, Range<Int>, TimestampNanos)] = []
        lines.reserveCapacity(events)
        let keyTag = Array("\"user_id\":\"".utf8)
        let timeTag = Array("\"time_utc\":\"".utf8)
        var start = 0
        bytes.withUnsafeBytes { raw in
            while start < raw.count {
                var end = start
                while raw[end] != 0x0A { end += 1 }
                let key = find(keyTag, in: raw, from: start, to: end)
                let time = find(timeTag, in: raw, from: start, to: end)
                let t = try! EventTime.parse(UnsafeRawBufferPointer(rebasing: raw[time])).get()
                lines.append((start..<end, key, t))
                start = end + 1
            }
        }
        return Records(bytes: bytes, lines: lines)
    }()

    /// The string value following `tag` in raw[from..<to].
    static func find(_ tag: [UInt8], in raw: UnsafeRawBufferPointer, from: Int, to: Int) -> Range<Int> {
        var i = from
        while i + tag.count < to {
            if raw[i] == tag[0] && Array(raw[i..<(i + tag.count)]) == tag {
                let s = i + tag.count
                var e = s
                while raw[e] != 0x22 { e += 1 }
                return s..<e
            }
            i += 1
        }
        fatalError("field not found")
    }

    static func freshDirectory(_ name: String) -> String {
        let path = directory + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The environment of every measured child: this process's, without the harness's
    /// malloc interposer (`LD_PRELOAD`), which the children would otherwise inherit and
    /// which slows every allocation of the program under test (not of its baseline).
    static let childEnvironment: [String: String] = ProcessInfo.processInfo.environment.filter { $0.key != "LD_PRELOAD" }

    /// Outputs are discarded into /dev/null; where it has become a regular file (this
    /// harness once made it one, see `run`), every byte written costs a copy into memory
    /// and the ratios are meaningless. Refuse to measure then.
    static let checkDevNull: Void = {
        var st = stat()
        precondition(stat("/dev/null", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR,
                     "/dev/null is not a character device: recreate it (rm /dev/null; mknod -m 666 /dev/null c 1 3) before benchmarking")
    }()

    /// Runs a command (stdout to `stdoutPath`); returns wall-clock nanoseconds.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], stdoutPath: String = "/dev/null") -> Int64 {
        _ = Fixture.checkDevNull
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.environment = childEnvironment
        // open(2), not FileManager.createFile: that writes a new file and renames it over
        // the path, which for a root process turned /dev/null into a regular file.
        let fd = open(stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "open \(stdoutPath)")
        p.standardOutput = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        p.standardInput = FileHandle.nullDevice  // never the harness's pipe
        let start = monotonicNanos()
        try! p.run()
        p.waitUntilExit()
        let elapsed = monotonicNanos() - start
        precondition(p.terminationStatus == 0, "\(executable) \(arguments) failed with \(p.terminationStatus)")
        return elapsed
    }

    static func fileSize(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.int64Value ?? 0
    }

    static func directoryBytes(_ path: String) -> Int64 {
        var total: Int64 = 0
        if let e = FileManager.default.enumerator(atPath: path) {
            for case let name as String in e { total += fileSize(path + "/" + name) }
        }
        return total
    }
}
