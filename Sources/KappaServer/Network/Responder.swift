import Dispatch
import Metrics
import NIOCore

/// How the broker answers one request, from its own loop: the answer (or none, for a
/// Produce with acks 0), or closing the connection, is handed to the connection's event
/// loop, where `ConnectionHandler` writes it and lets the connection's next request go.
/// Exactly one of `send`, `sendNothing` and `close` is called per request, which also
/// records the request in the metrics (swift-metrics): `kappa_kafka_requests_total` by API
/// and outcome, and `kappa_kafka_request_duration_seconds` by API, from the frame's
/// arrival to its answer (a parked fetch or join counts its wait, as Kafka's own
/// request metrics do).
struct Responder: Sendable {
    let handler: NIOLoopBound<ConnectionHandler>
    let eventLoop: EventLoop
    /// The peer's address as Kafka shows it ("/127.0.0.1"), for DescribeGroups.
    let clientHost: String
    /// The request's API once its header is decoded (nil: undecodable).
    var api: String?
    let receivedNanos = DispatchTime.now().uptimeNanoseconds

    init(handler: NIOLoopBound<ConnectionHandler>, eventLoop: EventLoop, clientHost: String) {
        self.handler = handler
        self.eventLoop = eventLoop
        self.clientHost = clientHost
    }

    func send(_ response: ByteBuffer) {
        record("answered")
        let handler = handler
        eventLoop.execute { handler.value.finish(response) }
    }

    func sendNothing() {
        record("answered")
        let handler = handler
        eventLoop.execute { handler.value.finish(nil) }
    }

    func close(_ reason: String) {
        record("closed")
        let handler = handler
        eventLoop.execute { handler.value.closeConnection(reason) }
    }

    private func record(_ outcome: String) {
        let api = self.api ?? "unknown"
        Counter(label: "kappa_kafka_requests_total", dimensions: [("api", api), ("outcome", outcome)]).increment()
        Metrics.Timer(label: "kappa_kafka_request_duration_seconds", dimensions: [("api", api)])
            .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - receivedNanos))
    }
}
