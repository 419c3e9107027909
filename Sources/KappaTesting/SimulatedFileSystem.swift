#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaIO
import Synchronization

/// An in-memory `FileSystem` that models what a power loss keeps, and fails or crashes
/// at any chosen step: the deterministic twin of the disk for crash and fault tests.
///
/// **Steps.** Every mutating operation is one numbered step (`steps` counts them):
/// a pwrite, a truncate, a file fsync, a directory fsync, a create, a rename, a remove,
/// a mkdir, an rmdir. `faults[n]` makes step n fail instead:
/// - `.crash`: the machine stops; a pwrite stops after a seeded prefix of its bytes.
///   Every later operation, on every handle, throws until `restart`.
/// - `.diskFull` / `.ioError`: the call fails with ENOSPC / EIO and changes nothing.
/// - `.shortWrite`: a pwrite writes a seeded prefix and returns it; the next pwrite of
///   that file fails with ENOSPC (what a filling disk does).
/// `capacityBytes` also makes writes that would grow the files past it short, then ENOSPC.
///
/// **Durability model** (what `FileSystem`'s contract promises, and no more): a file's
/// bytes and size are durable after its `sync()`; a name (create, rename, remove) after
/// `syncDirectory` of its directory. `restart(.powerLoss)` keeps, per file, a seeded mix
/// of durable and written-but-unsynced 4 KiB pages and a size of either (out-of-order
/// writeback), and per directory the durable entries plus a seeded prefix of the
/// unsynced changes (a journal replays in order; a rename is atomic). `restart(.processKill)`
/// keeps everything written (the page cache survives kill -9). Both drop every lock and
/// invalidate every open handle (the processes died); a power loss changes `bootID`.
///
/// Paths are absolute. Thread-safe: one lock around all state (a lock wait spins
/// outside it, so a writer thread and a test thread can contend like two processes).
public final class SimulatedFileSystem: FileSystem, @unchecked Sendable {
    public enum Fault: Equatable, Sendable {
        case crash
        case diskFull
        case ioError
        case shortWrite
    }

    public enum Restart: Equatable, Sendable {
        /// kill -9 of every process: what was written stays.
        case processKill
        /// Power loss: only what was synced is sure to stay.
        case powerLoss
    }

    /// What one step did, for failure messages and for counting the crash points covered.
    public struct Step: Sendable, CustomStringConvertible {
        public var number: Int
        public var operation: String
        public var path: String
        public var description: String { "#\(number) \(operation) \(path)" }
    }

    final class Node {
        let isDirectory: Bool
        var data: [UInt8] = []
        var durable: [UInt8] = []
        var entries: [String: Node] = [:]
        var durableEntries: [String: Node] = [:]
        /// Directory changes since the last fsync, in order; each applied as a whole.
        var pending: [[(name: String, node: Node?)]] = []
        var links = 0
        var exclusiveHolder: Int?
        var sharedHolders = Set<Int>()
        /// The next pwrite fails with ENOSPC (after a short write).
        var failNextWrite = false

        init(isDirectory: Bool) { self.isDirectory = isDirectory }
    }

    struct State {
        var root = Node(isDirectory: true)
        /// Every path that resolves now, to its node (a cache of the tree, for speed).
        var paths: [String: Node] = [:]
        var generation = 0
        var boot: UInt64 = 1
        var crashed = false
        var steps = 0
        var faults: [Int: Fault] = [:]
        var capacityBytes: Int?
        var random: SeededRandom
        var log: [Step] = []
        var nextHandle = 1
        var recordingSteps = true
    }

    let state: Mutex<StateBox>

    /// `Mutex` wants a Sendable value; the nodes are reference types only ever touched
    /// under this mutex.
    struct StateBox: @unchecked Sendable {
        var s: State
    }

    public static let pageBytes = 4096

    public init(seed: UInt64 = 0) {
        var s = State(random: SeededRandom(seed: seed))
        s.paths["/"] = s.root
        state = Mutex(StateBox(s: s))
    }

    // MARK: - Test controls

    /// Mutating steps taken so far.
    public var steps: Int { state.withLock { $0.s.steps } }
    /// Every step taken so far, in order.
    public var stepLog: [Step] { state.withLock { $0.s.log } }

    /// Makes step `number` (counted from the start) fail with `fault`.
    public func inject(_ fault: Fault, atStep number: Int) { state.withLock { $0.s.faults[number] = fault } }
    public func clearFaults() { state.withLock { $0.s.faults = [:] } }

    /// Writes that would grow the files' total past this fail short, then with ENOSPC.
    public var capacityBytes: Int? {
        get { state.withLock { $0.s.capacityBytes } }
        set { state.withLock { $0.s.capacityBytes = newValue } }
    }

    /// True after a `.crash` fault, until `restart`.
    public var isCrashed: Bool { state.withLock { $0.s.crashed } }

    /// Brings the machine back after a crash (or kills every process of a running one).
    public func restart(_ kind: Restart) {
        state.withLock { box in
            box.s.crashed = false
            box.s.generation += 1
            Self.dropLocks(box.s.root)
            if kind == .powerLoss {
                box.s.boot += 1
                Self.losePower(box.s.root, random: &box.s.random)
                Self.recountLinks(box.s.root)
                Self.reindex(&box.s)
            }
        }
    }

    /// The bytes a file holds now (what reads see), nil if there is no such file.
    public func contents(_ path: String) -> [UInt8]? {
        state.withLock { box in (try? Self.lookup(box.s, path)).flatMap { $0.isDirectory ? nil : $0.data } }  // absent: nil
    }

    /// A file's size now, nil if there is no such file (cheaper than `contents`).
    public func size(_ path: String) -> Int? {
        state.withLock { box in (try? Self.lookup(box.s, path)).flatMap { $0.isDirectory ? nil : $0.data.count } }  // absent: nil
    }

    /// Keeps the log of steps (`stepLog`); off for long runs that do not read it.
    public var recordsSteps: Bool {
        get { state.withLock { $0.s.recordingSteps } }
        set { state.withLock { $0.s.recordingSteps = newValue } }
    }

    /// Flips the bits of `mask` in the byte at `position` of a file, in what reads see and
    /// in what is durable: damage on the disk itself.
    public func flip(_ path: String, at position: Int, mask: UInt8 = 0x01) {
        state.withLock { box in
            guard let node = try? Self.lookup(box.s, path), !node.isDirectory else {  // absent: a programmer error below
                preconditionFailure("flip: no file \(path)")
            }
            if position < node.data.count { node.data[position] ^= mask }
            if position < node.durable.count { node.durable[position] ^= mask }
        }
    }

    // MARK: - FileSystem

    public func openFile(_ path: String, mode: File.Mode) throws(KappaError) -> File {
        try state.withLock { (box) throws(KappaError) -> File in
            try Self.checkUp(box.s, path)
            let (dir, dirPath, name) = try Self.parent(box.s, path)
            var node = dir.entries[name]
            if let existing = node, existing.isDirectory {
                throw KappaError(.io, "open failed: Is a directory", path: path, systemError: EISDIR)
            }
            switch mode {
            case .readOnly, .readWrite:
                guard node != nil else { throw KappaError(.notFound, "open failed: No such file or directory", path: path, systemError: ENOENT) }
            case .readWriteCreate, .createNew:
                if node != nil, mode == .createNew {
                    throw KappaError(.alreadyExists, "open failed: File exists", path: path, systemError: EEXIST)
                }
                if node == nil {
                    try Self.step(&box.s, "create", path)
                    let created = Node(isDirectory: false)
                    Self.change(&box.s, dir, dirPath, [(name, created)])
                    node = created
                }
            }
            let handle = box.s.nextHandle
            box.s.nextHandle += 1
            return File(path: path, io: SimulatedFileIO(fs: self, node: node!, handle: handle, generation: box.s.generation,
                                                         path: path, writable: mode != .readOnly))
        }
    }

    public func exists(_ path: String) -> Bool {
        state.withLock { box in (try? Self.lookup(box.s, path)) != nil }  // absence is the answer
    }

    public func isDirectory(_ path: String) -> Bool {
        state.withLock { box in (try? Self.lookup(box.s, path))?.isDirectory ?? false }  // absence is the answer
    }

    public func makeDirectory(_ path: String) throws(KappaError) -> Bool {
        try state.withLock { (box) throws(KappaError) -> Bool in
            try Self.checkUp(box.s, path)
            let (dir, dirPath, name) = try Self.parent(box.s, path)
            if let existing = dir.entries[name] {
                guard existing.isDirectory else { throw KappaError(.io, "mkdir failed: File exists", path: path, systemError: EEXIST) }
                return false
            }
            try Self.step(&box.s, "mkdir", path)
            Self.change(&box.s, dir, dirPath, [(name, Node(isDirectory: true))])
            return true
        }
    }

    public func list(_ path: String) throws(KappaError) -> [String] {
        try state.withLock { (box) throws(KappaError) -> [String] in
            try Self.checkUp(box.s, path)
            let node = try Self.lookup(box.s, path)
            guard node.isDirectory else { throw KappaError(.io, "opendir failed: Not a directory", path: path, systemError: ENOTDIR) }
            return Array(node.entries.keys)
        }
    }

    public func remove(_ path: String) throws(KappaError) {
        try state.withLock { (box) throws(KappaError) in
            try Self.checkUp(box.s, path)
            let (dir, dirPath, name) = try Self.parent(box.s, path)
            guard let node = dir.entries[name] else { return }
            guard !node.isDirectory else { throw KappaError(.io, "unlink failed: Is a directory", path: path, systemError: EISDIR) }
            try Self.step(&box.s, "remove", path)
            Self.change(&box.s, dir, dirPath, [(name, nil)])
        }
    }

    public func removeDirectory(_ path: String) throws(KappaError) {
        try state.withLock { (box) throws(KappaError) in
            try Self.checkUp(box.s, path)
            let (dir, dirPath, name) = try Self.parent(box.s, path)
            guard let node = dir.entries[name] else { return }
            guard node.isDirectory, node.entries.isEmpty else {
                throw KappaError(.io, "rmdir failed: Directory not empty", path: path, systemError: ENOTEMPTY)
            }
            try Self.step(&box.s, "rmdir", path)
            Self.change(&box.s, dir, dirPath, [(name, nil)])
        }
    }

    public func rename(_ from: String, to: String) throws(KappaError) {
        try state.withLock { (box) throws(KappaError) in
            try Self.checkUp(box.s, from)
            let (fromDir, fromPath, fromName) = try Self.parent(box.s, from)
            let (toDir, toPath, toName) = try Self.parent(box.s, to)
            guard let node = fromDir.entries[fromName] else {
                throw KappaError(.notFound, "rename failed: No such file or directory", path: from, systemError: ENOENT)
            }
            precondition(!node.isDirectory, "the simulation renames files only: \(from)")
            try Self.step(&box.s, "rename", from + " -> " + to)
            if fromDir === toDir {
                Self.change(&box.s, fromDir, fromPath, [(toName, node), (fromName, nil)])
            } else {
                Self.change(&box.s, toDir, toPath, [(toName, node)])
                Self.change(&box.s, fromDir, fromPath, [(fromName, nil)])
            }
        }
    }

    public func syncDirectory(_ path: String) throws(KappaError) {
        try state.withLock { (box) throws(KappaError) in
            try Self.checkUp(box.s, path)
            let node = try Self.lookup(box.s, path)
            guard node.isDirectory else { throw KappaError(.io, "fsync directory failed: Not a directory", path: path, systemError: ENOTDIR) }
            try Self.step(&box.s, "fsync-dir", path)
            node.durableEntries = node.entries
            node.pending = []
        }
    }

    public var bootID: BootID { state.withLock { BootID(high: 0x5155_4C41_5445_4400, low: $0.s.boot) } }

    // MARK: - Handles

    func withHandle<T>(_ io: SimulatedFileIO, _ body: (inout State) throws(KappaError) -> T) throws(KappaError) -> T {
        try state.withLock { (box) throws(KappaError) -> T in
            try Self.checkUp(box.s, io.path)
            guard io.generation == box.s.generation else {
                throw KappaError(.io, "simulated: a handle of a process that died (before a restart)", path: io.path, systemError: EBADF)
            }
            return try body(&box.s)
        }
    }

    /// Takes or tries a lock: waits by spinning outside the state lock, as a process
    /// blocked in flock would. A wait of more than 20 s is a deadlock in a test.
    func lock(_ io: SimulatedFileIO, _ kind: FileLockKind, wait: Bool) throws(KappaError) -> Bool {
        let deadline = monotonicNanos() + 20_000_000_000
        while true {
            let got = try withHandle(io) { (_) throws(KappaError) -> Bool in
                let node = io.node
                switch kind {
                case .exclusive:
                    guard node.exclusiveHolder == nil || node.exclusiveHolder == io.handle,
                          node.sharedHolders.subtracting([io.handle]).isEmpty else { return false }
                    node.sharedHolders.remove(io.handle)
                    node.exclusiveHolder = io.handle
                case .shared:
                    guard node.exclusiveHolder == nil || node.exclusiveHolder == io.handle else { return false }
                    if node.exclusiveHolder == io.handle { node.exclusiveHolder = nil }
                    node.sharedHolders.insert(io.handle)
                }
                return true
            }
            if got || !wait { return got }
            precondition(monotonicNanos() < deadline, "simulated flock of \(io.path) waited 20 s: a deadlock")
            sched_yield()
        }
    }

    func unlock(_ io: SimulatedFileIO) {
        state.withLock { box in
            guard io.generation == box.s.generation else { return }
            if io.node.exclusiveHolder == io.handle { io.node.exclusiveHolder = nil }
            io.node.sharedHolders.remove(io.handle)
        }
    }

    // MARK: - Internals (called with the state locked)

    static func checkUp(_ s: State, _ path: String) throws(KappaError) {
        if s.crashed { throw KappaError(.io, "simulated: the machine crashed", path: path, systemError: EIO) }
    }

    /// Counts a step and applies its fault, if any. A crash or failure throws.
    static func step(_ s: inout State, _ operation: String, _ path: String, onCrash: ((inout State) -> Void)? = nil) throws(KappaError) {
        s.steps += 1
        if s.recordingSteps { s.log.append(Step(number: s.steps, operation: operation, path: path)) }
        guard let fault = s.faults[s.steps] else { return }
        switch fault {
        case .crash:
            onCrash?(&s)
            s.crashed = true
            throw KappaError(.io, "simulated crash at step \(s.steps) (\(operation))", path: path, systemError: EIO)
        case .diskFull:
            throw KappaError(.io, "\(operation) failed: No space left on device (simulated)", path: path, systemError: ENOSPC)
        case .ioError:
            throw KappaError(.io, "\(operation) failed: Input/output error (simulated)", path: path, systemError: EIO)
        case .shortWrite:
            return  // the write itself handles it
        }
    }

    /// `path` as the cache keys it: absolute, no empty components, no trailing slash.
    static func normalized(_ path: String) -> String {
        let slash = UInt8(ascii: "/")
        guard path.utf8.first == slash else { preconditionFailure("simulated paths are absolute: \(path)") }
        var previousWasSlash = false
        var clean = true
        for b in path.utf8 {
            if b == slash && previousWasSlash { clean = false }
            previousWasSlash = b == slash
        }
        if previousWasSlash && path.utf8.count > 1 { clean = false }
        return clean ? path : "/" + path.split(separator: "/").joined(separator: "/")
    }

    static func lookup(_ s: State, _ path: String) throws(KappaError) -> Node {
        guard let node = s.paths[normalized(path)] else {
            throw KappaError(.notFound, "No such file or directory", path: path, systemError: ENOENT)
        }
        return node
    }

    /// The directory holding `path`, its path, and the last name of `path`.
    static func parent(_ s: State, _ path: String) throws(KappaError) -> (Node, String, String) {
        let full = normalized(path)
        guard full != "/", let slash = full.lastIndex(of: "/") else { throw KappaError(.invalidArgument, "no name in path", path: path) }
        let dirPath = slash == full.startIndex ? "/" : String(full[..<slash])
        guard let dir = s.paths[dirPath] else { throw KappaError(.notFound, "No such file or directory", path: path, systemError: ENOENT) }
        guard dir.isDirectory else { throw KappaError(.io, "Not a directory", path: path, systemError: ENOTDIR) }
        return (dir, dirPath, String(full[full.index(after: slash)...]))
    }

    /// Applies a directory change now (what later lookups see), pending its fsync.
    static func change(_ s: inout State, _ dir: Node, _ dirPath: String, _ changes: [(name: String, node: Node?)]) {
        for (name, node) in changes {
            if let old = dir.entries[name] { old.links -= 1 }
            dir.entries[name] = node
            s.paths[(dirPath == "/" ? "" : dirPath) + "/" + name] = node
            node?.links += 1
        }
        dir.pending.append(changes)
    }

    /// Rebuilds the path cache from the tree (after a power loss rewrote it).
    static func reindex(_ s: inout State) {
        var paths: [String: Node] = ["/": s.root]
        func walk(_ node: Node, _ path: String) {
            for (name, child) in node.entries {
                let full = (path == "/" ? "" : path) + "/" + name
                paths[full] = child
                if child.isDirectory { walk(child, full) }
            }
        }
        walk(s.root, "/")
        s.paths = paths
    }

    static func totalBytes(_ node: Node) -> Int {
        node.isDirectory ? node.entries.values.reduce(0) { $0 + totalBytes($1) } : node.data.count
    }

    static func dropLocks(_ node: Node) {
        node.exclusiveHolder = nil
        node.sharedHolders = []
        node.failNextWrite = false
        for child in node.entries.values { dropLocks(child) }
    }

    /// What a power loss leaves: per directory, the durable entries plus a seeded prefix
    /// of the pending changes; per file reached, a seeded page mix of durable and
    /// written bytes.
    static func losePower(_ dir: Node, random: inout SeededRandom) {
        var entries = dir.durableEntries
        let kept = dir.pending.isEmpty ? 0 : random.int(0...dir.pending.count)
        for changes in dir.pending.prefix(kept) {
            for (name, node) in changes { entries[name] = node }
        }
        dir.entries = entries
        dir.durableEntries = entries
        dir.pending = []
        for child in entries.values {
            if child.isDirectory {
                losePower(child, random: &random)
            } else {
                loseUnsyncedPages(child, random: &random)
            }
        }
    }

    static func loseUnsyncedPages(_ file: Node, random: inout SeededRandom) {
        guard file.data != file.durable else { return }
        let written = file.data, synced = file.durable
        let size = random.chance(50) ? written.count : synced.count
        var out = [UInt8](repeating: 0, count: size)
        var page = 0
        while page * pageBytes < size {
            let range = (page * pageBytes)..<min(size, (page + 1) * pageBytes)
            let fromWritten = random.chance(50)
            for i in range {
                if fromWritten, i < written.count { out[i] = written[i] } else if !fromWritten, i < synced.count { out[i] = synced[i] }
            }
            page += 1
        }
        file.data = out
        file.durable = out
    }

    static func recountLinks(_ root: Node) {
        func clear(_ n: Node) {
            n.links = 0
            for c in n.entries.values { clear(c) }
        }
        func count(_ n: Node) {
            for c in n.entries.values {
                c.links += 1
                if c.isDirectory { count(c) }
            }
        }
        clear(root)
        count(root)
    }
}

/// One open file of a `SimulatedFileSystem`.
final class SimulatedFileIO: FileIO {
    let fs: SimulatedFileSystem
    let node: SimulatedFileSystem.Node
    let handle: Int
    let generation: Int
    let path: String
    let writable: Bool

    init(fs: SimulatedFileSystem, node: SimulatedFileSystem.Node, handle: Int, generation: Int, path: String, writable: Bool) {
        self.fs = fs
        self.node = node
        self.handle = handle
        self.generation = generation
        self.path = path
        self.writable = writable
    }

    deinit { fs.unlock(self) }

    func pread(into buffer: UnsafeMutableRawPointer, count: Int, at position: Int64) throws(KappaError) -> Int {
        try fs.withHandle(self) { (_) throws(KappaError) -> Int in
            let p = Int(position)
            guard p < node.data.count else { return 0 }
            let n = min(count, node.data.count - p)
            node.data.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + p, byteCount: n) }
            return n
        }
    }

    func pwrite(_ bytes: UnsafeRawBufferPointer, at position: Int64) throws(KappaError) -> Int {
        precondition(writable, "pwrite on a read-only handle of \(path)")
        return try fs.withHandle(self) { (s) throws(KappaError) -> Int in
            let p = Int(position)
            var n = bytes.count
            if node.failNextWrite {
                node.failNextWrite = false
                try SimulatedFileSystem.step(&s, "pwrite", path)
                throw KappaError(.io, "pwrite failed: No space left on device (simulated)", path: path, systemError: ENOSPC)
            }
            if let capacity = s.capacityBytes {
                let growth = max(0, p + n - node.data.count)
                let room = capacity - SimulatedFileSystem.totalBytes(s.root)  // a walk per write: tests with a capacity are small
                if growth > room {
                    n = max(0, n - (growth - max(0, room)))
                    if n == 0 {
                        try SimulatedFileSystem.step(&s, "pwrite", path)
                        throw KappaError(.io, "pwrite failed: No space left on device (simulated)", path: path, systemError: ENOSPC)
                    }
                    node.failNextWrite = true
                }
            }
            let fault = s.faults[s.steps + 1]
            if fault == .shortWrite, n > 1 {
                n = s.random.int(1...(n - 1))
                node.failNextWrite = true
            }
            try SimulatedFileSystem.step(&s, "pwrite", path) { (crashed: inout SimulatedFileSystem.State) in
                // kill -9 or power off in the middle of the copy: a prefix landed.
                let kept = crashed.random.int(0...n)
                self.apply(bytes, count: kept, at: p)
            }
            apply(bytes, count: n, at: p)
            return n
        }
    }

    private func apply(_ bytes: UnsafeRawBufferPointer, count n: Int, at p: Int) {
        guard n > 0 else { return }
        if node.data.count < p + n { node.data += [UInt8](repeating: 0, count: p + n - node.data.count) }
        node.data.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: p).copyMemory(from: bytes.baseAddress!, byteCount: n) }
    }

    func size() throws(KappaError) -> Int64 {
        try fs.withHandle(self) { (_) throws(KappaError) -> Int64 in Int64(node.data.count) }
    }

    func isLinked() throws(KappaError) -> Bool {
        try fs.withHandle(self) { (_) throws(KappaError) -> Bool in node.links > 0 }
    }

    func truncate(to size: Int64) throws(KappaError) {
        precondition(writable, "truncate on a read-only handle of \(path)")
        try fs.withHandle(self) { (s) throws(KappaError) in
            try SimulatedFileSystem.step(&s, "truncate", path)
            let n = Int(size)
            if n < node.data.count { node.data.removeLast(node.data.count - n) } else { node.data += [UInt8](repeating: 0, count: n - node.data.count) }
        }
    }

    func sync() throws(KappaError) {
        try fs.withHandle(self) { (s) throws(KappaError) in
            try SimulatedFileSystem.step(&s, "fsync", path)
            node.durable = node.data
        }
    }

    func lock(_ kind: FileLockKind, wait: Bool) throws(KappaError) -> Bool { try fs.lock(self, kind, wait: wait) }

    func unlock() { fs.unlock(self) }
}
