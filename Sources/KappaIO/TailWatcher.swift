#if canImport(Glibc)
import Glibc
#endif

/// Waits for a partition directory to change (an append, a new segment) with inotify,
/// so a follower wakes within a millisecond of a write instead of polling. Falls back to
/// a plain sleep where inotify is unavailable. Used by `consume --follow`, job daemons
/// and the user-history indexer. Not thread-safe.
public final class TailWatcher {
    private var fd: Int32 = -1
    private var watched = Set<String>()

    public init() {
        #if canImport(Glibc)
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        #endif
    }

    deinit { if fd >= 0 { close(fd) } }

    public func watch(_ directory: String) {
        #if canImport(Glibc)
        guard fd >= 0, !watched.contains(directory) else { return }
        if inotify_add_watch(fd, directory, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO)) >= 0 { watched.insert(directory) }
        #endif
    }

    /// Returns when something changed or after `timeoutMillis`.
    public func wait(timeoutMillis: Int32) {
        guard fd >= 0 else {
            usleep(UInt32(timeoutMillis) * 1000)
            return
        }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&p, 1, timeoutMillis)
        drain()
    }

    private func drain() {
        var buf = [UInt8](repeating: 0, count: 4096)
        while buf.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
    }
}
