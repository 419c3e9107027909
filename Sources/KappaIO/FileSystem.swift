import KappaCore
import Synchronization

/// Every file operation of the log and the consumer groups goes through a `FileSystem`
/// (`DataDirectory.fileSystem`), so tests can swap the disk for one that fails or loses
/// power at a chosen step (`KappaTesting.SimulatedFileSystem`). The real one is
/// `PosixFileSystem.shared`.
///
/// Contract (what the log relies on, and what the simulation models):
/// - `openFile` with a creating mode makes the name visible at once, but the name is
///   durable only after `syncDirectory` of its parent. Likewise `rename` and `remove`.
/// - A file's bytes and size are durable after `File.sync()`; before that a power loss
///   may keep any mix of old and new pages (out-of-order writeback).
/// - `rename` within a directory is atomic: after a crash the name holds the old or the
///   new file, never neither (once the old one was durable).
/// - `bootID` changes when the machine restarts, and only then: what is in the page cache
///   (written, not yet synced) is trusted only within the boot that wrote it.
/// Implementations are thread-safe.
public protocol FileSystem: AnyObject, Sendable {
    func openFile(_ path: String, mode: File.Mode) throws(KappaError) -> File
    func exists(_ path: String) -> Bool
    func isDirectory(_ path: String) -> Bool
    /// Creates one directory; false if it already existed.
    @discardableResult func makeDirectory(_ path: String) throws(KappaError) -> Bool
    /// Entry names in a directory, unsorted, without "." and "..".
    func list(_ path: String) throws(KappaError) -> [String]
    /// Unlinks a file; a missing file is not an error.
    func remove(_ path: String) throws(KappaError)
    /// Removes an empty directory; a missing one is not an error.
    func removeDirectory(_ path: String) throws(KappaError)
    /// Renames `from` to `to` (same directory), replacing `to` atomically.
    func rename(_ from: String, to: String) throws(KappaError)
    /// Makes the directory's entries (creates, renames, removes) durable.
    func syncDirectory(_ path: String) throws(KappaError)
    /// Identifies the current boot of the machine (Linux: /proc/sys/kernel/random/boot_id).
    var bootID: BootID { get }
}

/// 16 bytes naming one boot of the machine. `unknown` (all zero) never equals a real one.
public struct BootID: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public static let unknown = BootID(high: 0, low: 0)

    public var description: String {
        let h = String(high, radix: 16), l = String(low, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h + String(repeating: "0", count: 16 - l.count) + l
    }
}

/// A process-wide counter for temporary names, so two threads replacing the same file
/// never share a temporary file.
private let temporaryNameCounter = Atomic<Int>(0)

extension FileSystem {
    /// Creates `path` and its missing parents, making each new directory's name durable
    /// (a topic's partition directories must survive a power loss once created).
    public func makeDirectories(_ path: String) throws(KappaError) {
        if isDirectory(path) { return }
        let absolute = path.hasPrefix("/")
        let parts = path.split(separator: "/")
        var parent = absolute ? "/" : "."
        for i in parts.indices {
            let dir = (absolute ? "/" : "") + parts[...i].joined(separator: "/")
            if !isDirectory(dir), try makeDirectory(dir) { try syncDirectory(parent) }
            parent = dir
        }
    }

    /// Removes a file or a directory with everything in it.
    public func removeTree(_ path: String) throws(KappaError) {
        guard isDirectory(path) else {
            try remove(path)
            return
        }
        for name in try list(path) { try removeTree(path + "/" + name) }
        try removeDirectory(path)
    }

    /// Replaces `path` atomically with `bytes`: write a temporary file, fsync it, rename
    /// over the target, fsync the directory. A reader sees the old or the new content,
    /// never a mix, also after kill -9 or power loss. With `sync` false only the kill -9
    /// half holds (a power loss may keep the old content or lose a new file).
    public func writeAtomically(_ bytes: [UInt8], to path: String, sync: Bool = true) throws(KappaError) {
        // withUnsafeBytes rethrows untyped errors: carry the typed one out by hand.
        var failure: KappaError?
        bytes.withUnsafeBytes { raw in
            do throws(KappaError) { try writeAtomically(raw, to: path, sync: sync) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// `writeAtomically` of bytes the caller holds (no copy into an array).
    public func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String, sync: Bool = true) throws(KappaError) {
        let tmp = path + ".tmp.\(processID())-\(temporaryNameCounter.wrappingAdd(1, ordering: .relaxed).oldValue)"
        do {
            let f = try openFile(tmp, mode: .readWriteCreate)
            try f.truncate(to: 0)
            try f.write(bytes, at: 0)
            if sync { try f.sync() }
            try rename(tmp, to: path)
        } catch {
            removeLeftover(tmp)
            throw error
        }
        if sync { try syncDirectory(of: path) }
    }

    /// Best-effort removal of a temporary file after a failure: the failure is what the
    /// caller reports; a leftover temporary name is harmless (never read, and unique).
    private func removeLeftover(_ tmp: String) {
        do { try remove(tmp) } catch {}
    }

    /// fsyncs the directory holding `path`.
    public func syncDirectory(of path: String) throws(KappaError) {
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        try syncDirectory(dir.isEmpty ? (path.hasPrefix("/") ? "/" : ".") : dir)
    }

    /// The whole content of a small file, or nil if it does not exist.
    public func readFileIfExists(_ path: String, limit: Int = 16 << 20) throws(KappaError) -> [UInt8]? {
        let f: File
        do {
            f = try openFile(path, mode: .readOnly)
        } catch where error.code == .notFound {
            return nil
        }
        return try f.readAll(limit: limit)
    }
}
