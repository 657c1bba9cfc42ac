public import GenflowCore
internal import Synchronization

/// One open WebSocket. Any thread may send or close; the listener's service thread writes, one
/// message per writable callback. The outgoing queue is bounded: a client that does not keep up is
/// closed with 1008 (policy violation) and catches up by reconnecting with `since`.
public final class WebSocketConnection: Sendable, Hashable {
    /// Unique within the process.
    public let id: UInt64
    /// Messages it may have queued before it is closed with 1008.
    public let limit: Int
    private let outbox = Mutex(Outbox())
    private let wake: @Sendable (UInt64) -> Void
    /// Signalled when the queue falls to half its limit, and when the connection closes.
    private let drained = Broadcast()

    struct Outbox {
        var messages: [(key: String?, text: String)] = []
        var closing: (code: UInt16, reason: String)?
        var isClosed = false
        var sent = 0
        var dropped = 0
    }

    init(id: UInt64, limit: Int, wake: @escaping @Sendable (UInt64) -> Void) {
        self.id = id
        self.limit = limit
        self.wake = wake
    }

    /// Queues a text message. With `coalescingKey`, a queued message with the same key that has not
    /// gone out yet is dropped (the latest progress of a step is all a client needs). Returns false
    /// when the connection is closed or closing; on overflow the connection starts closing with 1008.
    @discardableResult
    public func send(_ text: String, coalescingKey: String? = nil) -> Bool {
        let accepted = outbox.withLock { outbox -> Bool in
            guard !outbox.isClosed, outbox.closing == nil else { return false }
            if let coalescingKey, let index = outbox.messages.firstIndex(where: { $0.key == coalescingKey }) {
                // The older one goes and the new one joins the end: replacing it in place would
                // put this message before ones queued after the old one, out of order.
                outbox.messages.remove(at: index)
                outbox.messages.append((coalescingKey, text))
                outbox.dropped += 1
                return true
            }
            guard outbox.messages.count < limit else {
                outbox.dropped += outbox.messages.count
                outbox.messages.removeAll()
                outbox.closing = (1008, "too many messages queued: reconnect with since")
                return false
            }
            outbox.messages.append((coalescingKey, text))
            return true
        }
        wake(id)
        return accepted
    }

    /// Closes after the messages already queued, with a WebSocket close code.
    public func close(code: UInt16 = 1000, reason: String = "") {
        outbox.withLock { outbox in
            if outbox.closing == nil { outbox.closing = (code, reason) }
        }
        wake(id)
    }

    /// Messages waiting to go out.
    public var queued: Int { outbox.withLock { $0.messages.count } }

    /// Waits until at most half the limit is queued (true), or the connection closed (false).
    public func waitForRoom() async -> Bool {
        await drained.wait { outbox.withLock { $0.isClosed || $0.closing != nil || $0.messages.count <= limit / 2 } }
        return outbox.withLock { !$0.isClosed && $0.closing == nil }
    }

    /// Whether the service thread has a message or a close to write.
    var hasWork: Bool { outbox.withLock { !$0.messages.isEmpty || $0.closing != nil } }

    /// (sent, dropped by coalescing or overflow) so far.
    public var counts: (sent: Int, dropped: Int) { outbox.withLock { ($0.sent, $0.dropped) } }

    /// What the service thread writes next: a message, or the close to perform.
    enum Next {
        case message(String, more: Bool)
        case close(UInt16, String)
        case nothing
    }

    func next() -> Next {
        let (next, isHalf) = outbox.withLock { outbox -> (Next, Bool) in
            if !outbox.messages.isEmpty {
                outbox.sent += 1
                let text = outbox.messages.removeFirst().text
                return (.message(text, more: !outbox.messages.isEmpty || outbox.closing != nil), outbox.messages.count == limit / 2)
            }
            if let closing = outbox.closing { return (.close(closing.code, closing.reason), false) }
            return (.nothing, false)
        }
        if isHalf { drained.signal() }
        return next
    }

    func markClosed() {
        outbox.withLock { outbox in
            outbox.isClosed = true
            outbox.messages.removeAll()
        }
        drained.signal()
    }

    public static func == (lhs: WebSocketConnection, rhs: WebSocketConnection) -> Bool { lhs.id == rhs.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}
