#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaLog

/// A fresh, empty directory under /tmp (made by `mkdtemp`, so its name is unique and
/// only this process's user can enter it), removed with everything in it when the last
/// reference goes away.
///
/// Contract: `path` exists from `init` until `deinit`; nothing else should remove it.
/// Keep the object alive while the path is in use (`withExtendedLifetime`, or
/// `TemporaryDirectory.with`), since Swift may end a lifetime at its last use. Not
/// thread-safe to create and delete concurrently with writers inside it.
public final class TemporaryDirectory {
    public let path: String

    /// Creates `/tmp/<prefix>-XXXXXX`.
    public init(prefix: String = "kappa-test") throws(KappaError) {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw KappaError.io("mkdtemp", path: "/tmp/\(prefix)-XXXXXX", errno: errno) }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    deinit { try? FS.removeTree(path) }

    /// `DataDirectory` rooted here.
    public var dataDirectory: DataDirectory { DataDirectory(root: path) }

    /// Runs `body` with a new temporary directory, removed afterwards.
    public static func with<T>(prefix: String = "kappa-test", _ body: (TemporaryDirectory) throws -> T) throws -> T {
        let dir = try TemporaryDirectory(prefix: prefix)
        return try withExtendedLifetime(dir) { try body(dir) }
    }
}
