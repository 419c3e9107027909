import KappaCore

/// What a `File` does underneath: one open file of some `FileSystem`. The real one is
/// `PosixFileIO` (a file descriptor); `KappaTesting.SimulatedFileSystem` has an
/// in-memory twin that can fail or crash at any chosen step.
///
/// Contract: every method throws a `KappaError` that names the file (and carries the
/// `errno` in `systemError` for system-call failures); `pread` and `pwrite` may transfer
/// fewer bytes than asked (`File` loops); `pwrite` never returns 0. Not thread-safe.
public protocol FileIO: AnyObject {
    /// Reads up to `count` bytes at `position`; 0 at end of file.
    func pread(into buffer: UnsafeMutableRawPointer, count: Int, at position: Int64) throws(KappaError) -> Int
    /// Writes some of `bytes` at `position`; returns how many (> 0).
    func pwrite(_ bytes: UnsafeRawBufferPointer, at position: Int64) throws(KappaError) -> Int
    func size() throws(KappaError) -> Int64
    /// False once the file has no name left (it was deleted while open).
    func isLinked() throws(KappaError) -> Bool
    func truncate(to size: Int64) throws(KappaError)
    /// Forces the file's data and size to stable storage (fsync).
    func sync() throws(KappaError)
    /// An advisory whole-file lock of the open file (flock semantics: per open file,
    /// dropped when the holder closes it or dies). With `wait` false, returns false
    /// instead of blocking when another holder has a conflicting lock.
    func lock(_ kind: FileLockKind, wait: Bool) throws(KappaError) -> Bool
    func unlock()
}

public enum FileLockKind: Sendable {
    case shared
    case exclusive
}

/// An open file: positioned reads and writes that transfer everything asked for, each
/// failure a `KappaError` naming the file. Owns its `FileIO`; not thread-safe.
public final class File {
    public let path: String
    @usableFromInline let io: any FileIO

    public enum Mode: Sendable {
        case readOnly
        case readWrite
        case readWriteCreate
        /// Create a new file; fails with `.alreadyExists` if the name is taken.
        case createNew
    }

    /// Opens `path` on the real file system.
    public convenience init(path: String, mode: Mode) throws(KappaError) {
        self.init(path: path, io: try PosixFileIO.open(path, mode: mode))
    }

    /// Wraps an open file of some file system (what `FileSystem.openFile` does).
    public init(path: String, io: any FileIO) {
        self.path = path
        self.io = io
    }

    public func size() throws(KappaError) -> Int64 { try io.size() }

    /// The size, and whether the file still has a name (false once it was deleted).
    public func sizeAndLinked() throws(KappaError) -> (size: Int64, linked: Bool) {
        (try io.size(), try io.isLinked())
    }

    /// Reads up to `count` bytes at `position` into `buffer`; returns bytes read (short
    /// only at end of file).
    @inlinable
    public func read(into buffer: UnsafeMutableRawPointer, count: Int, at position: Int64) throws(KappaError) -> Int {
        var done = 0
        while done < count {
            let n = try io.pread(into: buffer + done, count: count - done, at: position + Int64(done))
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `bytes` at `position`. On failure some prefix may have been
    /// written: callers that must not leave it behind truncate back.
    @inlinable
    public func write(_ bytes: UnsafeRawBufferPointer, at position: Int64) throws(KappaError) {
        var done = 0
        while done < bytes.count {
            done += try io.pwrite(UnsafeRawBufferPointer(rebasing: bytes[done...]), at: position + Int64(done))
        }
    }

    public func write(_ bytes: [UInt8], at position: Int64) throws(KappaError) {
        // withUnsafeBytes rethrows untyped errors: carry the typed one out by hand.
        var failure: KappaError?
        bytes.withUnsafeBytes { raw in
            do throws(KappaError) { try write(raw, at: position) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    public func truncate(to size: Int64) throws(KappaError) { try io.truncate(to: size) }

    public func sync() throws(KappaError) { try io.sync() }

    /// Reads `count` bytes at `position` into a new array (short at end of file).
    public func read(count: Int, at position: Int64) throws(KappaError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var result: Result<Int, KappaError> = .success(0)
        out.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            do throws(KappaError) { result = .success(try read(into: base, count: count, at: position)) } catch { result = .failure(error) }
        }
        let got = try result.get()
        out.removeLast(count - got)
        return out
    }

    /// Reads the whole file (small metadata files only).
    public func readAll(limit: Int = 16 << 20) throws(KappaError) -> [UInt8] {
        let n = Int(try size())
        guard n <= limit else { throw KappaError(.limitExceeded, "file is \(n) bytes, limit \(limit)", path: path) }
        return try read(count: n, at: 0)
    }
}

/// An advisory whole-file lock (flock). The kernel drops it when the holder exits, even
/// by kill -9, which is what makes it the liveness signal for writers and group members.
public final class FileLock {
    public let file: File

    /// A lock file on the real file system.
    public convenience init(path: String) throws(KappaError) {
        self.init(file: try File(path: path, mode: .readWriteCreate))
    }

    public convenience init(path: String, fileSystem: any FileSystem) throws(KappaError) {
        self.init(file: try fileSystem.openFile(path, mode: .readWriteCreate))
    }

    public init(file: File) { self.file = file }

    public func lockExclusive() throws(KappaError) { _ = try file.io.lock(.exclusive, wait: true) }
    public func lockShared() throws(KappaError) { _ = try file.io.lock(.shared, wait: true) }

    /// Returns false when another holder has it.
    public func tryLockExclusive() throws(KappaError) -> Bool { try file.io.lock(.exclusive, wait: false) }
    public func tryLockShared() throws(KappaError) -> Bool { try file.io.lock(.shared, wait: false) }

    public func unlock() { file.io.unlock() }

    /// Runs `body` holding the lock exclusively.
    public func withExclusive<T>(_ body: () throws(KappaError) -> T) throws(KappaError) -> T {
        try lockExclusive()
        defer { unlock() }
        return try body()
    }

    public func withShared<T>(_ body: () throws(KappaError) -> T) throws(KappaError) -> T {
        try lockShared()
        defer { unlock() }
        return try body()
    }
}
