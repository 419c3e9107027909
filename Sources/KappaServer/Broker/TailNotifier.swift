import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import KappaCore

/// Tells the broker when a partition directory changes (a batch appended or a segment
/// created by another process, a committed marker replaced), so a fetch waiting for data
/// is answered within a millisecond of an append it did not make, as `consume --follow`
/// is. One inotify descriptor read by one thread of its own; the watch table belongs to
/// the broker's loop, which is the only caller of `watch` and `keys(for:)`; the thread
/// only passes watch descriptors on through `deliver`.
///
/// Where inotify is unavailable, fetches are still answered at their deadline.
final class TailNotifier: @unchecked Sendable {
    private let fd: Int32
    private var stopPipe: [Int32] = [-1, -1]
    private var watches: [Int32: TopicPartition] = [:]
    private var watched: Set<String> = []
    private var thread: Thread?
    /// Signalled when the reading thread returns, so `stop` can wait for it: nothing is
    /// delivered to the broker's loop after it shut down.
    private let exited = DispatchSemaphore(value: 0)

    init() throws(KappaError) {
        #if canImport(Glibc)
        fd = inotify_init1(Int32(IN_CLOEXEC))
        #else
        fd = -1
        #endif
        guard pipe(&stopPipe) == 0 else { throw KappaError.io("pipe", path: "(notifier)", errno: errno) }
    }

    deinit {
        if fd >= 0 { close(fd) }
        for p in stopPipe where p >= 0 { close(p) }
    }

    /// Starts the reading thread; `deliver` gets the watch descriptors that fired, on that
    /// thread (it must hop to the broker's loop).
    func start(deliver: @escaping @Sendable ([Int32]) -> Void) {
        guard fd >= 0 else { return }
        let fd = fd
        let stop = stopPipe[0]
        let exited = exited
        let t = Thread {
            defer { exited.signal() }
            var buf = [UInt8](repeating: 0, count: 64 << 10)
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stop, events: Int16(POLLIN), revents: 0)]
            while true {
                let r = poll(&fds, 2, -1)
                if r < 0 && errno == EINTR { continue }
                if r <= 0 || fds[1].revents != 0 { return }
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { continue }
                var wds = Set<Int32>()
                var i = 0
                buf.withUnsafeBytes { raw in
                    // struct inotify_event { int wd; uint32 mask, cookie, len; char name[len]; }
                    while i + 16 <= n {
                        wds.insert(raw.loadUnaligned(fromByteOffset: i, as: Int32.self))
                        i += 16 + Int(raw.loadUnaligned(fromByteOffset: i + 12, as: UInt32.self))
                    }
                }
                deliver(Array(wds))
            }
        }
        t.name = "kappa-serve-inotify"
        t.start()
        thread = t
    }

    /// Watches a partition directory (once). Broker loop only.
    func watch(_ path: String, key: TopicPartition) {
        #if canImport(Glibc)
        guard fd >= 0, !watched.contains(path) else { return }
        let wd = inotify_add_watch(fd, path, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO))
        guard wd >= 0 else { return }
        watched.insert(path)
        watches[wd] = key
        #endif
    }

    /// Drops the watches of a topic's partitions (deleted: a topic made again under the
    /// same name gets new directories to watch). Broker loop only.
    func unwatch(topic: String) {
        #if canImport(Glibc)
        for (wd, tp) in watches where tp.topic == topic {
            inotify_rm_watch(fd, wd)
            watches[wd] = nil
        }
        watched = watched.filter { !$0.contains("/topics/\(topic)/") }
        #endif
    }

    /// The partitions behind watch descriptors. Broker loop only.
    func keys(for wds: [Int32]) -> [TopicPartition] { wds.compactMap { watches[$0] } }

    /// Stops the reading thread and waits (up to 5 s) until it has returned.
    func stop() {
        guard thread != nil else { return }
        var b: UInt8 = 1
        _ = write(stopPipe[1], &b, 1)
        _ = exited.wait(timeout: .now() + .seconds(5))
        thread = nil
    }
}
