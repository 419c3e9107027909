import KappaCore
import KappaLog

/// Hands out producer ids for idempotent producers, never the same id twice from one
/// data directory — across restarts and across servers sharing the directory — since a
/// reused id would make a new producer's first batch look like an old one's duplicate.
///
/// `DATA/kafka/producer-ids` holds the first id not yet given to any server (decimal),
/// replaced atomically under the `producer-ids.lock` flock. A server takes a block of
/// `blockSize` ids at a time (one file write per block, as Kafka's brokers take blocks
/// from their controller); ids of a block left unused when it stops are skipped.
/// Owned by the broker's loop.
struct ProducerIdAllocator {
    let directory: DataDirectory
    static let blockSize: Int64 = 1000
    private var nextId: Int64 = 0
    private var end: Int64 = 0

    init(directory: DataDirectory) {
        self.directory = directory
    }

    var path: String { directory.root + "/kafka/producer-ids" }

    mutating func next() throws(KappaError) -> Int64 {
        if nextId == end { try takeBlock() }
        defer { nextId += 1 }
        return nextId
    }

    private mutating func takeBlock() throws(KappaError) {
        try FS.makeDirectories(directory.root + "/kafka")
        let lock = try FileLock(path: path + ".lock")
        let start = try lock.withExclusive { () throws(KappaError) -> Int64 in
            var first: Int64 = 0
            if FS.exists(path) {
                let text = String(decoding: try File(path: path, mode: .readOnly).readAll(limit: 64), as: UTF8.self)
                guard let v = Int64(text.filter { !$0.isWhitespace }), v >= 0 else {
                    throw KappaError(.corruptData, "the producer id file does not hold an id: '\(text)'", path: path)
                }
                first = v
            }
            try FS.writeAtomically(Array("\(first + Self.blockSize)\n".utf8), to: path)
            return first
        }
        nextId = start
        end = start + Self.blockSize
    }
}
