import KappaCore
import KappaLog

/// `kappa serve --http` settings. Every limit is checked at the edge, before work starts.
public struct HTTPServerOptions: Sendable {
    public var host: String
    public var port: Int
    /// Write routes (POST) need `Authorization: Bearer <token>` when set; required when
    /// `host` is not a loopback address (the server refuses to start without it).
    public var token: String?
    /// The largest request body (an ingest of JSON Lines): over it, 413 before any line
    /// is written. 64 MiB: about 250 000 Rebu events per request, and what one request
    /// may hold in memory.
    public var bodyBytesMax: Int = 64 << 20
    /// The longest line of an ingest (as `kappa produce --max-line-bytes`).
    public var lineBytesMax: Int = Limits.lineBytesDefault
    /// Most rows or records one page may ask for (`limit=`): bounds the memory and the
    /// time of one answer.
    public var pageLimitMax: Int = 1000
    public var pageLimitDefault: Int = 100
    /// Most days `/daily` shows or forecasts (a year).
    public var daysMax: Int = 366
    /// Connections held at once; past it new ones wait in the backlog.
    public var connectionsMax: Int = 1024
    /// A connection idle this long (a stalled or slow-loris client) is closed.
    public var idleTimeoutSeconds: Int64 = 60
    public var fsync: FsyncPolicy = .default

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// 127.0.0.0/8, ::1 and localhost.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Refuses what must not start: a non-loopback address without a token.
    public func validate() throws(KappaError) {
        if !Self.isLoopback(host) && (token ?? "").isEmpty {
            throw KappaError(.invalidArgument, "--http \(host):\(port) is not a loopback address: give --http-token-file FILE (write routes then need 'Authorization: Bearer TOKEN')")
        }
    }
}
