#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaFormat

/// A POSIX file descriptor with the calls the log needs, each throwing a `KappaError`
/// that names the file. Owns its descriptor; not thread-safe.
public final class File {
    public let path: String
    public let fd: Int32

    public enum Mode {
        case readOnly
        case readWrite
        case readWriteCreate
    }

    public init(path: String, mode: Mode) throws(KappaError) {
        self.path = path
        let flags: Int32
        switch mode {
        case .readOnly: flags = O_RDONLY | O_CLOEXEC
        case .readWrite: flags = O_RDWR | O_CLOEXEC
        case .readWriteCreate: flags = O_RDWR | O_CREAT | O_CLOEXEC
        }
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else {
            let e = errno
            throw KappaError(e == ENOENT ? .notFound : .io, "open failed: \(errnoDescription(e))", path: path)
        }
        self.fd = fd
    }

    deinit { close(fd) }

    public func size() throws(KappaError) -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw KappaError.io("fstat", path: path, errno: errno) }
        return Int64(st.st_size)
    }

    /// The size, and whether the file still has a name (false once it was deleted).
    public func sizeAndLinked() throws(KappaError) -> (size: Int64, linked: Bool) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw KappaError.io("fstat", path: path, errno: errno) }
        return (Int64(st.st_size), st.st_nlink > 0)
    }

    /// Reads up to `count` bytes at `position` into `buffer`; returns bytes read (0 = EOF).
    public func read(into buffer: UnsafeMutableRawPointer, count: Int, at position: Int64) throws(KappaError) -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(position) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw KappaError.io("pread", path: path, errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `bytes` at `position`.
    public func write(_ bytes: UnsafeRawBufferPointer, at position: Int64) throws(KappaError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(position) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw KappaError.io("pwrite", path: path, errno: errno)
            }
            done += n
        }
    }

    public func truncate(to size: Int64) throws(KappaError) {
        guard ftruncate(fd, off_t(size)) == 0 else { throw KappaError.io("ftruncate", path: path, errno: errno) }
    }

    public func sync() throws(KappaError) {
        guard fsync(fd) == 0 else { throw KappaError.io("fsync", path: path, errno: errno) }
    }

    public func write(_ bytes: [UInt8], at position: Int64) throws(KappaError) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 8)
        defer { copy.deallocate() }
        copy.copyBytes(from: bytes)
        try write(UnsafeRawBufferPointer(rebasing: copy[0..<bytes.count]), at: position)
    }

    /// Reads `count` bytes at `position` into a new array (short at end of file).
    public func read(count: Int, at position: Int64) throws(KappaError) -> [UInt8] {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count), alignment: 8)
        defer { raw.deallocate() }
        let got = try read(into: raw, count: count, at: position)
        return Array(UnsafeRawBufferPointer(start: raw, count: got))
    }

    /// Reads the whole file (small metadata files only).
    public func readAll(limit: Int = 16 << 20) throws(KappaError) -> [UInt8] {
        let n = Int(try size())
        guard n <= limit else { throw KappaError(.limitExceeded, "file is \(n) bytes, limit \(limit)", path: path) }
        guard n > 0 else { return [] }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 8)
        defer { raw.deallocate() }
        let got = try read(into: raw, count: n, at: 0)
        return Array(UnsafeRawBufferPointer(start: raw, count: got))
    }
}

/// An advisory whole-file lock (flock). The kernel drops it when the holder exits, even
/// by kill -9, which is what makes it the liveness signal for writers and group members.
public final class FileLock {
    public let file: File

    public init(path: String) throws(KappaError) {
        file = try File(path: path, mode: .readWriteCreate)
    }

    public func lockExclusive() throws(KappaError) { try lock(LOCK_EX) }
    public func lockShared() throws(KappaError) { try lock(LOCK_SH) }

    /// Returns false when another holder has it.
    public func tryLockExclusive() throws(KappaError) -> Bool { try tryLock(LOCK_EX) }
    public func tryLockShared() throws(KappaError) -> Bool { try tryLock(LOCK_SH) }

    public func unlock() {
        _ = flock(file.fd, LOCK_UN)
    }

    private func lock(_ op: Int32) throws(KappaError) {
        while flock(file.fd, op) != 0 {
            if errno == EINTR { continue }
            throw KappaError.io("flock", path: file.path, errno: errno)
        }
    }

    private func tryLock(_ op: Int32) throws(KappaError) -> Bool {
        while flock(file.fd, op | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK { return false }
            throw KappaError.io("flock", path: file.path, errno: errno)
        }
        return true
    }

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

/// Small filesystem helpers; each throws a `KappaError` naming the path.
public enum FS {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func makeDirectories(_ path: String) throws(KappaError) {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if !isDirectory(prefix) {
                if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                    throw KappaError.io("mkdir", path: prefix, errno: errno)
                }
            }
            prefix += "/"
        }
    }

    /// Entry names in a directory, unsorted, without "." and "..".
    public static func list(_ path: String) throws(KappaError) -> [String] {
        guard let dir = opendir(path) else {
            let e = errno
            throw KappaError(e == ENOENT ? .notFound : .io, "opendir failed: \(errnoDescription(e))", path: path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func remove(_ path: String) throws(KappaError) {
        if unlink(path) != 0 && errno != ENOENT { throw KappaError.io("unlink", path: path, errno: errno) }
    }

    public static func removeTree(_ path: String) throws(KappaError) {
        guard isDirectory(path) else {
            try remove(path)
            return
        }
        for name in try list(path) { try removeTree(path + "/" + name) }
        if rmdir(path) != 0 && errno != ENOENT { throw KappaError.io("rmdir", path: path, errno: errno) }
    }

    /// Replaces `path` atomically with `bytes`: write a temporary file, fsync it, rename
    /// over the target, fsync the directory. A reader sees the old or the new content,
    /// never a mix, also after kill -9 or power loss.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, sync: Bool = true) throws(KappaError) {
        let tmp = path + ".tmp.\(getpid())"
        do {
            let f = try File(path: tmp, mode: .readWriteCreate)
            try f.truncate(to: 0)
            try f.write(bytes, at: 0)
            if sync { try f.sync() }
        }
        guard rename(tmp, path) == 0 else {
            let e = errno
            _ = unlink(tmp)
            throw KappaError.io("rename", path: path, errno: e)
        }
        if sync { syncDirectory(of: path) }
    }

    public static func syncDirectory(of path: String) {
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }
}
