import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import KappaCore
import KappaHTTP
import KappaLog
import KappaServer
import Logging
import ServiceLifecycle

/// `kappa serve`: the data directory on the network. Parses flags, builds the logger and
/// the services, runs them until SIGTERM/SIGINT; the Kafka protocol is KappaServer's.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the data directory over the Kafka protocol and HTTP (a daemon; SIGTERM/SIGINT stop it cleanly).",
        discussion: """
        Kafka clients (kcat, librdkafka and confluent-kafka, kafka-python, aiokafka, Kafka \
        Connect) produce, fetch, list offsets and use consumer groups against it. The HTTP API \
        serves topics, ingest, jobs' stores, the dashboard and /metrics (README: HTTP API). It \
        shares the data directory with kappa produce, consume, process and other servers. \
        Prints 'listening on HOST:PORT (Kafka protocol)' and 'listening on http://HOST:PORT \
        (HTTP API)' on stderr once ready.
        """)

    @OptionGroup var data: DataOptions
    @Option(help: "Kafka listener address HOST:PORT, or 'off'.") var kafka: String = "127.0.0.1:9092"
    @Option(help: "HTTP API address HOST:PORT, or 'off'. Beyond loopback it needs --http-token-file.") var http: String = "127.0.0.1:8080"
    @Option(name: .customLong("http-max-body-bytes"), help: "Largest HTTP request body (an ingest); over it: 413, nothing written.") var httpMaxBodyBytes: Int = 64 << 20
    @Option(name: .customLong("http-token-file"), help: "File holding the bearer token that write routes (POST) need; required when --http is not a loopback address.") var httpTokenFile: String?
    @Option(name: .customLong("advertised-address"), help: "HOST:PORT clients are told to connect to (default: the bound address).") var advertisedAddress: String?
    @Option(help: "always | interval | never: when appended batches are fsynced (acks 1 and -1 are answered once written).") var fsync: String = "interval"
    @Option(name: .customLong("auto-create-topics"), help: "on | off: create a missing topic when a Kafka client asks for it (Kafka's default: on).") var autoCreateTopics: String = "on"
    @Option(name: .customLong("default-partitions"), help: "Partitions of topics created on first use or without a count.") var defaultPartitions: Int32 = 1
    @Option(name: .customLong("log-level"), help: "trace | debug | info | notice | warning | error (trace logs every request's API and version).") var logLevel: String = "info"
    @Option(name: .customLong("group-initial-rebalance-delay"), help: "How long a forming consumer group waits for more members (Kafka: 3s).") var groupInitialRebalanceDelay: String = "3s"

    func validate() throws {
        if kafka != "off" && Self.address(kafka) == nil { throw ValidationError("--kafka must be HOST:PORT or off, got '\(kafka)'") }
        if http != "off" && Self.address(http) == nil { throw ValidationError("--http must be HOST:PORT or off, got '\(http)'") }
        guard kafka != "off" || http != "off" else { throw ValidationError("--kafka off and --http off leave nothing to serve") }
        if let a = advertisedAddress, Self.address(a) == nil { throw ValidationError("--advertised-address must be HOST:PORT, got '\(a)'") }
        guard FsyncPolicy(name: fsync) != nil else { throw ValidationError("--fsync must be always, interval or never") }
        guard autoCreateTopics == "on" || autoCreateTopics == "off" else { throw ValidationError("--auto-create-topics must be on or off") }
        guard Duration.parseMillis(groupInitialRebalanceDelay) != nil || groupInitialRebalanceDelay == "0" else {
            throw ValidationError("--group-initial-rebalance-delay must be a duration like 0ms, 500ms, 3s")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be trace, debug, info, notice, warning or error") }
        if kafka != "off" { try runReportingErrors { try options().validate() } }
        if http != "off" { try runReportingErrors { try httpOptions().validate() } }
    }

    func httpOptions() throws(KappaError) -> HTTPServerOptions {
        let bind = Self.address(http)!
        var o = HTTPServerOptions(host: bind.host, port: bind.port)
        o.fsync = FsyncPolicy(name: fsync)!
        guard httpMaxBodyBytes >= 1024, httpMaxBodyBytes <= 1 << 30 else { throw KappaError(.invalidArgument, "--http-max-body-bytes must be 1024...\(1 << 30)") }
        o.bodyBytesMax = httpMaxBodyBytes
        if let path = httpTokenFile {
            let bytes = try File(path: path, mode: .readOnly).readAll(limit: 4096)
            let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard token.count >= 16 else { throw KappaError(.invalidArgument, "the token in \(path) is shorter than 16 characters", path: path) }
            o.token = token
        }
        return o
    }

    /// HOST:PORT (the host may be a bracketed IPv6 address).
    static func address(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), port >= 0, port <= 65535 else { return nil }
        return (host, port)
    }

    func options() throws(KappaError) -> KafkaServerOptions {
        let bind = Self.address(kafka)!
        var o = KafkaServerOptions(host: bind.host, port: bind.port)
        if let a = advertisedAddress.flatMap(Self.address) {
            o.advertisedHost = a.host
            o.advertisedPort = a.port
        }
        o.fsync = FsyncPolicy(name: fsync)!
        o.autoCreateTopics = autoCreateTopics == "on"
        o.defaultPartitions = defaultPartitions
        o.groupInitialRebalanceDelayMillis = Duration.parseMillis(groupInitialRebalanceDelay) ?? 0
        return o
    }

    func run() async throws {
        try await runReportingErrorsAsync {
            let dir = DataDirectory(root: data.path)
            try FS.makeDirectories(dir.root)
            var logger = Logger(label: "kappa.serve")
            logger.logLevel = Logger.Level(rawValue: logLevel)!
            let metrics = KappaMetrics()
            metrics.bootstrap()
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            if kafka != "off" {
                let server = KafkaServer(directory: dir, options: try options(), logger: logger) { address in
                    Stderr.line("listening on \(address) (Kafka protocol), data \(dir.root)")
                }
                services.append(.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
            }
            if http != "off" {
                let server = HTTPServer(directory: dir, options: try httpOptions(), metrics: metrics, logger: logger) { address in
                    Stderr.line("listening on http://\(address) (HTTP API), data \(dir.root)")
                }
                services.append(.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
            }
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }
}
