import KappaCore
import KappaFormat
import KappaLog
import Logging
import NIOCore

/// The dispatcher of `kappa serve` (franz-go kfake's design): every request of every
/// connection is decoded, served and answered here, one at a time, on one event loop of
/// its own (`loop`). So all state — open partitions, idempotent producers, consumer
/// groups, parked fetches — changes in one place, in request order, with no locks; the
/// connections' event loops only frame bytes. The loop blocks on file I/O (appends,
/// reads, fsync), which is why it serves no sockets itself.
///
/// Per connection, requests arrive one at a time (`ConnectionHandler` holds back the next
/// until this one is answered), so answers go out in request order, as Kafka requires,
/// even when a fetch or a group join waits.
///
/// Invariant: every method runs on `loop` (asserted at the entry points). The Sendable
/// conformance is unchecked for that reason: other threads only hand work to `loop`.
final class Broker: @unchecked Sendable {
    static let leaderEpoch: Int32 = TopicConfig.kafkaLeaderEpoch

    let directory: DataDirectory
    let options: KafkaServerOptions
    let loop: EventLoop
    let logger: Logger
    let allocator = ByteBufferAllocator()
    let clusterId: String
    /// Set once the listener is bound (its port may have been chosen by the system).
    var advertised: AdvertisedAddress

    var configs: [String: TopicConfig] = [:]
    var partitions: [TopicPartition: ServedPartition] = [:]
    var readers = ReaderCache()
    var fetches = ParkedFetches()
    var groups: GroupCoordinator
    var producerIds: ProducerIdAllocator
    let notifier: TailNotifier
    /// Decompression state for validating produced batches and reading by timestamp.
    let codec = LZ4Codec()
    let scratch = ByteWriter(capacity: 1 << 20)
    var stopping = false

    init(directory: DataDirectory, options: KafkaServerOptions, loop: EventLoop, logger: Logger) throws(KappaError) {
        self.directory = directory
        self.options = options
        self.loop = loop
        self.logger = logger
        advertised = AdvertisedAddress(host: options.advertisedHost ?? options.host, port: Int32(options.advertisedPort ?? options.port))
        clusterId = "kappa-" + String(Self.fnv1a(directory.root), radix: 36)
        groups = GroupCoordinator(options: options)
        producerIds = ProducerIdAllocator(directory: directory)
        notifier = try TailNotifier()
    }

    /// A stable cluster id per data directory (clients key caches by it).
    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    /// Entry point for one request's frame (header and body, no length prefix).
    func handle(_ frame: ByteBuffer, _ out: Responder) {
        loop.preconditionInEventLoop()
        guard !stopping else { return out.close("the server is stopping") }
        var r = KafkaReader(frame)
        let header: RequestHeader
        do {
            header = try RequestHeader.decode(&r)
        } catch {
            out.close("undecodable request header: \(error)")
            return
        }
        guard let key = ApiKey(rawValue: header.apiKey) else {
            out.close("unknown API key \(header.apiKey)")
            return
        }
        var out = out
        out.api = "\(key)"
        guard key.versions.contains(header.apiVersion) else {
            if key == .apiVersions { return apiVersionsUnsupported(header, out) }
            out.close("\(key) version \(header.apiVersion) is not served (\(key.versions.lowerBound)...\(key.versions.upperBound))")
            return
        }
        logger.trace("request", metadata: ["api": "\(key)", "version": "\(header.apiVersion)", "client": "\(header.clientId ?? "")"])
        do {
            try dispatch(key, header, &r, out)
        } catch {
            out.close("malformed \(key) v\(header.apiVersion) request: \(error)")
        }
    }

    private func dispatch(_ key: ApiKey, _ h: RequestHeader, _ r: inout KafkaReader, _ out: Responder) throws(RequestDecodeError) {
        switch key {
        case .produce: try produce(h, &r, out)
        case .fetch: try fetch(h, &r, out)
        case .listOffsets: try listOffsets(h, &r, out)
        case .metadata: try metadata(h, &r, out)
        case .offsetCommit: try offsetCommit(h, &r, out)
        case .offsetFetch: try offsetFetch(h, &r, out)
        case .findCoordinator: try findCoordinator(h, &r, out)
        case .joinGroup: try joinGroup(h, &r, out)
        case .heartbeat: try heartbeat(h, &r, out)
        case .leaveGroup: try leaveGroup(h, &r, out)
        case .syncGroup: try syncGroup(h, &r, out)
        case .describeGroups: try describeGroups(h, &r, out)
        case .listGroups: try listGroups(h, &r, out)
        case .apiVersions: try apiVersions(h, &r, out)
        case .createTopics: try createTopics(h, &r, out)
        case .deleteTopics: try deleteTopics(h, &r, out)
        case .initProducerId: try initProducerId(h, &r, out)
        }
    }

    // MARK: topics and partitions

    /// A topic's config, read once and cached; nil when the topic does not exist.
    func topicConfig(_ name: String) -> TopicConfig? {
        if let c = configs[name] { return c }
        guard directory.topicExists(name), let c = try? directory.topicConfig(name) else { return nil }
        configs[name] = c
        return c
    }

    /// The served state of a partition, opened on first use; nil when the topic or the
    /// partition does not exist.
    func servedPartition(_ tp: TopicPartition) throws(KappaError) -> ServedPartition? {
        if let p = partitions[tp] { return p }
        guard let config = topicConfig(tp.topic) else { return nil }
        guard tp.partition >= 0, tp.partition < config.partitions else { return nil }
        let p = try ServedPartition(directory: directory, topicPartition: tp, config: config, fsync: options.fsync)
        partitions[tp] = p
        return p
    }

    /// Drops everything cached about a topic (deleted here or by another process).
    func forget(topic: String) {
        configs[topic] = nil
        for tp in partitions.keys where tp.topic == topic {
            do {
                try partitions[tp]?.close()
            } catch {
                logger.error("closing a partition of a forgotten topic failed", metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
            partitions[tp] = nil
        }
        readers.forget(topic: topic)
        notifier.unwatch(topic: topic)
    }

    /// The error code a log failure becomes on the wire, logged with its evidence.
    func storageError(_ error: KappaError, _ what: String) -> ErrorCode {
        switch error.code {
        case .notFound:
            if let tp = error.topicPartition { forget(topic: tp.topic) }
            return .unknownTopicOrPartition
        case .offsetOutOfRange:
            return .offsetOutOfRange
        default:
            logger.error("\(what) failed", metadata: ["error": "\(error)"])
            return .kafkaStorageError
        }
    }

    // MARK: lifecycle

    /// Answers what waits (parked fetches, joins), closes writers (fsync per policy).
    func shutdown() {
        loop.preconditionInEventLoop()
        stopping = true
        answerAllParkedFetches()
        groups.shutdown(self)
        for (_, p) in partitions {
            do { try p.close() } catch { logger.error("closing partition failed", metadata: ["error": "\(error)"]) }
        }
        partitions.removeAll()
        notifier.stop()
    }
}
