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
/// Every connection lws holds has an identity of its own (`ConnectionID`, stored in the wsi's
/// opaque user data when lws creates it), never the wsi's address, which lws reuses. Request
/// handlers run as tasks the server counts: `drain` stops taking requests, closes the WebSockets
/// and waits for both to finish before `stop`.
///
/// This file is the loop and the lifecycle; `HTTPServer+WebSocket.swift` the lws callbacks;
/// `FrontDoor` the HTTP connections and their requests; `WebSocketConnection` one socket's queue.
///
/// `@unchecked Sendable`: `sockets`, `pendingUpgrades`, `refusals`, `upgrades`, `silence`,
/// `frontDoor`, `adopting`, `addresses` and `nextConnection` are touched only on the service
/// thread (inside lws callbacks and libev watchers); `inbox` and `activity` are behind `Mutex`es.
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
    let options: Options
    private let handler: Handler
    let upgrader: Upgrader

    var context: OpaquePointer?
    /// The libev loop (epoll) lws runs in, ours so lws installs no signal watchers: lws's own
    /// loop polls every descriptor on each wake-up (see docs/architecture.md).
    private var loop: UnsafeMutableRawPointer?
    private let protocols: UnsafeMutablePointer<lws_protocols>
    /// All zero: lws keeps no validity timers of its own (see `SilenceWheel`).
    private let idlePolicy: UnsafeMutablePointer<lws_retry_bo_t>
    private var tick: UnsafeMutableRawPointer?
    var silence: SilenceWheel<UInt64>
    var frontDoor: FrontDoor?
    /// The connection lws is adopting, with its address (read at its `WSI_CREATE`), and the
    /// address of every connection lws holds, so that its count drops when lws destroys it.
    var adopting: (id: ConnectionID, address: UInt32, client: String)?
    var addresses: [ConnectionID: (address: UInt32, client: String)] = [:]
    /// The upgrade requests the front door read, by socket, until lws asks to confirm them.
    var upgrades: [Int32: UpgradeRequest] = [:]
    /// The last identity given to a connection lws made.
    var nextConnection: ConnectionID = 0
    private let protocolName: UnsafeMutablePointer<CChar>
    private let stopped = DispatchSemaphore(value: 0)

    struct Inbox {
        var responses: [(ticket: FrontDoor.Ticket, response: ServerResponse)] = []
        var wake: Set<UInt64> = []
        var closeAll: (code: UInt16, reason: String)?
        var isStopping = false
        /// `drain` was called: new requests get 503.
        var isDraining = false
        /// False from just before `lws_context_destroy`: no thread may poke the context after that.
        var isServing = false
        /// A wake-up is on its way (`lws_cancel_service` called, `drainInbox` not run yet): one
        /// wake-up serves every change made before the drain, so a burst of sends costs one.
        var isWakePending = false
    }
    private let inbox = Mutex(Inbox())

    /// Request tasks running and WebSockets open, for `drain`; `quiet` wakes it when one ends.
    struct Activity {
        var requests = 0
        var webSockets = 0
        var isQuiet: Bool { requests == 0 && webSockets == 0 }
    }
    let activity = Mutex(Activity())
    let quiet = WakeSignal()

    struct Socket {
        /// Valid until lws reports the connection closed (the entry goes with it).
        var wsi: OpaquePointer
        var connection: WebSocketConnection
        /// Nil for a refused upgrade that is closing.
        var handler: (any WebSocketHandler)?
        var received: [UInt8] = []
        /// The wheel's second when the client was last heard from (a message, a pong, the handshake).
        var heard = 0
        var isPingDue = false
    }
    var sockets: [ConnectionID: Socket] = [:]
    var pendingUpgrades: [ConnectionID: any WebSocketHandler] = [:]
    var refusals: [ConnectionID: UpgradeRefusal] = [:]

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
            return Unmanaged<HTTPServer>.fromOpaque(user).takeUnretainedValue().callback(wsi, reason, input, length)
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
            // The connection's identity goes in with the socket (lws's opaque user data of the wsi).
            nextConnection += 1
            adopting = (nextConnection, address, request.clientAddress)
            upgrades[socket] = request
            var adoption = lws_adopt_desc_t()
            adoption.vh = vhost
            adoption.type = lws_adoption_type(rawValue: LWS_ADOPT_SOCKET.rawValue | LWS_ADOPT_HTTP.rawValue)
            adoption.fd.sockfd = socket
            adoption.opaque = UnsafeMutableRawPointer(bitPattern: UInt(nextConnection))
            let adopted = lws_adopt_descriptor_vhost_via_info(&adoption)
            if adopting != nil {
                // lws refused it before making a connection of it: it is ours to close.
                adopting = nil
                upgrades[socket] = nil
                if adopted == nil { close(socket) }
                frontDoor?.closed(address, client: request.clientAddress)
            }
        }, serve: { [weak self] ticket, request in
            self?.serve(ticket, request, with: handler)
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

    /// Graceful shutdown, before `stop`: new requests are answered 503, every WebSocket is closed
    /// with 1001 after what is queued on it, and this returns once the request tasks in flight
    /// have answered and the WebSockets are closed, or after `timeout`.
    public func drain(timeout: Duration) async {
        poke { inbox in
            inbox.isDraining = true
            inbox.closeAll = (1001, "server shutting down")
        }
        let deadline = ContinuousClock.now + timeout
        while !activity.withLock(\.isQuiet), ContinuousClock.now < deadline, !Task.isCancelled {
            await quiet.wait(timeout: deadline - .now)
        }
    }

    /// Runs the handler for one request as a task the server counts (on the service thread). While
    /// draining, the request is answered 503 at once.
    private func serve(_ ticket: FrontDoor.Ticket, _ request: ServerRequest, with handler: @escaping Handler) {
        if inbox.withLock(\.isDraining) {
            let body = Array(#"{"error":{"code":"shutting_down","message":"the daemon is shutting down; try again"}}"#.utf8)
            frontDoor?.respond(ticket, ServerResponse(status: 503, headers: [("Retry-After", "1")], body: body))
            return
        }
        activity.withLock { $0.requests += 1 }
        Task {
            let response = await handler(request)
            poke { $0.responses.append((ticket, response)) }
            activity.withLock { $0.requests -= 1 }
            quiet.signal()
        }
    }

    /// Stops the service thread and closes every connection; returns once lws is gone.
    public func stop() {
        guard poke({ $0.isStopping = true }) else { return }
        stopped.wait()
    }

    /// Changes the inbox and wakes the service thread, both under the lock, so a context being
    /// destroyed is never poked. False when the server is not serving.
    @discardableResult
    func poke(_ change: (inout Inbox) -> Void) -> Bool {
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

    /// Once a second: deadlines. Pings the WebSockets due a ping, drops those silent past
    /// `hangUpAfter`; the front door answers 408 to requests whose head or body is late.
    func everySecond() {
        let ids = silence.advance()
        frontDoor?.tick(now: silence.now)
        var hungUp = false
        for id in ids {
            guard let socket = sockets[id] else { continue }
            let wsi = socket.wsi
            switch SilenceWheel<UInt64>.verdict(heard: socket.heard, now: silence.now, pingAfter: options.pingAfter, hangUpAfter: options.hangUpAfter) {
            case .wait(let until):
                silence.schedule(id, at: until)
            case .ping(let next):
                sockets[id]?.isPingDue = true
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

    func wake(_ connection: ConnectionID) {
        poke { _ = $0.wake.insert(connection) }
    }

    func drainInbox() {
        let work = inbox.withLock { inbox in
            defer { inbox.responses = []; inbox.wake = []; inbox.closeAll = nil; inbox.isWakePending = false }
            return (responses: inbox.responses, wake: inbox.wake, closeAll: inbox.closeAll, isStopping: inbox.isStopping)
        }
        // Answers first: a drained server's last responses go out before its loop ends.
        for (ticket, response) in work.responses { frontDoor?.respond(ticket, response) }
        if work.isStopping, let loop {
            gf_ev_break(loop)
            return
        }
        if let (code, reason) = work.closeAll {
            for socket in sockets.values { socket.connection.close(code: code, reason: reason) }
        }
        for id in work.wake {
            if let wsi = sockets[id]?.wsi { lws_callback_on_writable(wsi) }
        }
    }
}

/// The listener could not start.
public struct ServerError: Error, Sendable, CustomStringConvertible {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
