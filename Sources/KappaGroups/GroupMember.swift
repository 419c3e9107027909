#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaLog

/// One live member of a consumer group in this process. Joining creates and locks the
/// member file; `rebalance()` (call it every few hundred milliseconds) lets go of the
/// partitions the assignment gives to others, committing them first, and tries to take
/// the ones it gives to this member. Dropping the member (or the process dying) releases
/// every lock. Not thread-safe.
public final class GroupMember {
    public let store: GroupStore
    public let id: String
    public let topics: [String]
    private let memberLock: FileLock
    private var ownerLocks: [TopicPartition: FileLock] = [:]

    /// Partitions this member holds now.
    public var owned: [TopicPartition] { ownerLocks.keys.sorted() }

    public struct Rebalance: Equatable, Sendable {
        public var acquired: [TopicPartition] = []
        public var released: [TopicPartition] = []
        public var isEmpty: Bool { acquired.isEmpty && released.isEmpty }
    }

    /// Joins `store`'s group as `id` (unique per process, e.g. host-pid-nonce).
    public init(store: GroupStore, id: String, topics: [String]) throws(KappaError) {
        try validateName(id, what: "member")
        self.store = store
        self.id = id
        self.topics = topics
        try store.fs.makeDirectories(store.membersPath)
        // Lock under a hidden name, then rename into place: no one can see the file
        // unlocked and take the member for dead.
        let tmp = store.membersPath + "/." + id
        let lock = try FileLock(path: tmp, fileSystem: store.fs)
        guard try lock.tryLockExclusive() else { throw KappaError(.conflict, "member id \(id) is in use") }
        try lock.file.truncate(to: 0)
        try lock.file.write(Array((topics.joined(separator: "\n") + "\n").utf8), at: 0)
        try store.fs.rename(tmp, to: store.membersPath + "/" + id)
        memberLock = lock
    }

    deinit { leave() }

    /// Releases every partition and the membership (without committing). Removing the
    /// member file is a courtesy: once its lock is released the others see the member as
    /// gone and remove the file themselves, so a failed unlink changes nothing.
    public func leave() {
        for (_, lock) in ownerLocks { lock.unlock() }
        ownerLocks.removeAll()
        do { try store.fs.remove(store.membersPath + "/" + id) } catch {}
        memberLock.unlock()
    }

    /// Moves towards the current assignment. `commit` is called for each partition about
    /// to be released, while it is still owned, so its position is saved first.
    public func rebalance(commit: (TopicPartition) throws(KappaError) -> Void) throws(KappaError) -> Rebalance {
        var partitions: [String: Int32] = [:]
        for t in topics { partitions[t] = try store.directory.topicConfig(t).partitions }
        let target = Set(GroupStore.assignment(members: try store.liveMembers(), partitions: partitions)[id] ?? [])
        var result = Rebalance()
        for tp in owned where !target.contains(tp) {
            try commit(tp)
            ownerLocks[tp]?.unlock()
            ownerLocks[tp] = nil
            result.released.append(tp)
        }
        for tp in target.sorted() where ownerLocks[tp] == nil {
            let dir = store.path + "/owners/\(tp.topic)"
            try store.fs.makeDirectories(dir)
            let lock = try FileLock(path: store.ownerPath(tp), fileSystem: store.fs)
            guard try lock.tryLockExclusive() else { continue }  // still held by its previous owner
            try lock.file.truncate(to: 0)
            try lock.file.write(Array((id + "\n").utf8), at: 0)
            ownerLocks[tp] = lock
            result.acquired.append(tp)
        }
        return result
    }

    /// Commits `offset` (the next offset to read) for a partition this member owns.
    public func commit(_ tp: TopicPartition, _ offset: Offset) throws(KappaError) {
        guard ownerLocks[tp] != nil else {
            throw KappaError(.conflict, "member \(id) does not own the partition; not committing", topicPartition: tp, offset: offset)
        }
        try store.writeCommitted(tp, offset)
    }
}
