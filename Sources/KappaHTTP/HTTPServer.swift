import Dispatch
import Foundation
import Hummingbird
import HummingbirdCore
import KappaCore
import KappaLog
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// `kappa serve --http`: the HTTP API, the dashboard and `/metrics` as a
/// swift-service-lifecycle service (Hummingbird 2 over SwiftNIO), in the same daemon as
/// the Kafka listener. Until graceful shutdown it runs: the HTTP listener (two event-loop
/// threads; a slow or stalled client holds only its own connection, and is closed after
/// `idleTimeoutSeconds`), a pool of threads for blocking file work (ingest, records by
/// offset, describing jobs), and the job store's refresher thread.
public final class HTTPServer: Service, @unchecked Sendable {
    let directory: DataDirectory
    let options: HTTPServerOptions
    let metrics: KappaMetrics
    let logger: Logger
    let onListening: @Sendable (String) -> Void

    public init(directory: DataDirectory, options: HTTPServerOptions, metrics: KappaMetrics, logger: Logger,
                onListening: @escaping @Sendable (String) -> Void = { _ in }) {
        self.directory = directory
        self.options = options
        self.metrics = metrics
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let store = JobStore(directory: directory, logger: logger)
        let history = UserHistoryService(directory: directory, logger: logger)
        let refresherDone = DispatchSemaphore(value: 0)
        let refresher = Thread {
            store.run()
            refresherDone.signal()
        }
        refresher.name = "kappa.http.store"
        refresher.start()
        history.start()
        let api = KappaAPI(directory: directory, store: store, options: options, pool: pool, metrics: metrics, history: history, logger: logger)
        let onListening = self.onListening
        let host = options.host
        let app = Application(
            router: api.router(),
            server: .http1(configuration: .init(idleTimeout: .seconds(options.idleTimeoutSeconds))),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "kappa",
                                 availableConnectionsDelegate: MaximumAvailableConnections(options.connectionsMax)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                onListening(host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
            },
            eventLoopGroupProvider: .shared(loops),
            logger: logger
        )
        do {
            try await app.run()
        } catch {
            await stop(store, history, refresherDone, pool, loops)
            throw KappaError(.io, "HTTP listener on \(options.host):\(options.port): \(error)")
        }
        await stop(store, history, refresherDone, pool, loops)
    }

    private func stop(_ store: JobStore, _ history: UserHistoryService, _ refresherDone: DispatchSemaphore, _ pool: NIOThreadPool,
                      _ loops: MultiThreadedEventLoopGroup) async {
        store.stop()
        history.stop()
        refresherDone.wait()
        try? await pool.shutdownGracefully()
        try? await loops.shutdownGracefully()
        logger.info("HTTP listener stopped")
    }
}

/// `kappa process --metrics HOST:PORT`: only `/metrics` (the daemon's job) and `/healthz`.
public final class MetricsServer: Service, @unchecked Sendable {
    let directory: DataDirectory
    let host: String
    let port: Int
    let metrics: KappaMetrics
    let logger: Logger
    let onListening: @Sendable (String) -> Void

    public init(directory: DataDirectory, host: String, port: Int, metrics: KappaMetrics, logger: Logger,
                onListening: @escaping @Sendable (String) -> Void = { _ in }) {
        self.directory = directory
        self.host = host
        self.port = port
        self.metrics = metrics
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let router = Router()
        router.add(middleware: HTTPMetricsMiddleware(metrics: metrics))
        router.add(middleware: ProblemMiddleware())
        let directory = self.directory, metrics = self.metrics
        router.get("/healthz") { _, _ in json("{\"status\":\"ok\"}") }
        router.get("/metrics") { _, _ in
            let text = try await pool.runIfActive { metrics.render(directory: directory) }
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
        let onListening = self.onListening, host = self.host
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "kappa"),
                              onServerRunning: { channel in onListening("\(host):\(channel.localAddress?.port ?? 0)") },
                              eventLoopGroupProvider: .shared(loops), logger: logger)
        let result: Result<Void, any Error>
        do {
            try await app.run()
            result = .success(())
        } catch {
            result = .failure(error)
        }
        try? await pool.shutdownGracefully()
        try? await loops.shutdownGracefully()
        try result.get()
    }
}
