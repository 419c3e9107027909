#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaLog

/// The on-disk state of consumer groups, shared by every process on the machine:
///
/// ```
/// DATA/groups/G/members/ID        one file per member, flock'ed exclusively by that live
///                                 member; its content names the topics it subscribes to
/// DATA/groups/G/owners/TOPIC/P    partition ownership: flock'ed exclusively by the member
///                                 reading P; content = that member's id
/// DATA/groups/G/offsets/TOPIC/P   committed offset (the next offset to read), decimal,
///                                 replaced atomically (write, fsync, rename)
/// ```
/// Liveness is the kernel's: a lock vanishes with its process, also on kill -9, so a
/// dead member's partitions are free at once and the others take them on their next
/// rebalance. Ownership locks, not the assignment arithmetic, guarantee that no
/// partition is read by two members at once: the computed assignment only says what a
/// member should try to take and what it should let go.
public struct GroupStore: Sendable {
    public let directory: DataDirectory
    public let group: String

    public init(directory: DataDirectory, group: String) throws(KappaError) {
        try validateName(group, what: "group")
        self.directory = directory
        self.group = group
    }

    var fs: any FileSystem { directory.fileSystem }
    public var path: String { directory.groupsPath + "/" + group }
    var membersPath: String { path + "/members" }
    func ownerPath(_ tp: TopicPartition) -> String { path + "/owners/\(tp.topic)/\(tp.partition)" }
    func offsetPath(_ tp: TopicPartition) -> String { path + "/offsets/\(tp.topic)/\(tp.partition)" }

    public static func list(_ directory: DataDirectory) throws(KappaError) -> [String] {
        let fs = directory.fileSystem
        guard fs.isDirectory(directory.groupsPath) else { return [] }
        return try fs.list(directory.groupsPath).filter { fs.isDirectory(directory.groupsPath + "/" + $0) }.sorted()
    }

    public var exists: Bool { fs.isDirectory(path) }

    // MARK: committed offsets

    /// The committed offset of `tp`, nil if none.
    public func committed(_ tp: TopicPartition) throws(KappaError) -> Offset? {
        let p = offsetPath(tp)
        guard let bytes = try fs.readFileIfExists(p, limit: 64) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingWhitespace
        guard let v = Int64(text), v >= 0 else {
            throw KappaError(.corruptData, "committed offset file does not hold an offset: '\(text)'", topicPartition: tp, path: p)
        }
        return Offset(v)
    }

    /// Replaces the committed offset of `tp` atomically and durably. Callers that are
    /// group members must own `tp` (see `GroupMember.commit`).
    public func writeCommitted(_ tp: TopicPartition, _ offset: Offset) throws(KappaError) {
        precondition(offset.rawValue >= 0)
        try fs.makeDirectories(path + "/offsets/\(tp.topic)")
        try fs.writeAtomically(Array("\(offset.rawValue)\n".utf8), to: offsetPath(tp))
    }

    /// Topics with committed offsets or owners in this group.
    public func topics() throws(KappaError) -> [String] {
        var names = Set<String>()
        for sub in ["offsets", "owners"] where fs.isDirectory(path + "/" + sub) {
            for t in try fs.list(path + "/" + sub) { names.insert(t) }
        }
        return names.sorted()
    }

    // MARK: members and owners

    public struct MemberInfo: Equatable, Sendable {
        public var id: String
        public var topics: [String]
    }

    /// Live members, sorted by id. Files of dead members are removed on the way.
    public func liveMembers() throws(KappaError) -> [MemberInfo] {
        guard fs.isDirectory(membersPath) else { return [] }
        var out: [MemberInfo] = []
        for name in try fs.list(membersPath) where !name.hasPrefix(".") {
            let p = membersPath + "/" + name
            guard let lock = try openLockIfExists(p) else { continue }  // it left since the listing
            if try lock.tryLockShared() {
                // Nobody holds it: the member is gone. Remove while we hold the lock.
                try fs.remove(p)
                lock.unlock()
                continue
            }
            let text = String(decoding: try lock.file.readAll(limit: 1 << 16), as: UTF8.self)
            let topics = text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            out.append(MemberInfo(id: name, topics: topics))
        }
        return out.sorted { $0.id < $1.id }
    }

    /// The member holding `tp`, or nil when nobody does.
    public func owner(_ tp: TopicPartition) throws(KappaError) -> String? {
        guard let lock = try openLockIfExists(ownerPath(tp)) else { return nil }
        if try lock.tryLockShared() {
            lock.unlock()
            return nil
        }
        let id = String(decoding: try lock.file.readAll(limit: 1024), as: UTF8.self).trimmingWhitespace
        return id.isEmpty ? "(joining)" : id
    }

    /// The lock file at `path`, opened without creating it; nil when it does not exist.
    func openLockIfExists(_ path: String) throws(KappaError) -> FileLock? {
        do {
            return FileLock(file: try fs.openFile(path, mode: .readWrite))
        } catch where error.code == .notFound {
            return nil
        }
    }

    /// Which partitions each member should own: per topic, partition p goes to the
    /// (p mod n)th of the n live members subscribed to it, sorted by id. Every member
    /// computes the same answer from the same member list.
    public static func assignment(members: [MemberInfo], partitions: [String: Int32]) -> [String: [TopicPartition]] {
        var out: [String: [TopicPartition]] = [:]
        for m in members { out[m.id] = [] }
        for (topic, count) in partitions.sorted(by: { $0.key < $1.key }) {
            let subscribers = members.filter { $0.topics.contains(topic) }.map(\.id).sorted()
            guard !subscribers.isEmpty else { continue }
            for p in 0..<count {
                out[subscribers[Int(p) % subscribers.count], default: []].append(TopicPartition(topic, p))
            }
        }
        return out
    }
}

extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
