import NIOCore

/// How the broker answers one request, from its own loop: the answer (or none, for a
/// Produce with acks 0), or closing the connection, is handed to the connection's event
/// loop, where `ConnectionHandler` writes it and lets the connection's next request go.
/// Exactly one of `send`, `sendNothing` and `close` is called per request.
struct Responder: Sendable {
    let handler: NIOLoopBound<ConnectionHandler>
    let eventLoop: EventLoop
    /// The peer's address as Kafka shows it ("/127.0.0.1"), for DescribeGroups.
    let clientHost: String

    func send(_ response: ByteBuffer) {
        let handler = handler
        eventLoop.execute { handler.value.finish(response) }
    }

    func sendNothing() {
        let handler = handler
        eventLoop.execute { handler.value.finish(nil) }
    }

    func close(_ reason: String) {
        let handler = handler
        eventLoop.execute { handler.value.closeConnection(reason) }
    }
}
