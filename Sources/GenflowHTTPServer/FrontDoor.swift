internal import CGenflowShims
internal import GenflowCore
internal import Foundation

/// The listener's front door: it owns the listening socket, accepts each connection, counts it
/// against its address (`Admission`), and peeks at its first request head (`HeadScanner`) under a
/// deadline before handing the socket, nothing read from it, to libwebsockets. A client
/// that sends its headers slowly holds a descriptor and a scanner's state here, never one of lws's
/// header buffers; a head that can never be served gets its 400, 408, 414, 429 or 431 from here.
///
/// Runs on the listener's service thread only (libev watchers on the listener's loop).
final class FrontDoor {
    struct Options: Sendable {
        var head = HeadScanner.Limits()
        var admission = Admission.Limits()
        /// Seconds from accept to a complete request head.
        var headerTimeout = 10
    }

    /// A connection still sending its first request head, or being closed after an answer.
    private struct Visitor {
        var address: UInt32
        var isCounted: Bool
        var scanner: HeadScanner
        var arrived: Int
        /// Set once answered: read and dropped until the client closes, or until then.
        var closeBy: Int?
    }

    /// Gives an accepted socket whose first request head has arrived whole to lws.
    typealias Hand = (_ socket: Int32, _ address: UInt32) -> Void

    private let loop: UnsafeMutableRawPointer
    private let options: Options
    private let hand: Hand
    private let listening: Int32
    private var accepting: UnsafeMutableRawPointer?
    /// The visitors' sockets, edge-triggered: a head is peeked at, not read (lws 4.1 loops on a
    /// request handed over with bytes already read), so only new bytes may wake us.
    private let visiting: Int32
    private var visitingWatcher: UnsafeMutableRawPointer?
    private var admission: Admission
    private var visitors: [Int32: Visitor] = [:]
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

    init(loop: UnsafeMutableRawPointer, listening: Int32, options: Options, hand: @escaping Hand) {
        self.loop = loop
        self.listening = listening
        self.options = options
        self.hand = hand
        admission = Admission(limits: options.admission)
        visiting = epoll_create1(Int32(EPOLL_CLOEXEC))
    }

    private var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    func start() {
        accepting = gf_ev_readable_start(loop, listening, { door, _ in
            guard let door else { return }
            Unmanaged<FrontDoor>.fromOpaque(door).takeUnretainedValue().accept()
        }, context)
        if visitingWatcher == nil {
            visitingWatcher = gf_ev_readable_start(loop, visiting, { door, _ in
                guard let door else { return }
                Unmanaged<FrontDoor>.fromOpaque(door).takeUnretainedValue().visit()
            }, context)
        }
    }

    /// Closes the listening socket and every connection not yet handed to lws.
    func stop() {
        if let accepting { gf_ev_readable_stop(loop, accepting) }
        accepting = nil
        close(listening)
        for fd in Array(visitors.keys) { drop(fd) }
        if let visitingWatcher { gf_ev_readable_stop(loop, visitingWatcher) }
        visitingWatcher = nil
        close(visiting)
    }

    /// A connection handed to lws is gone.
    func closed(_ address: UInt32) {
        admission.closed(address, wasFinished: true)
    }

    /// Once a second: answers 408 to heads past their deadline, closes answered connections.
    func tick(now: Int) {
        self.now = now
        if accepting == nil, listening >= 0 { start() }
        for (fd, visitor) in visitors {
            if let closeBy = visitor.closeBy {
                if closeBy <= now { drop(fd) }
            } else if now - visitor.arrived >= options.headerTimeout {
                answer(fd, .timeout)
            }
        }
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
            visitors[fd] = Visitor(address: address, isCounted: refusal == nil, scanner: HeadScanner(limits: options.head), arrived: now)
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
            event.data.fd = fd
            epoll_ctl(visiting, EPOLL_CTL_ADD, fd, &event)
            if let refusal { answer(fd, refusal) }
        }
    }

    /// The visitors with new bytes (or a hang-up).
    private func visit() {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while true {
            let count = Int(epoll_wait(visiting, &events, Int32(events.count), 0))
            guard count > 0 else { return }
            for event in events[0..<count] { readable(event.data.fd) }
            if count < events.count { return }
        }
    }

    /// Peeks at the head so far (everything from the first byte: nothing is read until lws reads
    /// it); an answered connection's bytes are read and dropped.
    private func readable(_ fd: Int32) {
        guard var visitor = visitors[fd] else { return }
        var bytes = [UInt8](repeating: 0, count: visitor.closeBy == nil ? options.head.maxHeadBytes + 1 : 16_384)
        while visitor.closeBy != nil {
            let count = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return }
            if count <= 0 { return drop(fd) }
        }
        let count = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK)) }
        if count < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
        guard count > 0 else { return drop(fd) }
        bytes.removeLast(bytes.count - count)
        let scan = visitor.scanner.scan(bytes)
        visitors[fd] = visitor
        switch scan {
        case .incomplete:
            return
        case .refused(let refusal):
            answer(fd, refusal)
        case .complete:
            epoll_ctl(visiting, EPOLL_CTL_DEL, fd, nil)
            visitors[fd] = nil
            admission.finished(visitor.address)
            hand(fd, visitor.address)
        }
    }

    /// Writes `refusal` as a JSON error, ends the sending side, and lingers before closing.
    private func answer(_ fd: Int32, _ refusal: ListenerRefusal) {
        guard var visitor = visitors[fd], visitor.closeBy == nil else { return }
        refusal.count()
        let text = "HTTP/1.1 \(refusal.status) \(refusal.reason)\r\nContent-Type: application/json\r\nContent-Length: \(refusal.body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(text.utf8) + refusal.body
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        shutdown(fd, Int32(SHUT_WR))
        visitor.closeBy = now + Self.lingering
        visitors[fd] = visitor
        readable(fd)
    }

    private func drop(_ fd: Int32) {
        guard let visitor = visitors.removeValue(forKey: fd) else { return }
        epoll_ctl(visiting, EPOLL_CTL_DEL, fd, nil)
        close(fd)
        if visitor.isCounted { admission.closed(visitor.address, wasFinished: false) }
    }
}
