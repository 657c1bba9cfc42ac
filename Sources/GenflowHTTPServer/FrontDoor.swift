internal import CEventLoop
internal import CLinux
internal import GenflowCore
internal import Foundation

/// The listener's HTTP/1.1 side: it owns the listening socket, accepts each connection, counts it
/// against its address (`Admission`), and reads every request on it itself: the head is peeked at
/// (`HeadScanner`, under a deadline) and taken apart (`RequestHead`), the body read by its
/// `Content-Length`, the handler's answer written back, and the connection kept alive for the next
/// one. Only a WebSocket upgrade goes to libwebsockets, the socket handed over with the upgrade's
/// head still unread. A client that sends slowly holds a descriptor and a scanner's state here,
/// nothing of lws's; a request that can never be served gets its 400, 408, 411, 413, 414, 429 or
/// 431 with a JSON error, on the first request of a connection as on any later one.
///
/// Runs on the listener's service thread only (libev watchers on the listener's loop).
final class FrontDoor {
    struct Options: Sendable {
        var head = HeadScanner.Limits()
        var admission = Admission.Limits()
        /// Seconds from the first byte of a head (or the accept) to the complete head: 408 after.
        var headerTimeout = 10
        /// Seconds from the head to the last byte of the body: 408 after.
        var bodyTimeout = 60
        /// Seconds a kept-alive connection may wait for its next request before it is closed.
        var keepAliveTimeout = 15
        var maxBodyBytes = 1 << 20
    }

    /// Gives a socket whose next request is a WebSocket upgrade (its head unread) to lws.
    typealias Upgrade = (_ socket: Int32, _ address: UInt32, _ request: UpgradeRequest) -> Void
    /// Runs a request's handler; its answer comes back through `respond`.
    typealias Serve = (_ connection: Ticket, _ request: ServerRequest) -> Void

    /// Names one request on one connection: a descriptor is reused once closed, a ticket is not.
    struct Ticket: Hashable, Sendable {
        var socket: Int32
        var serial: UInt64
    }

    private enum Stage {
        /// Kept alive, no byte of the next request yet (after a first request).
        case idle
        /// Its head is arriving.
        case head(HeadScanner)
        /// Its body is arriving; a body over `maxBodyBytes` is read and dropped, then answered 413.
        case body(ServerRequest, remaining: Int, closes: Bool, isTooLarge: Bool)
        /// Its handler runs; nothing more is read until the answer is written.
        case handling(closes: Bool, isHead: Bool)
        /// Its answer is being written (`output`).
        case writing(closes: Bool)
        /// Answered by the listener and closing: read and dropped until the client closes, or until then.
        case lingering(until: Int)
    }

    private struct Connection {
        var serial: UInt64
        var address: UInt32
        var isCounted: Bool
        /// Its first request head is complete (it no longer counts as unfinished).
        var isFinished = false
        var stage: Stage
        /// The second its stage began.
        var since: Int
        var output: [UInt8] = []
        var sent = 0
    }

    private let loop: UnsafeMutableRawPointer
    private let options: Options
    private let upgrade: Upgrade
    private let serve: Serve
    private let listening: Int32
    private var accepting: UnsafeMutableRawPointer?
    /// The connections' sockets, edge-triggered for reading and writing: a head is peeked at, not
    /// read, until it is known not to be an upgrade (lws 4.1 loops on a request handed over with
    /// bytes already read).
    private let polling: Int32
    private var pollingWatcher: UnsafeMutableRawPointer?
    private var admission: Admission
    private var connections: [Int32: Connection] = [:]
    private var serials: UInt64 = 0
    private var now = 0

    /// Seconds an answered connection is read and dropped before it is closed, so that the client,
    /// still sending, reads the answer rather than a reset.
    private static let lingering = 2

    /// Binds `host:port` (an IPv4 address, an interface name or a host name; port 0: the kernel's
    /// choice) and returns the socket and the port bound.
    static func bind(host: String, port: Int) throws -> (socket: Int32, port: Int) {
        guard let address = resolve(host) else { throw ServerError("cannot listen on \(host):\(port) (no such local address or interface)") }
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw ServerError("cannot listen on \(host):\(port) (\(String(cString: strerror(errno))))") }
        var yes: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var name = sockaddr_in()
        name.sin_family = sa_family_t(AF_INET)
        name.sin_port = in_port_t(UInt16(port).bigEndian)
        name.sin_addr = in_addr(s_addr: address.bigEndian)
        let bound = withUnsafePointer(to: &name) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(socket, 4_096) == 0 else {
            let reason = String(cString: strerror(errno))
            close(socket)
            throw ServerError("cannot listen on \(host):\(port) (\(reason))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &name) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        return (socket, Int(UInt16(bigEndian: name.sin_port)))
    }

    /// An IPv4 address in host byte order: `a.b.c.d`, an interface's address, or a name's.
    private static func resolve(_ host: String) -> UInt32? {
        if let address = IPv4Range.address(host) { return address }
        var interfaces: UnsafeMutablePointer<ifaddrs>?
        if getifaddrs(&interfaces) == 0 {
            defer { freeifaddrs(interfaces) }
            var next = interfaces
            while let entry = next {
                if let found = entry.pointee.ifa_addr, found.pointee.sa_family == sa_family_t(AF_INET),
                   String(cString: entry.pointee.ifa_name) == host {
                    return found.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                }
                next = entry.pointee.ifa_next
            }
        }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        var results: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &results) == 0, let first = results, let found = first.pointee.ai_addr else { return nil }
        defer { freeaddrinfo(results) }
        return found.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
    }

    init(loop: UnsafeMutableRawPointer, listening: Int32, options: Options, upgrade: @escaping Upgrade, serve: @escaping Serve) {
        self.loop = loop
        self.listening = listening
        self.options = options
        self.upgrade = upgrade
        self.serve = serve
        admission = Admission(limits: options.admission)
        polling = epoll_create1(Int32(EPOLL_CLOEXEC))
    }

    private var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    func start() {
        accepting = gf_ev_readable_start(loop, listening, { door, _ in
            guard let door else { return }
            Unmanaged<FrontDoor>.fromOpaque(door).takeUnretainedValue().accept()
        }, context)
        if pollingWatcher == nil {
            pollingWatcher = gf_ev_readable_start(loop, polling, { door, _ in
                guard let door else { return }
                Unmanaged<FrontDoor>.fromOpaque(door).takeUnretainedValue().poll()
            }, context)
        }
    }

    /// Closes the listening socket and every connection not handed to lws.
    func stop() {
        if let accepting { gf_ev_readable_stop(loop, accepting) }
        accepting = nil
        close(listening)
        for fd in Array(connections.keys) { drop(fd) }
        if let pollingWatcher { gf_ev_readable_stop(loop, pollingWatcher) }
        pollingWatcher = nil
        close(polling)
    }

    /// A connection handed to lws is gone (`client`: its upgrade's client address).
    func closed(_ address: UInt32, client: String) {
        if admission.isTrusted(address) { admission.closedForwarded(client) }
        admission.closed(address, wasFinished: true)
    }

    /// Once a second: answers 408 to heads and bodies past their deadline, closes idle kept-alive
    /// connections and answered ones, and drops a client that reads no answer for `bodyTimeout`.
    func tick(now: Int) {
        self.now = now
        if accepting == nil, listening >= 0 { start() }
        for (fd, connection) in connections {
            let age = now - connection.since
            switch connection.stage {
            case .idle where age >= options.keepAliveTimeout: drop(fd)
            case .head where age >= options.headerTimeout: answer(fd, .timeout)
            case .body where age >= options.bodyTimeout: answer(fd, .bodyTimeout(options.bodyTimeout))
            case .writing where age >= options.bodyTimeout: drop(fd)
            case .lingering(let until) where until <= now: drop(fd)
            default: break
            }
        }
    }

    /// The handler's answer to the request `ticket` names.
    func respond(_ ticket: Ticket, _ response: ServerResponse) {
        guard var connection = connections[ticket.socket], connection.serial == ticket.serial,
              case .handling(let closes, let isHead) = connection.stage else { return }
        connection.output = response.encoded(closing: closes, omittingBody: isHead)
        connection.sent = 0
        connection.stage = .writing(closes: closes)
        connection.since = now
        connections[ticket.socket] = connection
        advance(ticket.socket)
    }

    private func accept() {
        for _ in 0..<256 {
            var address: UInt32 = 0
            let fd = gf_accept(listening, &address)
            guard fd >= 0 else {
                if errno == EMFILE || errno == ENFILE, let accepting {
                    // Out of descriptors: stop accepting until the next second rather than spin.
                    gf_ev_readable_stop(loop, accepting)
                    self.accepting = nil
                }
                return
            }
            let refusal = admission.admit(address)
            serials += 1
            connections[fd] = Connection(
                serial: serials, address: address, isCounted: refusal == nil, stage: .head(HeadScanner(limits: options.head)), since: now
            )
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
            event.data.fd = fd
            epoll_ctl(polling, EPOLL_CTL_ADD, fd, &event)
            if let refusal { answer(fd, refusal) }
        }
    }

    /// The connections with new bytes, room to write, or a hang-up.
    private func poll() {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while true {
            let count = Int(epoll_wait(polling, &events, Int32(events.count), 0))
            guard count > 0 else { return }
            for event in events[0..<count] { advance(event.data.fd) }
            if count < events.count { return }
        }
    }

    /// Moves the connection on as far as its bytes allow: edge-triggered, so each stage reads or
    /// writes until the kernel says it would block.
    private func advance(_ fd: Int32) {
        while let connection = connections[fd] {
            let moved: Bool
            switch connection.stage {
            case .idle, .head: moved = readHead(fd, connection)
            case .body: moved = readBody(fd, connection)
            case .handling: return
            case .writing: moved = write(fd, connection)
            case .lingering: moved = discard(fd)
            }
            if !moved { return }
        }
    }

    /// Peeks at the head so far (from its first byte: nothing is read until it is known not to
    /// be a WebSocket upgrade); once complete, takes it apart and reads it. False: wait for more.
    private func readHead(_ fd: Int32, _ connection: Connection) -> Bool {
        var connection = connection
        var bytes = [UInt8](repeating: 0, count: options.head.maxHeadBytes + 1)
        let count = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK)) }
        if count < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return false }
        guard count > 0 else {
            drop(fd)
            return false
        }
        bytes.removeLast(bytes.count - count)
        var scanner: HeadScanner
        if case .head(let started) = connection.stage {
            scanner = started
        } else {
            scanner = HeadScanner(limits: options.head)
            connection.since = now
        }
        let scan = scanner.scan(bytes)
        connection.stage = .head(scanner)
        connections[fd] = connection
        switch scan {
        case .incomplete:
            return false
        case .refused(let refusal):
            answer(fd, refusal)
            return false
        case .complete(let length):
            let head = RequestHead(bytes[..<length])
            if !connection.isFinished {
                admission.finished(connection.address)
                connection.isFinished = true
                connections[fd] = connection
            }
            let client = head.clientAddress(peer: connection.address, trusted: options.admission.trustedProxies)
            if head.isWebSocketUpgrade {
                if admission.isTrusted(connection.address), let refusal = admission.admitForwarded(client) {
                    answer(fd, refusal)
                    return false
                }
                epoll_ctl(polling, EPOLL_CTL_DEL, fd, nil)
                connections[fd] = nil
                upgrade(fd, connection.address, UpgradeRequest(path: head.path, query: head.query, headers: head.headers, clientAddress: client))
                return false
            }
            _ = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, length, 0) }
            begin(fd, head, client)
            return true
        }
    }

    /// A head read: refuse what cannot be served, else read the body or run the handler.
    private func begin(_ fd: Int32, _ head: RequestHead, _ client: String) {
        guard var connection = connections[fd] else { return }
        guard head.headers["transfer-encoding"] == nil else { return answer(fd, .lengthRequired) }
        guard let length = head.contentLength else { return answer(fd, .badRequest("Content-Length must be a number of bytes")) }
        // A body up to 16 times the limit is read and dropped first, so the client, still sending,
        // sees the 413 rather than a reset; anything larger is refused at once.
        if length > options.maxBodyBytes * 16 || (length > options.maxBodyBytes && head.expectsContinue) {
            return answer(fd, .payloadTooLarge(options.maxBodyBytes))
        }
        if head.expectsContinue, length > 0 {
            _ = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        }
        var request = ServerRequest(method: head.method, path: head.path, query: head.query, headers: head.headers, clientAddress: client)
        request.body.reserveCapacity(min(length, options.maxBodyBytes))
        connection.stage = .body(request, remaining: length, closes: !head.keepsAlive, isTooLarge: length > options.maxBodyBytes)
        connection.since = now
        connections[fd] = connection
    }

    /// Reads what has come of the body; once whole, hands the request to its handler.
    private func readBody(_ fd: Int32, _ connection: Connection) -> Bool {
        guard case .body(var request, var remaining, let closes, let isTooLarge) = connection.stage else { return false }
        var connection = connection
        if remaining > 0 {
            var bytes = [UInt8](repeating: 0, count: min(remaining, 65_536))
            let count = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return false }
            guard count > 0 else {
                drop(fd)
                return false
            }
            remaining -= count
            if !isTooLarge { request.body += bytes[..<count] }
            connection.stage = .body(request, remaining: remaining, closes: closes, isTooLarge: isTooLarge)
            connections[fd] = connection
            if remaining > 0 { return true }
        }
        if isTooLarge {
            answer(fd, .payloadTooLarge(options.maxBodyBytes))
            return false
        }
        connection.stage = .handling(closes: closes, isHead: request.method == "HEAD")
        connections[fd] = connection
        serve(Ticket(socket: fd, serial: connection.serial), request)
        return false
    }

    /// Writes what is left of the answer; once all of it is out, closes or waits for the next request.
    private func write(_ fd: Int32, _ connection: Connection) -> Bool {
        guard case .writing(let closes) = connection.stage else { return false }
        var connection = connection
        while connection.sent < connection.output.count {
            let count = connection.output.withUnsafeBytes {
                send(fd, $0.baseAddress! + connection.sent, $0.count - connection.sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                connections[fd] = connection
                return false
            }
            guard count > 0 else {
                drop(fd)
                return false
            }
            connection.sent += count
        }
        if closes {
            drop(fd)
            return false
        }
        connection.output = []
        connection.sent = 0
        connection.stage = .idle
        connection.since = now
        connections[fd] = connection
        return true
    }

    /// Reads and drops what a connection that was answered and is closing still sends.
    private func discard(_ fd: Int32) -> Bool {
        var bytes = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return false }
            if count <= 0 {
                drop(fd)
                return false
            }
        }
    }

    /// Writes `refusal` as a JSON error, ends the sending side, and lingers before closing.
    private func answer(_ fd: Int32, _ refusal: ListenerRefusal) {
        guard var connection = connections[fd] else { return }
        if case .lingering = connection.stage { return }
        refusal.count()
        let bytes = ServerResponse(status: refusal.status, body: refusal.body).encoded(closing: true, omittingBody: false)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        shutdown(fd, Int32(SHUT_WR))
        connection.stage = .lingering(until: now + Self.lingering)
        connections[fd] = connection
        advance(fd)
    }

    private func drop(_ fd: Int32) {
        guard let connection = connections.removeValue(forKey: fd) else { return }
        epoll_ctl(polling, EPOLL_CTL_DEL, fd, nil)
        close(fd)
        if connection.isCounted { admission.closed(connection.address, wasFinished: connection.isFinished) }
    }
}
