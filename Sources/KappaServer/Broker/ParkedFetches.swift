import KappaCore
import KappaLog
import NIOCore

/// A fetch that found nothing and waits for data, up to its `max_wait_ms`.
struct ParkedFetch {
    var header: RequestHeader
    var request: FetchRequest
    var responder: Responder
    var timer: Scheduled<Void>? = nil
}

/// The fetches waiting for data, and which partitions each waits on. A wait ends when a
/// partition it reads grows (an append here, or a change inotify reports for another
/// process's append or a committed marker moving), or at its deadline, when it is
/// answered with whatever is there. Owned by the broker's loop.
struct ParkedFetches {
    var parked: [UInt64: ParkedFetch] = [:]
    var byPartition: [TopicPartition: Set<UInt64>] = [:]
    var nextId: UInt64 = 0

    mutating func add(_ fetch: ParkedFetch) -> UInt64 {
        nextId += 1
        parked[nextId] = fetch
        for t in fetch.request.topics {
            for p in t.partitions { byPartition[TopicPartition(t.name, p.index), default: []].insert(nextId) }
        }
        return nextId
    }

    mutating func remove(_ id: UInt64) -> ParkedFetch? {
        guard let f = parked.removeValue(forKey: id) else { return nil }
        for t in f.request.topics {
            for p in t.partitions {
                let tp = TopicPartition(t.name, p.index)
                byPartition[tp]?.remove(id)
                if byPartition[tp]?.isEmpty == true { byPartition[tp] = nil }
            }
        }
        f.timer?.cancel()
        return f
    }
}

extension Broker {
    /// Parks a fetch: watched partitions wake it, its deadline answers it.
    func park(_ fetch: ParkedFetch) {
        let id = fetches.add(fetch)
        for t in fetch.request.topics {
            for p in t.partitions {
                let tp = TopicPartition(t.name, p.index)
                if topicConfig(tp.topic) != nil { notifier.watch(directory.partitionPath(tp), key: tp) }
            }
        }
        let wait = TimeAmount.milliseconds(Int64(fetch.request.maxWaitMillis))
        fetches.parked[id]?.timer = loop.scheduleTask(in: wait) { [self] in
            guard let f = fetches.remove(id) else { return }
            let (parts, _) = readFetch(f.request)
            f.responder.send(encodeFetch(f.header, f.request, parts))
        }
    }

    /// A partition may have grown: retry the fetches waiting on it.
    func partitionAppended(_ tp: TopicPartition) {
        guard let ids = fetches.byPartition[tp] else { return }
        for id in ids.sorted() {
            guard let f = fetches.parked[id] else { continue }
            let (parts, bytes) = readFetch(f.request)
            let hasError = parts.contains { $0.1.contains { $0.errorCode != .none } }
            guard bytes > 0 || hasError else { continue }
            _ = fetches.remove(id)
            f.responder.send(encodeFetch(f.header, f.request, parts))
        }
    }

    /// inotify reported changes in these partitions' directories.
    func partitionsChanged(_ tps: [TopicPartition]) {
        for tp in tps { partitionAppended(tp) }
    }

    func answerAllParkedFetches() {
        for id in fetches.parked.keys.sorted() {
            guard let f = fetches.remove(id) else { continue }
            let (parts, _) = readFetch(f.request)
            f.responder.send(encodeFetch(f.header, f.request, parts))
        }
    }
}
