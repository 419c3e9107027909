import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaFormat
import KappaLog
import KappaTesting
import RebuGenerator

// Helpers for the CLI integration tests: they run the real `kappa` executable (built
// beside the test bundle) in a fresh data directory per test, and read its files.
//
// Contract:
// - `CLIWorkspace` owns a mkdtemp directory (`data` inside it is the `--data` root) and
//   every process started from it; dropping it SIGKILLs what is still running, then
//   removes the directory. Keep it alive for the whole test (it is used to the end).
// - Child processes get the test's environment minus `KAPPA_DATA`; their stdout and
//   stderr go to files in the workspace (never pipes), so no child can block on a full
//   pipe and a long-running one can be read at any moment.
// - Waiting is polling with a generous deadline, never a timed assertion: a deadline
//   that passes fails the test with a message naming what was awaited.
// - Not thread-safe: one test thread drives its workspace.

/// The parent of every CLI suite. Serialized: the tests start many processes on a
/// small machine, and the crash and group tests wait on each other's timing; one test
/// at a time keeps every wait far inside its deadline.
@Suite(.serialized) enum CLITests {}

/// Where the `kappa` binary is: beside the test bundle (the directory of /proc/self/exe),
/// else the nearest `debug/kappa` walking up from there.
enum KappaBinary {
    static let path: String = locate()

    private static func locate() -> String {
        let fm = FileManager.default
        var candidates: [String] = []
        var start = ""
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            start = (exe as NSString).deletingLastPathComponent
        } else {
            start = (CommandLine.arguments.first.map { ($0 as NSString).deletingLastPathComponent }) ?? fm.currentDirectoryPath
        }
        candidates.append(start + "/kappa")
        var dir = start
        while dir.count > 1 {
            candidates.append(dir + "/debug/kappa")
            dir = (dir as NSString).deletingLastPathComponent
        }
        return candidates.first { fm.isExecutableFile(atPath: $0) } ?? candidates[0]
    }
}

/// A deadline passed, or a process printed something unusable.
struct CLIFailure: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` every `pollSeconds` until it holds; throws `CLIFailure` naming
/// `what` after `timeoutSeconds`. Used for every wait on another process.
func waitUntil(_ what: @autoclosure () -> String, timeoutSeconds: Double = 30, pollSeconds: Double = 0.05,
               _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    while true {
        if try condition() { return }
        if Date() > deadline {
            throw CLIFailure(description: "timed out after \(Int(timeoutSeconds)) s waiting for \(what())")
        }
        usleep(UInt32(pollSeconds * 1_000_000))
    }
}

/// What a finished `kappa` run left: exit status (128 + signal if killed), stdout, stderr.
struct CLIResult: CustomStringConvertible {
    var arguments: [String]
    var status: Int32
    var stdout: [UInt8]
    var stderr: [UInt8]

    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    /// Complete stdout lines (a trailing line without "\n" is dropped).
    var stdoutLines: [[UInt8]] { splitLines(stdout) }
    var stderrLines: [String] { stderrText.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

    var description: String {
        "kappa \(arguments.joined(separator: " ")) → exit \(status); stderr: \(stderrText.prefix(2000))"
    }
}

/// A `kappa` process started by a workspace: output read from files at any moment,
/// optional interactive stdin, stopped by a signal.
///
/// Spawned with `posix_spawn`, not Foundation's `Process`: `Process` hands the child the
/// signal mask of the calling thread, and the test runner's threads block SIGTERM and
/// SIGINT, so a child could never be stopped cleanly. Here the child starts with an empty
/// mask and default dispositions, as it would from a shell.
final class CLIProcess: CustomStringConvertible {
    let arguments: [String]
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private var stdinFD: Int32
    private var exitStatus: Int32?

    fileprivate init(arguments: [String], stdinPath: String?, interactiveStdin: Bool, stdoutPath: String, stderrPath: String,
                     executable: String = KappaBinary.path, environment: [String: String] = [:]) throws {
        self.arguments = arguments
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
        let outFD = open(stdoutPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let errFD = open(stderrPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer {
            close(outFD)
            close(errFD)
        }
        try #require(outFD >= 0 && errFD >= 0, "open \(stdoutPath), \(stderrPath)")
        var childIn: Int32
        stdinFD = -1
        if interactiveStdin {
            var fds: [Int32] = [-1, -1]
            try #require(pipe(&fds) == 0, "pipe")
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            childIn = fds[0]
            stdinFD = fds[1]
        } else {
            childIn = open(stdinPath ?? "/dev/null", O_RDONLY | O_CLOEXEC)
            try #require(childIn >= 0, "open \(stdinPath ?? "/dev/null")")
        }
        defer { close(childIn) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, childIn, 0)
        posix_spawn_file_actions_adddup2(&actions, outFD, 1)
        posix_spawn_file_actions_adddup2(&actions, errFD, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var env = ProcessInfo.processInfo.environment
        env["KAPPA_DATA"] = nil
        for (k, v) in environment { env[k] = v }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attr, argv, envp)
        try #require(rc == 0, "posix_spawn \(executable): \(String(cString: strerror(rc)))")
        pid = child
    }

    deinit { if stdinFD >= 0 { close(stdinFD) } }

    /// Reaps the child if it has ended. True while it runs.
    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        guard r == pid else { return r == 0 }
        let signal = status & 0x7F
        exitStatus = signal == 0 ? (status >> 8) & 0xFF : 128 + signal
        return false
    }

    var stdout: [UInt8] { (try? Array(Data(contentsOf: URL(fileURLWithPath: stdoutPath)))) ?? [] }
    var stderrText: String { String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: stderrPath))) ?? Data(), as: UTF8.self) }
    /// Complete stdout lines so far.
    var stdoutLines: [[UInt8]] { splitLines(stdout) }

    /// Sends `signal` (SIGKILL for a crash, SIGTERM/SIGINT for a clean stop).
    func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Writes to the child's stdin (interactive processes only).
    func write(_ bytes: [UInt8]) throws {
        try #require(stdinFD >= 0, "process was not started with interactive stdin")
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { systemWrite(stdinFD, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            try #require(n > 0, "write to stdin of \(description): \(String(cString: strerror(errno)))")
            done += n
        }
    }

    func closeStdin() {
        if stdinFD >= 0 { close(stdinFD) }
        stdinFD = -1
    }

    /// The exit status once the process has ended (128 + signal if a signal ended it);
    /// throws `CLIFailure` if it is still running after `timeoutSeconds`.
    @discardableResult
    func waitForExit(timeoutSeconds: Double = 60) throws -> Int32 {
        try waitUntil("\(description) to exit", timeoutSeconds: timeoutSeconds, pollSeconds: 0.005) { !isRunning }
        return exitStatus!
    }

    /// What the process printed, and its status (-1 while it runs).
    var result: CLIResult {
        CLIResult(arguments: arguments, status: isRunning ? -1 : exitStatus!, stdout: stdout, stderr: Array(stderrText.utf8))
    }

    var description: String { "kappa \(arguments.joined(separator: " ")) (pid \(pid))" }
}

/// `write(2)`, named apart from `CLIProcess.write`.
private func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, p, count)
}

/// A temporary directory with a Kappa data directory in it, and the processes run there.
final class CLIWorkspace {
    let tmp: TemporaryDirectory
    /// The `--data` root.
    let data: String
    private var started: [CLIProcess] = []
    private var counter = 0

    /// `dataRoot`: where `--data` points (default: `data` inside the workspace).
    init(dataRoot: String? = nil) throws {
        signal(SIGPIPE, SIG_IGN)  // a dead child's stdin pipe must not kill the test process
        tmp = try TemporaryDirectory(prefix: "kappa-cli")
        data = dataRoot ?? tmp.path + "/data"
    }

    deinit {
        for p in started where p.isRunning {
            p.send(SIGKILL)
            _ = try? p.waitForExit(timeoutSeconds: 30)
        }
    }

    var dataDirectory: DataDirectory { DataDirectory(root: data) }

    private func nextName(_ stem: String) -> String {
        counter += 1
        return tmp.path + "/\(stem)-\(counter)"
    }

    /// Runs `kappa ARGS --data DATA` to completion, stdin from `stdin` (else /dev/null).
    /// Kills it and throws if it runs longer than `timeoutSeconds`.
    @discardableResult
    func kappa(_ args: [String], stdin: [UInt8]? = nil, timeoutSeconds: Double = 120) throws -> CLIResult {
        var stdinPath: String? = nil
        if let stdin {
            stdinPath = nextName("stdin")
            try Data(stdin).write(to: URL(fileURLWithPath: stdinPath!))
        }
        let p = try start(args, stdinPath: stdinPath)
        do {
            try p.waitForExit(timeoutSeconds: timeoutSeconds)
        } catch {
            p.send(SIGKILL)
            _ = try? p.waitForExit(timeoutSeconds: 30)
            throw CLIFailure(description: "\(p.description) did not finish within \(Int(timeoutSeconds)) s; stderr: \(p.stderrText)")
        }
        return p.result
    }

    /// Runs `kappa ARGS` and requires exit status 0; returns the result.
    @discardableResult
    func ok(_ args: [String], stdin: [UInt8]? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        let r = try kappa(args, stdin: stdin)
        try #require(r.status == 0, "\(r)", sourceLocation: sourceLocation)
        return r
    }

    /// Starts `kappa ARGS --data DATA` and returns at once.
    func start(_ args: [String], stdinPath: String? = nil, interactiveStdin: Bool = false) throws -> CLIProcess {
        let stem = nextName("proc")
        let p = try CLIProcess(arguments: args + ["--data", data], stdinPath: stdinPath, interactiveStdin: interactiveStdin,
                               stdoutPath: stem + ".stdout", stderrPath: stem + ".stderr")
        started.append(p)
        return p
    }

    /// Starts another program (a Kafka client: kcat, python3) with its output in files,
    /// killed with the workspace like every process it starts.
    func startExternal(_ executable: String, _ args: [String], stdinPath: String? = nil, environment: [String: String] = [:]) throws -> CLIProcess {
        let stem = nextName("ext")
        let p = try CLIProcess(arguments: args, stdinPath: stdinPath, interactiveStdin: false, stdoutPath: stem + ".stdout",
                               stderrPath: stem + ".stderr", executable: executable, environment: environment)
        started.append(p)
        return p
    }

    /// Writes `lines` (each followed by "\n") to a file in the workspace; returns its path.
    func writeFile(_ name: String, lines: [[UInt8]]) throws -> String {
        let path = tmp.path + "/" + name
        try Data(joinLines(lines)).write(to: URL(fileURLWithPath: path))
        return path
    }

    func createTopic(_ name: String, partitions: Int, extra: [String] = []) throws {
        try ok(["topics", "create", name, "--partitions", String(partitions)] + extra)
    }

    func partitionPath(_ topic: String, _ partition: Int32) -> String {
        dataDirectory.partitionPath(TopicPartition(topic, partition))
    }

    /// The partition's .log files, oldest first.
    func logFiles(_ topic: String, _ partition: Int32) throws -> [String] {
        let dir = partitionPath(topic, partition)
        return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".log") }.sorted().map { dir + "/" + $0 }
    }

    /// Bytes in all .log files of the topic (0 while none exist).
    func topicLogBytes(_ topic: String) -> Int64 {
        var total: Int64 = 0
        let root = dataDirectory.topicPath(topic)
        guard let parts = try? FileManager.default.contentsOfDirectory(atPath: root) else { return 0 }
        for p in parts {
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: root + "/" + p) else { continue }
            for f in files where f.hasSuffix(".log") {
                var st = stat()
                if stat(root + "/" + p + "/" + f, &st) == 0 { total += Int64(st.st_size) }
            }
        }
        return total
    }

    /// `kappa topics describe`, one parsed object per partition, by partition.
    func describe(_ topic: String) throws -> [[String: Any]] {
        let r = try ok(["topics", "describe", topic])
        return try r.stdoutLines.map(parseJSONObject).sorted { intField($0, "partition") < intField($1, "partition") }
    }

    /// Every record of `topic` via `consume --from-beginning --with-meta`, grouped by
    /// partition; requires exit 0 and dense offsets from each partition's start.
    func consumeAll(_ topic: String, extra: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws -> [Int32: [MetaRecord]] {
        let r = try ok(["consume", topic, "--from-beginning", "--with-meta"] + extra, sourceLocation: sourceLocation)
        return try groupByPartition(r.stdoutLines.map(MetaRecord.init))
    }
}

// MARK: - Records as `consume --with-meta` prints them

/// One `--with-meta` output line: the metadata parsed, the value kept as its raw bytes.
struct MetaRecord: Equatable, CustomStringConvertible {
    var topic: String
    var partition: Int32
    var offset: Int64
    var timestamp: String
    var key: String?
    /// The bytes after `"value":` up to the closing brace: the stored value as printed.
    var value: [UInt8]

    /// Parses a line; the whole line must be one valid JSON object.
    init(_ line: [UInt8]) throws {
        let object = try parseJSONObject(line)
        topic = try #require(object["topic"] as? String, "no topic in \(text(line))")
        partition = Int32(try #require((object["partition"] as? NSNumber)?.int64Value, "no partition in \(text(line))"))
        offset = try #require((object["offset"] as? NSNumber)?.int64Value, "no offset in \(text(line))")
        timestamp = try #require(object["timestamp"] as? String, "no timestamp string in \(text(line))")
        key = object["key"] as? String
        try #require(object["value"] is [String: Any], "value is not a JSON object in \(text(line))")
        let marker = Array(#","value":"#.utf8)
        let start = try #require(firstIndex(of: marker, in: line), "no value in \(text(line))") + marker.count
        try #require(line.last == UInt8(ascii: "}"))
        value = Array(line[start..<(line.count - 1)])
    }

    var description: String { "\(topic)/\(partition)@\(offset) key=\(key ?? "null") ts=\(timestamp) value=\(text(value).prefix(80))" }
}

/// Groups records by partition, checking that each partition's offsets are dense and
/// increasing from its first.
func groupByPartition(_ records: [MetaRecord], sourceLocation: SourceLocation = #_sourceLocation) throws -> [Int32: [MetaRecord]] {
    var out: [Int32: [MetaRecord]] = [:]
    for r in records { out[r.partition, default: []].append(r) }
    for (p, rs) in out {
        for (i, r) in rs.enumerated() where i > 0 && r.offset != rs[i - 1].offset + 1 {
            Issue.record("partition \(p): offset \(r.offset) follows \(rs[i - 1].offset)", sourceLocation: sourceLocation)
            break
        }
    }
    return out
}

// MARK: - Input lines

/// Deterministic app-event lines from the Rebu generator (no trailing "\n").
func rebuLines(seed: UInt64, count: Int) -> [[UInt8]] {
    splitLines(RebuDataset(RebuConfig(seed: seed, appEvents: count)).jsonLines(.appEvents))
}

/// Splits at "\n"; a final piece without "\n" is dropped (an incomplete line).
func splitLines(_ bytes: [UInt8]) -> [[UInt8]] {
    var out: [[UInt8]] = []
    var start = 0
    bytes.withUnsafeBufferPointer { buf in
        for i in 0..<buf.count where buf[i] == 0x0A {
            out.append(Array(buf[start..<i]))
            start = i + 1
        }
    }
    return out
}

func joinLines(_ lines: [[UInt8]]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(lines.reduce(0) { $0 + $1.count + 1 })
    for l in lines {
        out.append(contentsOf: l)
        out.append(0x0A)
    }
    return out
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The string value of top-level `"name":"…"` in a generator line (whose ids and times
/// hold no escapes), found by bytes: fast enough for 100k lines in a debug build.
func stringField(_ name: String, in line: [UInt8]) -> String? {
    let marker = Array("\"\(name)\":\"".utf8)
    guard let at = firstIndex(of: marker, in: line) else { return nil }
    let start = at + marker.count
    guard let end = line[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
    return String(decoding: line[start..<end], as: UTF8.self)
}

func firstIndex(of needle: [UInt8], in hay: [UInt8]) -> Int? {
    guard !needle.isEmpty, hay.count >= needle.count else { return nil }
    let first = needle[0]
    var i = 0
    while i <= hay.count - needle.count {
        if hay[i] == first {
            var j = 1
            while j < needle.count && hay[i + j] == needle[j] { j += 1 }
            if j == needle.count { return i }
        }
        i += 1
    }
    return nil
}

/// The partition Kafka's default partitioner gives `key` (murmur2, via KappaLog).
func expectedPartition(key: String, partitions: Int32) -> Int32 {
    Array(key.utf8).withUnsafeBytes { Partitioner.partition(forKey: $0, partitions: partitions) }
}

/// The input lines each partition must hold, in input order, routed by `user_id`.
func routeByUserId(_ lines: [[UInt8]], partitions: Int32) -> [Int32: [[UInt8]]] {
    var out: [Int32: [[UInt8]]] = [:]
    for p in 0..<partitions { out[p] = [] }
    for l in lines {
        guard let key = stringField("user_id", in: l) else { continue }
        out[expectedPartition(key: key, partitions: partitions), default: []].append(l)
    }
    return out
}

/// A decimal number written canonically, so that "1457741907.959400000" and
/// "1457741907.9594" compare equal exactly (no floating point): fraction without
/// trailing zeros, no "." when it is empty.
func canonicalDecimal(_ s: String) -> String {
    guard let dot = s.firstIndex(of: ".") else { return s }
    var fraction = s[s.index(after: dot)...]
    while fraction.last == "0" { fraction = fraction.dropLast() }
    return fraction.isEmpty ? String(s[..<dot]) : String(s[..<dot]) + "." + fraction
}

// MARK: - JSON

func parseJSONObject(_ line: [UInt8]) throws -> [String: Any] {
    let any: Any
    do {
        any = try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])
    } catch {
        throw CLIFailure(description: "not valid JSON: \(text(line).prefix(300))")
    }
    return try #require(any as? [String: Any], "not a JSON object: \(text(line).prefix(300))")
}

func intField(_ object: [String: Any], _ name: String) -> Int64 {
    (object[name] as? NSNumber)?.int64Value ?? Int64.min
}

// MARK: - Sequence comparison with short messages

/// Records one issue naming the first difference when `actual` != `expected` (the
/// arrays may hold thousands of lines; `#expect(a == b)` would print them all).
@discardableResult
func expectSameLines(_ actual: [[UInt8]], _ expected: [[UInt8]], _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    if actual == expected { return true }
    let common = min(actual.count, expected.count)
    var i = 0
    while i < common && actual[i] == expected[i] { i += 1 }
    var message = "\(what): \(actual.count) lines, expected \(expected.count); first difference at index \(i)"
    if i < actual.count { message += "\n  actual:   \(text(actual[i]).prefix(200))" }
    if i < expected.count { message += "\n  expected: \(text(expected[i]).prefix(200))" }
    Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
    return false
}

/// Same multiset of lines (order ignored); names counts and one example on failure.
@discardableResult
func expectSameMultiset(_ actual: [[UInt8]], _ expected: [[UInt8]], _ what: String,
                        sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    var counts: [[UInt8]: Int] = [:]
    for l in expected { counts[l, default: 0] += 1 }
    for l in actual { counts[l, default: 0] -= 1 }
    let missing = counts.filter { $0.value > 0 }
    let extra = counts.filter { $0.value < 0 }
    if missing.isEmpty && extra.isEmpty { return true }
    var message = "\(what): \(actual.count) lines, expected \(expected.count); \(missing.count) distinct missing, \(extra.count) distinct unexpected"
    if let m = missing.first { message += "\n  missing:    \(text(m.key).prefix(200))" }
    if let e = extra.first { message += "\n  unexpected: \(text(e.key).prefix(200))" }
    Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
    return false
}

// MARK: - Segment files

/// One batch found in a .log file by walking `RecordBatchFramer` frames.
struct DiskBatch {
    var position: Int
    var header: RecordBatchHeader
    var totalBytes: Int { header.totalBytes }
}

/// Walks the batches of a .log file from its start, stopping at the first bytes that do
/// not frame (a torn or garbage tail).
func diskBatches(_ path: String) throws -> [DiskBatch] {
    let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
    var out: [DiskBatch] = []
    var position = 0
    try bytes.withUnsafeBytes { raw in
        while position < raw.count {
            let rest = UnsafeRawBufferPointer(rebasing: raw[position...])
            guard case .batch(let header) = try RecordBatchFramer.frame(rest) else { break }
            out.append(DiskBatch(position: position, header: header))
            position += header.totalBytes
        }
    }
    return out
}

/// Every record of a partition read in this process (headers included), from `offset`.
func readPartition(_ ws: CLIWorkspace, _ topic: String, _ partition: Int32, from offset: Int64 = 0) throws -> [ReadRecord] {
    let reader = try PartitionReader(directory: ws.dataDirectory, topicPartition: TopicPartition(topic, partition))
    return try reader.readAll(from: Offset(offset)).records
}

func fileSize(_ path: String) -> Int64 {
    var st = stat()
    return stat(path, &st) == 0 ? Int64(st.st_size) : -1
}

/// Overwrites `count` bytes at `position` of a file (XOR with `mask`).
func flipBytes(_ path: String, at position: Int, count: Int = 1, mask: UInt8 = 0xFF) throws {
    let fd = open(path, O_RDWR)
    try #require(fd >= 0, "open \(path)")
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: count)
    try #require(pread(fd, &buf, count, off_t(position)) == count)
    for i in 0..<count { buf[i] ^= mask }
    try #require(pwrite(fd, buf, count, off_t(position)) == count)
}

func appendBytes(_ path: String, _ extra: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_APPEND)
    try #require(fd >= 0, "open \(path)")
    defer { close(fd) }
    try #require(write(fd, extra, extra.count) == extra.count)
}

func truncateFile(_ path: String, to size: Int64) throws {
    try #require(truncate(path, off_t(size)) == 0, "truncate \(path)")
}

/// True when `text` contains `phrase` followed by something other than a digit, so
/// that "offset 12" does not match "offset 123".
func mentions(_ text: String, _ phrase: String) -> Bool {
    var rest = Substring(text)
    while let r = rest.range(of: phrase) {
        let after = rest[r.upperBound...]
        if after.first.map({ !$0.isNumber }) ?? true { return true }
        rest = after
    }
    return false
}
