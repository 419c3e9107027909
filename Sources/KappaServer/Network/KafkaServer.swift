import KappaCore
import KappaLog
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// `kappa serve`'s Kafka listener as a swift-service-lifecycle service: binds, serves
/// until graceful shutdown (SIGTERM/SIGINT through the service group), then stops
/// accepting, lets the broker answer what waits (parked fetches and joins get their
/// answers now) and close its writers (fsync per policy), and closes the connections.
///
/// Threads: one event loop for the connections (framing, writing answers) and one for
/// the broker (`Broker`: every request, all state, file I/O), plus the inotify thread.
public final class KafkaServer: Service, @unchecked Sendable {
    public let directory: DataDirectory
    public let options: KafkaServerOptions
    let logger: Logger
    /// Called once bound, with the address clients are told to use ("host:port").
    let onListening: @Sendable (String) -> Void

    public init(directory: DataDirectory, options: KafkaServerOptions, logger: Logger, onListening: @escaping @Sendable (String) -> Void = { _ in }) {
        self.directory = directory
        self.options = options
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let connections = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let dispatcher = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let broker = try Broker(directory: directory, options: options, loop: dispatcher.next(), logger: logger)
        broker.notifier.start { wds in
            broker.loop.execute { broker.partitionsChanged(broker.notifier.keys(for: wds)) }
        }
        let logger = logger
        let bootstrap = ServerBootstrap(group: connections)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(ConnectionHandler(broker: broker, logger: logger))
                }
            }
        let server: Channel
        do {
            server = try await bootstrap.bind(host: options.host, port: options.port).get()
        } catch {
            try? await connections.shutdownGracefully()
            try? await dispatcher.shutdownGracefully()
            throw KappaError(.io, "cannot listen on \(options.host):\(options.port): \(error)")
        }
        let port = Int32(server.localAddress?.port ?? options.port)
        let advertised = AdvertisedAddress(host: options.advertisedHost ?? options.host, port: Int32(options.advertisedPort.map(Int32.init) ?? port))
        try await broker.loop.submit { broker.advertised = advertised }.get()
        logger.info("Kafka listener ready", metadata: ["address": "\(options.host):\(port)", "advertised": "\(advertised.host):\(advertised.port)"])
        onListening("\(advertised.host):\(advertised.port)")

        try? await gracefulShutdown()

        logger.info("stopping the Kafka listener")
        try? await server.close()
        try await broker.loop.submit { broker.shutdown() }.get()
        // Answers the broker just sent are queued on the connections' loop: let them run.
        try await connections.next().submit {}.get()
        try await connections.shutdownGracefully()
        try await dispatcher.shutdownGracefully()
        logger.info("Kafka listener stopped")
    }
}
