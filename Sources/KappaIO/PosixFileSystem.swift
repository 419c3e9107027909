#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore

/// The real file system: POSIX calls, each failure a `KappaError` naming the path with
/// its `errno`. Stateless apart from the boot id, read once per process.
public final class PosixFileSystem: FileSystem {
    public static let shared = PosixFileSystem()

    public init() {}

    public func openFile(_ path: String, mode: File.Mode) throws(KappaError) -> File {
        File(path: path, io: try PosixFileIO.open(path, mode: mode))
    }

    public func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public func makeDirectory(_ path: String) throws(KappaError) -> Bool {
        if mkdir(path, 0o755) == 0 { return true }
        let e = errno
        if e == EEXIST { return false }
        throw KappaError.io("mkdir", path: path, errno: e)
    }

    public func list(_ path: String) throws(KappaError) -> [String] {
        guard let dir = opendir(path) else {
            let e = errno
            throw KappaError(e == ENOENT ? .notFound : .io, "opendir failed: \(errnoDescription(e))", path: path, systemError: e)
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

    public func remove(_ path: String) throws(KappaError) {
        if unlink(path) != 0 && errno != ENOENT { throw KappaError.io("unlink", path: path, errno: errno) }
    }

    public func removeDirectory(_ path: String) throws(KappaError) {
        if rmdir(path) != 0 && errno != ENOENT { throw KappaError.io("rmdir", path: path, errno: errno) }
    }

    public func rename(_ from: String, to: String) throws(KappaError) {
        #if canImport(Glibc)
        let r = Glibc.rename(from, to)
        #else
        let r = Darwin.rename(from, to)
        #endif
        guard r == 0 else { throw KappaError.io("rename to \(to)", path: from, errno: errno) }
    }

    public func syncDirectory(_ path: String) throws(KappaError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw KappaError.io("open directory", path: path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw KappaError.io("fsync directory", path: path, errno: errno) }
    }

    public var bootID: BootID { Self.currentBootID }

    /// Read once: it cannot change while this process lives.
    static let currentBootID: BootID = readBootID()

    /// /proc/sys/kernel/random/boot_id: 32 hex digits and 4 dashes. Where it cannot be
    /// read, `unknown`: then nothing written in the page cache is trusted across
    /// processes, which is slower (writers rescan from the recovery point) but safe.
    static func readBootID() -> BootID {
        guard let f = try? File(path: "/proc/sys/kernel/random/boot_id", mode: .readOnly),  // absence is the answer, not an error
              let bytes = try? f.read(count: 64, at: 0) else { return .unknown }
        var digits: [UInt64] = []
        for b in bytes {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits.append(UInt64(b - UInt8(ascii: "0")))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digits.append(UInt64(b - UInt8(ascii: "a") + 10))
            default: continue
            }
        }
        guard digits.count == 32 else { return .unknown }
        let high = digits[0..<16].reduce(0) { $0 << 4 | $1 }
        let low = digits[16..<32].reduce(0) { $0 << 4 | $1 }
        return BootID(high: high, low: low)
    }
}

/// The process id, for temporary file names.
func processID() -> Int32 { getpid() }

/// A POSIX file descriptor. Closes it on deinit (which also drops its flock).
public final class PosixFileIO: FileIO {
    let fd: Int32
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    static func open(_ path: String, mode: File.Mode) throws(KappaError) -> PosixFileIO {
        let flags: Int32
        switch mode {
        case .readOnly: flags = O_RDONLY | O_CLOEXEC
        case .readWrite: flags = O_RDWR | O_CLOEXEC
        case .readWriteCreate: flags = O_RDWR | O_CREAT | O_CLOEXEC
        case .createNew: flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC
        }
        #if canImport(Glibc)
        let fd = Glibc.open(path, flags, 0o644)
        #else
        let fd = Darwin.open(path, flags, 0o644)
        #endif
        guard fd >= 0 else {
            let e = errno
            let code: KappaError.Code = e == ENOENT ? .notFound : e == EEXIST ? .alreadyExists : .io
            throw KappaError(code, "open failed: \(errnoDescription(e))", path: path, systemError: e)
        }
        return PosixFileIO(fd: fd, path: path)
    }

    deinit { close(fd) }

    public func pread(into buffer: UnsafeMutableRawPointer, count: Int, at position: Int64) throws(KappaError) -> Int {
        while true {
            #if canImport(Glibc)
            let n = Glibc.pread(fd, buffer, count, off_t(position))
            #else
            let n = Darwin.pread(fd, buffer, count, off_t(position))
            #endif
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw KappaError.io("pread", path: path, errno: errno)
        }
    }

    public func pwrite(_ bytes: UnsafeRawBufferPointer, at position: Int64) throws(KappaError) -> Int {
        while true {
            #if canImport(Glibc)
            let n = Glibc.pwrite(fd, bytes.baseAddress, bytes.count, off_t(position))
            #else
            let n = Darwin.pwrite(fd, bytes.baseAddress, bytes.count, off_t(position))
            #endif
            if n > 0 { return n }
            if n < 0 && errno == EINTR { continue }
            // pwrite returns 0 only for an empty write, which File never asks for.
            throw KappaError.io("pwrite", path: path, errno: n < 0 ? errno : EIO)
        }
    }

    public func size() throws(KappaError) -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw KappaError.io("fstat", path: path, errno: errno) }
        return Int64(st.st_size)
    }

    public func isLinked() throws(KappaError) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw KappaError.io("fstat", path: path, errno: errno) }
        return st.st_nlink > 0
    }

    public func truncate(to size: Int64) throws(KappaError) {
        guard ftruncate(fd, off_t(size)) == 0 else { throw KappaError.io("ftruncate", path: path, errno: errno) }
    }

    public func sync() throws(KappaError) {
        guard fsync(fd) == 0 else { throw KappaError.io("fsync", path: path, errno: errno) }
    }

    public func lock(_ kind: FileLockKind, wait: Bool) throws(KappaError) -> Bool {
        let op = (kind == .exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)
        while flock(fd, op) != 0 {
            if errno == EINTR { continue }
            if !wait && errno == EWOULDBLOCK { return false }
            throw KappaError.io("flock", path: path, errno: errno)
        }
        return true
    }

    public func unlock() {
        // LOCK_UN on a descriptor we own cannot fail in a way the caller could act on
        // (EBADF/EINVAL would be programmer errors); closing the file drops it anyway.
        _ = flock(fd, LOCK_UN)
    }
}

/// The real file system's helpers as static functions, for front ends and modules that
/// have no `DataDirectory` at hand. The log and the groups use `DataDirectory.fileSystem`.
public enum FS {
    static var real: PosixFileSystem { .shared }

    public static func exists(_ path: String) -> Bool { real.exists(path) }
    public static func isDirectory(_ path: String) -> Bool { real.isDirectory(path) }
    public static func makeDirectories(_ path: String) throws(KappaError) { try real.makeDirectories(path) }
    public static func list(_ path: String) throws(KappaError) -> [String] { try real.list(path) }
    public static func remove(_ path: String) throws(KappaError) { try real.remove(path) }
    public static func removeTree(_ path: String) throws(KappaError) { try real.removeTree(path) }
    public static func rename(_ from: String, to: String) throws(KappaError) { try real.rename(from, to: to) }

    public static func writeAtomically(_ bytes: [UInt8], to path: String, sync: Bool = true) throws(KappaError) {
        try real.writeAtomically(bytes, to: path, sync: sync)
    }

    public static func syncDirectory(of path: String) throws(KappaError) { try real.syncDirectory(of: path) }
}
