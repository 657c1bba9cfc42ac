public import GenflowCore
internal import Metrics
internal import CEventLoop
internal import CWebSocketsShims
internal import CWebSockets
internal import Foundation
internal import Synchronization

/// The HTTP + WebSocket listener: HTTP/1.1 in `FrontDoor`, WebSockets on libwebsockets.
///
/// Everything runs on one service thread, a libev loop that lws shares. The front door accepts
/// each connection and serves its requests; a WebSocket upgrade is handed to lws, which only the
/// service thread calls (STYLE.md). Handlers run as tasks; their responses, and messages queued on
/// WebSocket connections, reach the service thread through `inbox` and `lws_cancel_service()`,
/// whose `LWS_CALLBACK_EVENT_WAIT_CANCELLED` drains it. Each writable callback does exactly one
/// `lws_write`, with `LWS_PRE` bytes of headroom. WebSocket keep-alive and the deadlines run on a
/// once-a-second libev timer on the same loop (`everySecond`).
///
/// `@unchecked Sendable`: `sockets`, `connectionSockets`, `pendingUpgrades`, `upgrades`,
/// `silence`, `frontDoor`, `adopting` and `addresses` are touched only on the service thread
/// (inside lws callbacks and libev watchers); `inbox` is behind its `Mutex`.
public final class HTTPServer: @unchecked Sendable {
    public typealias Handler = @Sendable (ServerRequest) async -> ServerResponse
    public typealias Upgrader = @Sendable (UpgradeRequest) -> Result<any WebSocketHandler, UpgradeRefusal>

    /// Limits and timings of the listener.
    public struct Options: Sendable {
        public var maxBodyBytes = 1 << 20
        /// Messages a WebSocket may have queued before it is closed with 1008.
        public var webSocketQueueLimit = 512
        /// Longest incoming WebSocket message.
        public var maxMessageBytes = 64 << 10
        /// Seconds of silence before a WebSocket is pinged, and before one that answered nothing is dropped.
        public var pingAfter = 30
        public var hangUpAfter = 70
        /// WebSocket handshakes lws may hold at once (each holds one of its header buffers).
        public var concurrentUpgrades: UInt16 = 64
        /// Seconds from accept (or a request's first byte) to its complete head (408 after), from
        /// the head to the last byte of the body (408 after), and a kept-alive connection may wait
        /// for its next request (closed after).
        public var headerTimeout = 10
        public var bodyTimeout = 60
        public var keepAliveTimeout = 15
        /// Largest request head (request line and headers: 431 above) and request target (414 above).
        public var maxHeadBytes = 8_192
        public var maxTargetBytes = 4_096
        /// Connections one client address may hold open, and of those still sending their first
        /// request head (429 above either).
        public var connectionsPerAddress = 1_024
        public var unfinishedPerAddress = 128
        /// Addresses (CIDR blocks) of reverse proxies, whose connections are not counted per address.
        public var trustedProxies: [IPv4Range] = []

        public init() {}
    }

    /// The port it listens on (the kernel's choice when asked for 0).
    public private(set) var port = 0

    private let host: String
    private let requestedPort: Int
    private let options: Options
    private let handler: Handler
    private let upgrader: Upgrader

    private var context: OpaquePointer?
    /// The libev loop (epoll) lws runs in, ours so lws installs no signal watchers: lws's own
    /// loop polls every descriptor on each wake-up (see docs/architecture.md).
    private var loop: UnsafeMutableRawPointer?
    private let protocols: UnsafeMutablePointer<lws_protocols>
    /// All zero: lws keeps no validity timers of its own (see `SilenceWheel`).
    private let idlePolicy: UnsafeMutablePointer<lws_retry_bo_t>
    private var tick: UnsafeMutableRawPointer?
    private var silence: SilenceWheel<UInt64>
    private var frontDoor: FrontDoor?
    /// The address of the connection lws is adopting (read at its `WSI_CREATE`), and the address
    /// of every connection lws holds, by wsi, so that its count drops when lws destroys it.
    private var adopting: UInt32?
    private var addresses: [Int: UInt32] = [:]
    /// The upgrade requests the front door read, by socket, until lws asks to confirm them.
    private var upgrades: [Int32: UpgradeRequest] = [:]
    private let protocolName: UnsafeMutablePointer<CChar>
    private let stopped = DispatchSemaphore(value: 0)

    private struct Inbox {
        var responses: [(ticket: FrontDoor.Ticket, response: ServerResponse)] = []
        var wake: Set<UInt64> = []
        var closeAll: (code: UInt16, reason: String)?
        var isStopping = false
        /// False from just before `lws_context_destroy`: no thread may poke the context after that.
        var isServing = false
        /// A wake-up is on its way (`lws_cancel_service` called, `drainInbox` not run yet): one
        /// wake-up serves every change made before the drain, so a burst of sends costs one.
        var isWakePending = false
    }
    private let inbox = Mutex(Inbox())
    private let nextConnection = Mutex(UInt64(0))

    private struct Socket {
        var connection: WebSocketConnection
        /// Nil for a refused upgrade that is closing.
        var handler: (any WebSocketHandler)?
        var received: [UInt8] = []
        /// The wheel's second when the client was last heard from (a message, a pong, the handshake).
        var heard = 0
        var isPingDue = false
    }
    private var sockets: [Int: Socket] = [:]
    private var connectionSockets: [UInt64: Int] = [:]
    private var pendingUpgrades: [Int: any WebSocketHandler] = [:]
    private var refusals: [Int: UpgradeRefusal] = [:]

    /// - Parameters:
    ///   - host: the address to listen on, e.g. `127.0.0.1`.
    ///   - port: the port; 0 lets the kernel choose (read `port` after `start`).
    ///   - handler: answers every HTTP request that is not a WebSocket upgrade (as a task).
    ///   - upgrader: accepts or refuses a WebSocket upgrade (on the service thread: no blocking).
    public init(host: String, port: Int, options: Options = Options(), handler: @escaping Handler, upgrader: @escaping Upgrader) {
        self.host = host
        requestedPort = port
        self.options = options
        self.handler = handler
        self.upgrader = upgrader
        protocols = .allocate(capacity: 2)
        protocols.initialize(repeating: lws_protocols(), count: 2)
        idlePolicy = .allocate(capacity: 1)
        idlePolicy.initialize(to: lws_retry_bo_t(
            retry_ms_table: nil, retry_ms_table_count: 0, conceal_count: 0,
            secs_since_valid_ping: 0, secs_since_valid_hangup: 0, jitter_percent: 0
        ))
        silence = SilenceWheel(horizon: options.hangUpAfter)
        protocolName = strdup("http")
    }

    deinit {
        protocols.deallocate()
        idlePolicy.deallocate()
        free(protocolName)
    }

    /// Binds the port and starts the service thread.
    public func start() throws {
        lws_set_log_level(0, nil)
        protocols[0].name = UnsafePointer(protocolName)
        protocols[0].callback = { wsi, reason, _, input, length in
            guard let wsi, let context = lws_get_context(wsi), let user = lws_context_user(context) else { return 0 }
            return Unmanaged<HTTPServer>.fromOpaque(user).takeUnretainedValue().handle(wsi, reason, input, length)
        }
        let (listening, bound) = try FrontDoor.bind(host: host, port: requestedPort)
        var info = lws_context_creation_info()
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER
        info.protocols = UnsafePointer(protocols)
        info.user = Unmanaged.passUnretained(self).toOpaque()
        info.gid = -1
        info.uid = -1
        info.options = UInt64(LWS_SERVER_OPTION_VALIDATE_UTF8) | UInt64(LWS_SERVER_OPTION_DISABLE_IPV6)
        info.max_http_header_pool = options.concurrentUpgrades
        info.max_http_header_data = UInt16(min(options.maxHeadBytes + 1_024, 65_535))
        info.timeout_secs = 30
        info.timeout_secs_ah_idle = UInt32(options.headerTimeout)
        info.retry_and_idle_policy = UnsafePointer(idlePolicy)
        guard let loop = gf_ev_loop_new() else {
            close(listening)
            throw ServerError("cannot create an event loop")
        }
        info.options |= UInt64(LWS_SERVER_OPTION_LIBEV)
        var foreignLoops: [UnsafeMutableRawPointer?] = [loop]
        let created = foreignLoops.withUnsafeMutableBufferPointer { loops in
            info.foreign_loops = loops.baseAddress
            return lws_create_context(&info)
        }
        guard let context = created, let vhost = lws_get_vhost_by_name(context, "default") else {
            if let created { lws_context_destroy(created) }
            gf_ev_loop_destroy(loop)
            close(listening)
            throw ServerError("cannot start libwebsockets on \(host):\(requestedPort)")
        }
        port = bound
        var door = FrontDoor.Options()
        door.head = HeadScanner.Limits(maxHeadBytes: options.maxHeadBytes, maxTargetBytes: options.maxTargetBytes)
        door.admission = Admission.Limits(
            connectionsPerAddress: options.connectionsPerAddress, unfinishedPerAddress: options.unfinishedPerAddress,
            trustedProxies: options.trustedProxies
        )
        door.headerTimeout = options.headerTimeout
        door.bodyTimeout = options.bodyTimeout
        door.keepAliveTimeout = options.keepAliveTimeout
        door.maxBodyBytes = options.maxBodyBytes
        let handler = handler
        frontDoor = FrontDoor(loop: loop, listening: listening, options: door, upgrade: { [unowned self] socket, address, request in
            adopting = address
            upgrades[socket] = request
            let adopted = lws_adopt_socket_vhost(vhost, socket)
            if adopting != nil {
                // lws refused it before making a connection of it: it is ours to close.
                adopting = nil
                upgrades[socket] = nil
                if adopted == nil { close(socket) }
                frontDoor?.closed(address)
            }
        }, serve: { [weak self] ticket, request in
            Task {
                let response = await handler(request)
                self?.poke { $0.responses.append((ticket, response)) }
            }
        })
        frontDoor?.start()
        self.context = context
        self.loop = loop
        tick = gf_ev_timer_start(loop, 1, { server, _ in
            guard let server else { return }
            Unmanaged<HTTPServer>.fromOpaque(server).takeUnretainedValue().everySecond()
        }, Unmanaged.passUnretained(self).toOpaque())
        inbox.withLock { $0.isServing = true }
        let thread = Thread { [self] in serve() }
        thread.name = "genflow-listener"
        thread.start()
    }

    /// Closes every WebSocket with `code` (1001: going away) after what is queued on it.
    public func closeWebSockets(code: UInt16 = 1001, reason: String = "server shutting down") {
        poke { $0.closeAll = (code, reason) }
    }

    /// Stops the service thread and closes every connection; returns once lws is gone.
    public func stop() {
        guard poke({ $0.isStopping = true }) else { return }
        stopped.wait()
    }

    /// Changes the inbox and wakes the service thread, both under the lock, so a context being
    /// destroyed is never poked. False when the server is not serving.
    @discardableResult
    private func poke(_ change: (inout Inbox) -> Void) -> Bool {
        inbox.withLock { inbox in
            guard inbox.isServing, let context else { return false }
            change(&inbox)
            if !inbox.isWakePending {
                inbox.isWakePending = true
                lws_cancel_service(context)
            }
            return true
        }
    }

    /// Runs the loop until `drainInbox` sees `isStopping` and breaks it; then lws is destroyed.
    private func serve() {
        guard let context, let loop else { return }
        gf_ev_run(loop)
        if let tick { gf_ev_timer_stop(loop, tick) }
        frontDoor?.stop()
        inbox.withLock { $0.isServing = false }
        lws_context_destroy(context)
        gf_ev_loop_destroy(loop)
        stopped.signal()
    }

    // MARK: Service thread

    private func handle(_ wsi: OpaquePointer, _ reason: lws_callback_reasons, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        let key = Int(bitPattern: UnsafeRawPointer(wsi))
        switch reason {
        case LWS_CALLBACK_WSI_CREATE:
            if let address = adopting {
                addresses[key] = address
                adopting = nil
            }
            return 0
        case LWS_CALLBACK_WSI_DESTROY:
            if let address = addresses.removeValue(forKey: key) { frontDoor?.closed(address) }
            return 0
        case LWS_CALLBACK_HTTP:
            // Only upgrades reach lws; one it would not upgrade is closed.
            return -1
        case LWS_CALLBACK_CLOSED_HTTP:
            pendingUpgrades[key] = nil
            refusals[key] = nil
            return 0
        case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
            guard let request = upgrades.removeValue(forKey: lws_get_socket_fd(wsi)) else { return -1 }
            switch upgrader(request) {
            case .success(let handler):
                pendingUpgrades[key] = handler
                return 0
            case .failure(let refusal):
                // An HTTP error here would be answered as HTTP/1.0, which WebSocket clients reject,
                // and browsers hide its status anyway: upgrade, then close with 4000 + status.
                refusals[key] = refusal
                return 0
            }
        case LWS_CALLBACK_ESTABLISHED:
            let handler = pendingUpgrades.removeValue(forKey: key)
            let refusal = refusals.removeValue(forKey: key)
            guard handler != nil || refusal != nil else { return -1 }
            let id = nextConnection.withLock { next in
                next += 1
                return next
            }
            let connection = WebSocketConnection(id: id, limit: options.webSocketQueueLimit) { [weak self] id in self?.wake(id) }
            sockets[key] = Socket(connection: connection, handler: handler, heard: silence.now)
            connectionSockets[id] = key
            silence.schedule(id, at: silence.now + options.pingAfter)
            if let refusal {
                connection.close(code: UInt16(4_000 + refusal.status), reason: refusal.body)
            } else {
                handler?.opened(connection)
            }
            return 0
        case LWS_CALLBACK_RECEIVE:
            sockets[key]?.heard = silence.now
            return receive(wsi, key, input, length)
        case LWS_CALLBACK_RECEIVE_PONG:
            sockets[key]?.heard = silence.now
            return 0
        case LWS_CALLBACK_SERVER_WRITEABLE:
            guard let socket = sockets[key] else { return 0 }
            if socket.isPingDue {
                sockets[key]?.isPingDue = false
                // With a payload: lws 4.1 does not report an empty pong.
                var payload = Array("genflow".utf8)
                if Self.write(wsi, &payload, LWS_WRITE_PING) < 0 { return -1 }
                if socket.connection.hasWork { lws_callback_on_writable(wsi) }
                return 0
            }
            switch socket.connection.next() {
            case .message(let text, let more):
                var bytes = Array(text.utf8)
                let written = Self.write(wsi, &bytes, LWS_WRITE_TEXT)
                if written < 0 { return -1 }
                if more { lws_callback_on_writable(wsi) }
                return 0
            case .close(let code, let reason):
                var bytes = Array(reason.utf8.prefix(120))
                lws_close_reason(wsi, lws_close_status(rawValue: UInt32(code)), &bytes, bytes.count)
                return -1
            case .nothing:
                return 0
            }
        case LWS_CALLBACK_CLOSED:
            guard let socket = sockets.removeValue(forKey: key) else { return 0 }
            connectionSockets[socket.connection.id] = nil
            socket.connection.markClosed()
            socket.handler?.closed(socket.connection)
            return 0
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
            drainInbox()
            return 0
        default:
            return lws_callback_http_dummy(wsi, reason, nil, input, length)
        }
    }

    /// Once a second: deadlines. Pings the WebSockets due a ping, drops those silent past
    /// `hangUpAfter`; the front door answers 408 to requests whose head or body is late.
    private func everySecond() {
        let ids = silence.advance()
        frontDoor?.tick(now: silence.now)
        var hungUp = false
        for id in ids {
            guard let key = connectionSockets[id], let socket = sockets[key], let wsi = OpaquePointer(bitPattern: key) else { continue }
            switch SilenceWheel<UInt64>.verdict(heard: socket.heard, now: silence.now, pingAfter: options.pingAfter, hangUpAfter: options.hangUpAfter) {
            case .wait(let until):
                silence.schedule(id, at: until)
            case .ping(let next):
                sockets[key]?.isPingDue = true
                lws_callback_on_writable(wsi)
                silence.schedule(id, at: next)
            case .hangUp:
                lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC)
                Counter(label: "genflow_websocket_hangups_total").increment()
                hungUp = true
            }
        }
        // lws looks at its timers (the kill above) only after an event of its own: make one.
        if hungUp, let context { lws_cancel_service(context) }
    }

    private func wake(_ connection: UInt64) {
        poke { _ = $0.wake.insert(connection) }
    }

    private func drainInbox() {
        let work = inbox.withLock { inbox in
            defer { inbox.responses = []; inbox.wake = []; inbox.closeAll = nil; inbox.isWakePending = false }
            return (responses: inbox.responses, wake: inbox.wake, closeAll: inbox.closeAll, isStopping: inbox.isStopping)
        }
        if work.isStopping, let loop {
            gf_ev_break(loop)
            return
        }
        for (ticket, response) in work.responses { frontDoor?.respond(ticket, response) }
        if let (code, reason) = work.closeAll {
            for socket in sockets.values { socket.connection.close(code: code, reason: reason) }
        }
        for id in work.wake {
            guard let key = connectionSockets[id], let wsi = OpaquePointer(bitPattern: key) else { continue }
            lws_callback_on_writable(wsi)
        }
    }

    private func receive(_ wsi: OpaquePointer, _ key: Int, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        guard var socket = sockets[key] else { return -1 }
        if lws_frame_is_binary(wsi) != 0 {
            return Self.closeNow(wsi, code: 1003, "binary messages are not accepted; send JSON text")
        }
        if let input { socket.received.append(contentsOf: UnsafeRawBufferPointer(start: input, count: length)) }
        if socket.received.count > options.maxMessageBytes {
            return Self.closeNow(wsi, code: 1009, "message larger than \(options.maxMessageBytes) bytes")
        }
        guard lws_is_final_fragment(wsi) != 0, lws_remaining_packet_payload(wsi) == 0 else {
            sockets[key] = socket
            return 0
        }
        let text = String(decoding: socket.received, as: UTF8.self)
        socket.received = []
        sockets[key] = socket
        socket.handler?.received(text, on: socket.connection)
        return 0
    }

    private static func closeNow(_ wsi: OpaquePointer, code: UInt16, _ reason: String) -> Int32 {
        var bytes = Array(reason.utf8.prefix(120))
        lws_close_reason(wsi, lws_close_status(rawValue: UInt32(code)), &bytes, bytes.count)
        return -1
    }

    /// One `lws_write` of `bytes` with `LWS_PRE` headroom; the count written, or -1.
    private static func write(_ wsi: OpaquePointer, _ bytes: inout [UInt8], _ kind: lws_write_protocol) -> Int {
        let pre = gf_lws_pre()
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: pre + max(bytes.count, 1))
        defer { buffer.deallocate() }
        bytes.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { (buffer + pre).update(from: base, count: source.count) }
        }
        let written = Int(lws_write(wsi, buffer + pre, bytes.count, kind))
        return written < bytes.count ? -1 : written
    }
}

/// The listener could not start.
public struct ServerError: Error, Sendable, CustomStringConvertible {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
