#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPrefetch

/// Memory for large tables of random access (per-user state over hundreds of thousands
/// of users). From 2 MiB up it is mapped directly and, on Linux, advised for transparent
/// huge pages, so a lookup misses the cache but not also the TLB (a page walk, nested
/// under a hypervisor); it grows with `mremap`, which moves the pages instead of copying
/// and faulting them in again. Smaller tables use malloc. Elements are moved bit for bit
/// (Swift values are bitwise movable); the caller initializes and deinitializes them.
enum HugePageMemory {
    static let hugePage = 2 << 20

    private static func bytes<T>(_: T.Type, _ n: Int) -> Int { max(1, n * MemoryLayout<T>.stride) }

    static func allocate<T>(_ type: T.Type, capacity n: Int) -> UnsafeMutablePointer<T> {
        let size = bytes(T.self, n)
        return (size >= hugePage ? map(size) : small(malloc(size), n, T.self)).bindMemory(to: T.self, capacity: n)
    }

    /// The table at `p` with room for `newCapacity` elements, the first `oldCapacity`'s
    /// bytes kept; `p` is no longer valid.
    static func reallocate<T>(_ p: UnsafeMutablePointer<T>, from oldCapacity: Int, to newCapacity: Int) -> UnsafeMutablePointer<T> {
        let old = bytes(T.self, oldCapacity)
        let new = bytes(T.self, newCapacity)
        let raw: UnsafeMutableRawPointer
        if old >= hugePage {
            #if os(Linux)
            guard let moved = kappa_remap(p, old, new) else { fatalError("out of memory for \(newCapacity) \(T.self)") }
            raw = moved
            advise(raw, new)
            #else
            raw = map(new)
            raw.copyMemory(from: p, byteCount: min(old, new))
            munmap(p, old)
            #endif
        } else if new >= hugePage {
            raw = map(new)
            raw.copyMemory(from: p, byteCount: min(old, new))
            free(p)
        } else {
            raw = small(realloc(p, new), newCapacity, T.self)
        }
        return raw.bindMemory(to: T.self, capacity: newCapacity)
    }

    static func deallocate<T>(_ p: UnsafeMutablePointer<T>, capacity n: Int) {
        let size = bytes(T.self, n)
        if size >= hugePage { munmap(p, size) } else { free(p) }
    }

    private static func map(_ size: Int) -> UnsafeMutableRawPointer {
        guard let raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            fatalError("out of memory for a table of \(size) bytes")
        }
        advise(raw, size)
        return raw
    }

    private static func advise(_ raw: UnsafeMutableRawPointer, _ size: Int) {
        #if os(Linux)
        _ = madvise(raw, size, MADV_HUGEPAGE)  // a hint: without THP, 4 KiB pages
        #endif
    }

    private static func small<T>(_ raw: UnsafeMutableRawPointer?, _ n: Int, _: T.Type) -> UnsafeMutableRawPointer {
        guard let raw else { fatalError("out of memory for \(n) \(T.self)") }
        return raw
    }
}
