// Minimal POSIX file output (no Foundation).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A file opened for writing (created or truncated, mode 0644). Not thread-safe; close it
/// exactly once.
final class OutputFile {
    let path: String
    private var fd: Int32

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw RebuIOError(operation: "open", path: path, code: errno) }
    }

    /// Writes all of `bytes`, retrying on short writes and EINTR.
    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = systemWrite(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw RebuIOError(operation: "write", path: path, code: errno)
                }
                offset += n
            }
        }
    }

    func close() throws {
        let rc = systemClose(fd)
        fd = -1
        if rc != 0 { throw RebuIOError(operation: "close", path: path, code: errno) }
    }

    func closeIgnoringErrors() {
        if fd >= 0 { _ = systemClose(fd) }
        fd = -1
    }

    deinit {
        if fd >= 0 { _ = systemClose(fd) }
    }
}

@inline(__always)
private func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    write(fd, p, n)
}

@inline(__always)
private func systemClose(_ fd: Int32) -> Int32 {
    close(fd)
}

/// `mkdir -p`: creates `path` and any missing parents (mode 0755).
func makeDirectories(_ path: String) throws {
    if path.isEmpty { return }
    var prefix = ""
    for (i, component) in path.split(separator: "/", omittingEmptySubsequences: false).enumerated() {
        if i > 0 { prefix += "/" }
        prefix += component
        if component.isEmpty || component == "." || component == ".." { continue }
        if mkdir(prefix, 0o755) != 0 {
            let code = errno
            if code == EEXIST {
                var st = stat()
                if stat(prefix, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { continue }
            }
            throw RebuIOError(operation: "mkdir", path: prefix, code: code)
        }
    }
}
