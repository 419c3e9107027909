import KappaCore
import KappaFormat
import KappaLog
import NIOCore

// Fetch (key 1), versions 4-11 (v4 is the first that returns RecordBatch v2 as stored).
//
// Request:
//   replica_id int32, max_wait_ms int32, min_bytes int32, max_bytes int32 (v3+),
//   isolation_level int8 (v4+: 0 read_uncommitted, 1 read_committed),
//   session_id int32, session_epoch int32 (v7+),
//   topics [topic string, partitions [partition int32, current_leader_epoch int32 (v9+),
//           fetch_offset int64, log_start_offset int64 (v5+), partition_max_bytes int32]],
//   forgotten_topics_data [topic string, partitions [int32]] (v7+),
//   rack_id string (v11+)
// Response:
//   throttle_time_ms int32, error_code int16 (v7+), session_id int32 (v7+),
//   responses [topic string, partitions [partition_index int32, error_code int16,
//              high_watermark int64, last_stable_offset int64, log_start_offset int64 (v5+),
//              aborted_transactions nullable [producer_id int64, first_offset int64],
//              preferred_read_replica int32 (v11+), records nullable bytes]]
//
// Records are the stored batches, unchanged and whole, each checked (CRC-32C, offset
// continuity) as it is read: bytes that fail are never served. A partition stops at its
// `partition_max_bytes` and the response at `max_bytes` (capped at 55 MiB), except that
// the first batch of a partition may exceed the partition limit while the response has
// room, and the first batch of the response is served whatever its size (KIP-74), so a
// consumer always makes progress. With nothing to return, the fetch waits up to
// `max_wait_ms` and is answered as soon as an append (this server's, or another
// process's, seen through inotify) gives it data; `min_bytes` is honoured as 1.
//
// A transactional topic (a job's output) ends at its committed marker, the last stable
// offset, for both isolation levels: Kappa truncates what lies beyond after a crash, so
// it is never shown. No fetch sessions (KIP-227): session_id 0 is answered, which tells
// the client to send full fetches; a fetch naming a session gets FETCH_SESSION_ID_NOT_FOUND.

struct FetchRequest {
    struct Partition {
        var index: Int32
        var fetchOffset: Int64
        var maxBytes: Int32
    }

    struct Topic {
        var name: String
        var partitions: [Partition]
    }

    var maxWaitMillis: Int32
    var minBytes: Int32
    var maxBytes: Int32
    var isolationLevel: Int8
    var sessionId: Int32
    var sessionEpoch: Int32
    var topics: [Topic]

    static func decode(_ r: inout KafkaReader, version v: Int16) throws(RequestDecodeError) -> FetchRequest {
        _ = try r.int32()  // replica_id: -1 from consumers
        let maxWait = try r.int32()
        let minBytes = try r.int32()
        let maxBytes = try r.int32()
        let isolation = try r.int8()
        let sessionId = v >= 7 ? try r.int32() : 0
        let sessionEpoch = v >= 7 ? try r.int32() : -1
        let partitionBytes = 4 + (v >= 9 ? 4 : 0) + 8 + (v >= 5 ? 8 : 0) + 4
        let topics = try r.array(elementBytesMin: 6) { (r: inout KafkaReader) throws(RequestDecodeError) in
            Topic(name: try r.string(), partitions: try r.array(elementBytesMin: partitionBytes) { (r: inout KafkaReader) throws(RequestDecodeError) in
                let index = try r.int32()
                if v >= 9 { _ = try r.int32() }  // current_leader_epoch: one node, one epoch
                let offset = try r.int64()
                if v >= 5 { _ = try r.int64() }  // log_start_offset: followers only
                return Partition(index: index, fetchOffset: offset, maxBytes: try r.int32())
            })
        }
        if v >= 7 {
            _ = try r.array(elementBytesMin: 6) { (r: inout KafkaReader) throws(RequestDecodeError) in
                (try r.string(), try r.int32Array())
            }
        }
        if v >= 11 { _ = try r.string() }
        try r.expectEnd("Fetch v\(v)")
        return FetchRequest(maxWaitMillis: maxWait, minBytes: minBytes, maxBytes: maxBytes, isolationLevel: isolation,
                            sessionId: sessionId, sessionEpoch: sessionEpoch, topics: topics)
    }
}

/// One partition's part of a fetch response.
struct FetchedPartition {
    var index: Int32
    var errorCode: ErrorCode
    var highWatermark: Int64 = -1
    var logStartOffset: Int64 = -1
    var records: ByteBuffer?
}

extension Broker {
    func fetch(_ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        let request = try FetchRequest.decode(&r, version: h.apiVersion)
        guard request.sessionId == 0 else {
            out.send(encodeFetch(h, request, [], errorCode: .fetchSessionIdNotFound))
            return
        }
        let (parts, bytes) = readFetch(request)
        let hasError = parts.contains { $0.1.contains { $0.errorCode != .none } }
        if bytes > 0 || hasError || request.maxWaitMillis <= 0 || stopping {
            out.send(encodeFetch(h, request, parts))
            return
        }
        park(ParkedFetch(header: h, request: request, responder: out))
    }

    /// Reads what every requested partition has, within the request's limits.
    func readFetch(_ request: FetchRequest) -> ([(String, [FetchedPartition])], Int) {
        let responseMax = Int(max(0, min(request.maxBytes, Int32(ServerLimits.fetchResponseBytesMax))))
        var total = 0
        var out: [(String, [FetchedPartition])] = []
        for topic in request.topics {
            var parts: [FetchedPartition] = []
            for p in topic.partitions {
                let tp = TopicPartition(topic.name, p.index)
                let part = readPartition(tp, at: Offset(p.fetchOffset), partitionMax: Int(max(0, p.maxBytes)),
                                         responseRoom: responseMax - total, firstOfResponse: total == 0)
                total += part.records?.readableBytes ?? 0
                parts.append(part)
            }
            out.append((topic.name, parts))
        }
        return (out, total)
    }

    private func readPartition(_ tp: TopicPartition, at offset: Offset, partitionMax: Int, responseRoom: Int, firstOfResponse: Bool) -> FetchedPartition {
        var result = FetchedPartition(index: tp.partition, errorCode: .none)
        do {
            guard let served = try servedPartition(tp) else {
                result.errorCode = .unknownTopicOrPartition
                return result
            }
            let bounds = try served.bounds()
            result.highWatermark = bounds.end.rawValue
            result.logStartOffset = bounds.start.rawValue
            guard offset >= bounds.start, offset <= bounds.end else {
                result.errorCode = .offsetOutOfRange
                return result
            }
            guard offset < bounds.end else { return result }
            var entry = try readerEntry(tp, at: offset)
            var records = allocator.buffer(capacity: min(max(partitionMax, 4096), max(responseRoom, 4096), 1 << 20))
            let limit = max(0, min(partitionMax, responseRoom))
            let (reachedEnd, next) = try fill(&records, from: &entry, limit: limit, firstOfResponse: firstOfResponse, responseRoom: responseRoom)
            if reachedEnd { result.highWatermark = max(result.highWatermark, next.rawValue) }
            readers.put(entry)
            result.records = records
        } catch {
            result.errorCode = storageError(error, "fetching \(tp) at offset \(offset)")
        }
        return result
    }

    /// A reader positioned to continue at `offset`: a cached one, else a new one.
    private func readerEntry(_ tp: TopicPartition, at offset: Offset) throws(KappaError) -> ReaderCache.Entry {
        if let cached = readers.take(tp, at: offset) { return cached }
        let reader = try PartitionReader(directory: directory, topicPartition: tp)
        if case .belowStart(let start) = try reader.seek(to: offset) {
            throw KappaError(.offsetOutOfRange, "offset \(offset) is below the log start \(start)", topicPartition: tp, offset: offset)
        }
        return ReaderCache.Entry(topicPartition: tp, reader: reader)
    }

    /// Copies whole batches into `records` up to `limit` bytes (see the file's notes on
    /// the first batch). Returns whether the reader reached the end, and where it stands.
    private func fill(_ records: inout ByteBuffer, from entry: inout ReaderCache.Entry, limit: Int,
                      firstOfResponse: Bool, responseRoom: Int) throws(KappaError) -> (Bool, Offset) {
        func fits(_ size: Int) -> Bool {
            if records.readableBytes + size <= limit { return true }
            return records.readableBytes == 0 && (firstOfResponse || size <= responseRoom)
        }
        if let pending = entry.pending {
            guard fits(pending.readableBytes) else { return (false, entry.nextOffset) }
            records.writeImmutableBuffer(pending)
            entry.pending = nil
            entry.pendingHeader = nil
        }
        while let batch = try entry.reader.nextBatch() {
            guard fits(batch.bytes.count) else {
                var keep = allocator.buffer(capacity: batch.bytes.count)
                keep.writeBytes(batch.bytes)
                entry.pending = keep
                entry.pendingHeader = batch.header
                return (false, entry.nextOffset)
            }
            records.writeBytes(batch.bytes)
        }
        return (true, entry.reader.expectedOffset)
    }

    func encodeFetch(_ h: RequestHeader, _ request: FetchRequest, _ parts: [(String, [FetchedPartition])], errorCode: ErrorCode = .none) -> ByteBuffer {
        let bytes = parts.reduce(0) { $0 + $1.1.reduce(0) { $0 + ($1.records?.readableBytes ?? 0) } }
        var b = ResponseBuilder(correlationId: h.correlationId, allocator: allocator, capacity: 128 + bytes + parts.count * 64)
        let v = h.apiVersion
        b.buffer.writeInteger(Int32(0))  // throttle_time_ms
        if v >= 7 {
            b.buffer.writeInteger(errorCode.rawValue)
            b.buffer.writeInteger(Int32(0))  // session_id: no fetch sessions
        }
        b.buffer.writeKafkaArray(parts) { b, topic in
            b.writeKafkaString(topic.0)
            b.writeKafkaArray(topic.1) { b, p in
                b.writeInteger(p.index)
                b.writeInteger(p.errorCode.rawValue)
                b.writeInteger(p.highWatermark)
                b.writeInteger(p.highWatermark)  // last_stable_offset: see the notes above
                if v >= 5 { b.writeInteger(p.logStartOffset) }
                if request.isolationLevel == 1 { b.writeKafkaArrayCount(0) } else { b.writeInteger(Int32(-1)) }
                if v >= 11 { b.writeInteger(Int32(-1)) }
                if let records = p.records { b.writeKafkaBytes(records) } else { b.writeInteger(Int32(0)) }
            }
        }
        return b.finish()
    }
}
