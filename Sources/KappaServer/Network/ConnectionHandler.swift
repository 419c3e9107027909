import Logging
import NIOCore

/// One client connection, after `KafkaFrameDecoder` has cut its bytes into requests.
///
/// Kafka serves a connection's requests one at a time, in order, and answers in that
/// order; clients rely on it (they pipeline requests and match answers by order as well
/// as by correlation id). So one request is with the broker at a time; the next waits
/// here until the answer is written. Memory stays bounded: at most
/// `ServerLimits.pendingRequestsMax` requests wait, beyond which the socket is not read
/// (TCP pushes back), and no request goes to the broker while the connection is not
/// writable (a client that does not read its answers stops being served, instead of
/// piling them up here).
///
/// A frame that is not Kafka (bad length), a request that does not decode, an unknown
/// API key or version: the connection is closed, and only this one. Runs on its
/// channel's event loop.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let broker: Broker
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var pending = CircularBuffer<ByteBuffer>()
    private var inFlight = false
    private var readHeldBack = false
    private var closed = false
    private var clientHost = ""

    init(broker: Broker, logger: Logger) {
        self.broker = broker
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientHost = "/" + (context.remoteAddress?.ipAddress ?? "unknown")
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closed = true
        pending.removeAll()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        pending.append(unwrapInboundIn(data))
        submitNext()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        pending.removeAll()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        submitNext()
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        closeConnection("\(error)")
    }

    /// Holds back reads while enough requests wait.
    func read(context: ChannelHandlerContext) {
        if pending.count >= ServerLimits.pendingRequestsMax {
            readHeldBack = true
        } else {
            context.read()
        }
    }

    private func submitNext() {
        guard let context, !closed, !inFlight, context.channel.isWritable, let frame = pending.popFirst() else { return }
        inFlight = true
        let responder = Responder(handler: NIOLoopBound(self, eventLoop: context.eventLoop), eventLoop: context.eventLoop, clientHost: clientHost)
        let broker = broker
        broker.loop.execute { broker.handle(frame, responder) }
        if readHeldBack, pending.count < ServerLimits.pendingRequestsMax {
            readHeldBack = false
            context.read()
        }
    }

    /// The broker's answer to the request in flight (nil: none is due).
    func finish(_ response: ByteBuffer?) {
        inFlight = false
        guard let context, !closed else { return }
        if let response { context.writeAndFlush(wrapOutboundOut(response), promise: nil) }
        submitNext()
    }

    func closeConnection(_ reason: String) {
        inFlight = false
        guard let context, !closed else { return }
        closed = true
        pending.removeAll()
        logger.notice("closing connection", metadata: ["peer": "\(clientHost)", "reason": "\(reason)"])
        context.close(promise: nil)
    }
}
