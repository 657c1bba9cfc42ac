import Foundation
import GenflowCore
@testable import GenflowHTTPServer
import Synchronization
import Testing

/// Echoes every WebSocket message back.
private final class Echo: WebSocketHandler {
    func opened(_ connection: WebSocketConnection) {}
    func received(_ text: String, on connection: WebSocketConnection) { connection.send(text) }
    func closed(_ connection: WebSocketConnection) {}
}

/// A listener on a port of the kernel's choice answering 200 `{"path":…,"bytes":…,"client":…,"q":…}`
/// to every request (`q` the query's `q`).
private func listener(_ configure: (inout HTTPServer.Options) -> Void = { _ in }) throws -> HTTPServer {
    var options = HTTPServer.Options()
    configure(&options)
    let server = HTTPServer(
        host: "127.0.0.1", port: 0, options: options,
        handler: { request in
            let fields = #""path":"\#(request.path)","bytes":\#(request.body.count),"client":"\#(request.clientAddress)","q":"\#(request.query["q"] ?? "")""#
            return ServerResponse(status: 200, body: Array("{\(fields)}".utf8))
        },
        upgrader: { _ in .success(Echo()) }
    )
    try server.start()
    return server
}

@Suite("The listener against slow and hostile clients, over real sockets", .serialized, .timeLimit(.minutes(3)))
struct ListenerTests {
    @Test("drain answers new requests 503, closes WebSockets with 1001, and returns only once the request in flight has answered")
    func drainWaitsForRequests() async throws {
        let started = Mutex(false), finished = Mutex(false)
        let server = HTTPServer(
            host: "127.0.0.1", port: 0,
            handler: { request in
                if request.path == "/slow" {
                    started.withLock { $0 = true }
                    try? await Task.sleep(for: .seconds(1))
                    finished.withLock { $0 = true }
                }
                return ServerResponse(status: 200, body: Array(#"{"path":"\#(request.path)"}"#.utf8))
            },
            upgrader: { _ in .success(Echo()) }
        )
        try server.start()
        defer { server.stop() }
        let slow = try RawSocket(port: server.port)
        let socket = try RawSocket(port: server.port)
        #expect(await socket.upgrade() == 101)
        slow.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        let deadline = ContinuousClock.now + .seconds(30)
        while !started.withLock({ $0 }) {  // the slow request is in its handler
            try #require(ContinuousClock.now < deadline, "the slow request did not reach its handler")
            try await Task.sleep(for: .milliseconds(5))
        }
        let drained = Task { await server.drain(timeout: .seconds(30)) }
        #expect(await socket.closeCode() == 1001, "the WebSocket is closed as going away")
        socket.sendFrame(opcode: 0x8, [0x03, 0xE9])
        let late = try RawSocket(port: server.port)
        late.send("GET /late HTTP/1.1\r\nHost: t\r\n\r\n")
        let refused = await late.response()
        #expect(refused.status == 503 && refused.body.contains("shutting_down"), "\(refused)")
        let answered = await slow.response()
        #expect(answered.status == 200 && answered.body.contains("/slow"), "the request in flight still gets its answer")
        await drained.value
        #expect(finished.withLock { $0 }, "drain returned only after the request's handler finished")
    }

    @Test("malformed or oversized requests get 400, 414 or 431 with a JSON error, never a hang-up; good ones still pass, kept alive")
    func clearAnswers() async throws {
        let server = try listener()
        defer { server.stop() }
        let cases: [(String, [UInt8], Int)] = [
            ("%00 in the query", Array("GET /v1/jobs?status=%00 HTTP/1.1\r\nHost: t\r\n\r\n".utf8), 400),
            ("a NUL byte in a header", Array("GET / HTTP/1.1\r\nHost: t\0x\r\n\r\n".utf8), 400),
            ("not a request line", Array("HELLO\r\n\r\n".utf8), 400),
            ("a bad percent escape", Array("GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n".utf8), 400),
            ("HTTP/2 on the request line", Array("GET / HTTP/2.0\r\nHost: t\r\n\r\n".utf8), 400),
            ("a target of 5,000 bytes", Array("GET /\(String(repeating: "a", count: 5_000)) HTTP/1.1\r\nHost: t\r\n\r\n".utf8), 414),
            ("a header of 9,000 bytes", Array("GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "b", count: 9_000))\r\n\r\n".utf8), 431),
            ("headers that never end", Array("GET / HTTP/1.1\r\n".utf8) + Array(repeating: Array("X-A: b\r\n".utf8), count: 2_000).flatMap { $0 }, 431),
        ]
        for (name, request, status) in cases {
            let socket = try RawSocket(port: server.port)
            socket.send(request)
            let reply = await socket.response()
            #expect(reply.status == status, "\(name)")
            #expect(reply.body.contains(#""error":{"code":"#), "\(name): \(reply.body)")
            #expect(await socket.isClosedByServer(within: 10), "\(name)")
        }
        let socket = try RawSocket(port: server.port)
        for path in ["/one", "/two?x=%41"] {
            socket.send("POST \(path) HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            let reply = await socket.response()
            #expect(reply.status == 200)
            #expect(reply.body.contains(#""bytes":5"#))
        }
    }

    @Test("every request of a kept-alive connection is read by the listener: pipelined ones in order, a later bad head answered, Expect: 100-continue, HEAD, then an upgrade")
    func keptAlive() async throws {
        let server = try listener { $0.maxBodyBytes = 1_000 }
        defer { server.stop() }
        let socket = try RawSocket(port: server.port)
        socket.send("GET /a/./b/../c?q=x+y%21 HTTP/1.1\r\nHost: t\r\n\r\nPOST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: t\r\n\r\n")
        let replies = [await socket.response(), await socket.response(), await socket.response()]
        #expect(replies.map(\.status) == [200, 200, 200])
        #expect(replies[0].body.contains(#""path":"/a/c""#) && replies[0].body.contains(#""q":"x y!""#), "\(replies[0].body)")
        #expect(replies[1].body.contains(#""path":"/two","bytes":3"#), "\(replies[1].body)")
        #expect(replies[2].body.contains(#""path":"/three""#), "\(replies[2].body)")

        socket.send("POST /continue HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        #expect(await socket.response().status == 100)
        socket.send("body")
        #expect(await socket.response().body.contains(#""bytes":4"#))
        socket.send("HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n")
        var head: [UInt8] = []
        while !head.ends(with: Array("\r\n\r\n".utf8)), let byte = await socket.read(1).first { head.append(byte) }
        #expect(String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 200 OK\r\n"))
        // No body followed the HEAD's head: the next bytes are the next answer's status line.
        socket.send("GET /after-head HTTP/1.1\r\nHost: t\r\n\r\n")
        let after = await socket.response()
        #expect(after.status == 200 && after.body.contains(#""path":"/after-head""#), "\(after.body)")
        #expect(await socket.upgrade() == 101)
        socket.sendFrame(opcode: 0x1, Array("after requests".utf8))
        #expect(await socket.readFrame().map { String(decoding: $0.payload, as: UTF8.self) } == "after requests")

        for (later, status) in [
            ("GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "b", count: 9_000))\r\n\r\n", 431), ("GET /?q=%00 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n\(String(repeating: "x", count: 2_000))", 413),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        ] {
            let socket = try RawSocket(port: server.port)
            socket.send("GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(await socket.response().status == 200)
            socket.send(later)
            let reply = await socket.response()
            #expect(reply.status == status)
            #expect(reply.body.contains(#""error":{"code":"#), "\(reply.body)")
            #expect(await socket.isClosedByServer(within: 10))
        }
    }

    @Test("a kept-alive connection with no next request is closed after keepAliveTimeout; Connection: close closes after the answer")
    func keepAliveEnds() async throws {
        let server = try listener { $0.keepAliveTimeout = 1 }
        defer { server.stop() }
        let idle = try RawSocket(port: server.port)
        idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await idle.response().status == 200)
        #expect(await idle.isClosedByServer(within: 10))
        let closing = try RawSocket(port: server.port)
        closing.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(await closing.response().status == 200)
        #expect(await closing.isClosedByServer(within: 10))
    }

    @Test("X-Forwarded-For is believed only from a trusted proxy, and only as far as the proxies it trusts")
    func forwardedFor() async throws {
        let server = try listener { $0.trustedProxies = [IPv4Range("127.0.0.2")!] }
        defer { server.stop() }
        let forwarded = "X-Forwarded-For: 6.6.6.6, 192.0.2.7, 127.0.0.2\r\n"
        let proxy = try RawSocket(port: server.port, from: "127.0.0.2")
        proxy.send("GET / HTTP/1.1\r\nHost: t\r\n\(forwarded)\r\n")
        #expect(await proxy.response().body.contains(#""client":"192.0.2.7""#))
        let direct = try RawSocket(port: server.port)
        direct.send("GET / HTTP/1.1\r\nHost: t\r\n\(forwarded)\r\n")
        #expect(await direct.response().body.contains(#""client":"127.0.0.1""#))
    }

    @Test("hundreds of connections sending their headers slowly from one address: another client's request and WebSocket still get through, before the slow ones' deadline")
    func slowClients() async throws {
        // A header pool of 4 that 300 slow clients would fill many times over, if they held it.
        let server = try listener {
            $0.concurrentUpgrades = 4
            $0.headerTimeout = 60
            $0.unfinishedPerAddress = 250
        }
        defer { server.stop() }
        var slow: [RawSocket] = []
        for _ in 0..<300 {
            let socket = try RawSocket(port: server.port)
            socket.send("GET /slow HTTP/1.1\r\nHost: t\r\nX-Part: ")
            slow.append(socket)
        }
        // Past the cap of unfinished heads per address: a 429 at once, not a wait.
        var refused: [Int] = []
        for socket in slow.suffix(50) { refused.append(await socket.response().status) }
        #expect(refused.allSatisfy { $0 == 429 }, "\(refused)")

        let other = try RawSocket(port: server.port, from: "127.0.0.2")
        other.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await other.response().status == 200)
        let webSocket = try RawSocket(port: server.port, from: "127.0.0.2")
        #expect(await webSocket.upgrade() == 101)
        webSocket.sendFrame(opcode: 0x1, Array("hi".utf8))
        #expect(await webSocket.readFrame().map { String(decoding: $0.payload, as: UTF8.self) } == "hi")
        // The slow ones are all still waiting: the answers above did not come from their deadline.
        #expect(!(await slow[0].isClosedByServer(within: 1)))
        #expect(!(await slow[199].isClosedByServer(within: 1)))
    }

    @Test("a head or a body that does not arrive in time is answered 408")
    func deadlines() async throws {
        let server = try listener {
            $0.headerTimeout = 1
            $0.bodyTimeout = 1
        }
        defer { server.stop() }
        let head = try RawSocket(port: server.port)
        head.send("GET / HTTP/1.1\r\nHost: t\r\n")
        #expect(await head.response().status == 408)
        let body = try RawSocket(port: server.port)
        body.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly part")
        #expect(await body.response().status == 408)
    }

    @Test("too many connections from one address are refused with 429; other addresses are not affected")
    func connectionsPerAddress() async throws {
        let server = try listener { $0.connectionsPerAddress = 3 }
        defer { server.stop() }
        let held = try (0..<3).map { _ in try RawSocket(port: server.port) }
        for socket in held {
            socket.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(await socket.response().status == 200)
        }
        let fourth = try RawSocket(port: server.port)
        #expect(await fourth.response().status == 429)
        let elsewhere = try RawSocket(port: server.port, from: "127.0.0.3")
        elsewhere.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await elsewhere.response().status == 200)
    }

    @Test("WebSocket: an oversized message is closed with 1009, invalid UTF-8 with 1007, a binary frame with 1003")
    func webSocketCloseCodes() async throws {
        let server = try listener()
        defer { server.stop() }
        let cases: [(UInt8, [UInt8], UInt16)] = [
            (0x1, Array(repeating: UInt8(ascii: "a"), count: 70_000), 1009),
            (0x1, [0x68, 0xC3, 0x28, 0x69], 1007),
            (0x2, [1, 2, 3], 1003),
        ]
        for (opcode, payload, code) in cases {
            let socket = try RawSocket(port: server.port)
            #expect(await socket.upgrade() == 101)
            socket.sendFrame(opcode: opcode, payload)
            #expect(await socket.closeCode() == code)
        }
    }

    @Test("a silent WebSocket is pinged; one that answers stays open past the hang-up time, one that does not is dropped")
    func pings() async throws {
        let server = try listener {
            $0.pingAfter = 1
            $0.hangUpAfter = 3
        }
        defer { server.stop() }
        let answering = try RawSocket(port: server.port)
        let silent = try RawSocket(port: server.port)
        #expect(await answering.upgrade() == 101)
        #expect(await silent.upgrade() == 101)
        // Five pings answered cover more than the hang-up time.
        for _ in 0..<5 {
            guard let frame = await answering.readFrame() else { Issue.record("the answering socket was closed"); return }
            #expect(frame.opcode == 0x9)
            answering.sendFrame(opcode: 0xA, frame.payload)
        }
        #expect(await silent.readFrame()?.opcode == 0x9)
        #expect(await silent.isClosedByServer(within: 15))
        answering.sendFrame(opcode: 0x1, Array("still here".utf8))
        var echoed: String?
        while let frame = await answering.readFrame() {
            if frame.opcode == 0x9 { answering.sendFrame(opcode: 0xA, frame.payload); continue }
            echoed = String(decoding: frame.payload, as: UTF8.self)
            break
        }
        #expect(echoed == "still here")
    }
}

@Suite("Pure parts of the listener", .timeLimit(.minutes(3)))
struct ListenerLogicTests {
    @Test("the head scanner finds the end of a head given byte by byte, and refuses early")
    func headScanner() {
        var scanner = HeadScanner(limits: .init())
        let head = Array("GET /a?b=%41 HTTP/1.1\r\nHost: x\r\n\r\nBODY".utf8)
        var seen: [UInt8] = []
        var result = HeadScanner.Scan.incomplete
        for byte in head {
            seen.append(byte)
            result = scanner.scan(seen)
            if result != .incomplete { break }
        }
        #expect(result == .complete(length: head.count - 4))
        var nul = HeadScanner(limits: .init())
        #expect(nul.scan(Array("GET /\0".utf8)) == .refused(.badRequest("a NUL byte in the request head")))
    }

    @Test("a request head taken apart: path normalised, query decoded, headers by lowercased name, keep-alive, upgrades")
    func requestHead() {
        let head = RequestHead(ArraySlice("GET //x/%2E%2E/y/./z?a=1&b=%C3%A9+f;c HTTP/1.0\r\nHost: t\r\nConnection: Keep-Alive, Upgrade\r\nUpgrade: WebSocket\r\nX-A: 1\r\nx-a: 2\r\n\r\n".utf8))
        #expect(head.path == "/y/z")
        #expect(head.query == ["a": "1", "b": "é f", "c": ""])
        #expect(head.headers["x-a"] == "1, 2")
        #expect(head.keepsAlive && head.isWebSocketUpgrade && head.isHTTP10)
        #expect(RequestHead(ArraySlice("GET / HTTP/1.1\r\nConnection: close\r\n\r\n".utf8)).keepsAlive == false)
        #expect(RequestHead(ArraySlice("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n".utf8)).contentLength == nil)
        let proxied = RequestHead(ArraySlice("GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1, 10.0.0.9\r\n\r\n".utf8))
        #expect(proxied.clientAddress(peer: IPv4Range.address("10.0.0.1")!, trusted: [IPv4Range("10.0.0.0/8")!]) == "1.1.1.1")
        #expect(proxied.clientAddress(peer: IPv4Range.address("192.0.2.1")!, trusted: [IPv4Range("10.0.0.0/8")!]) == "192.0.2.1")
    }

    @Test("the silence wheel pings after pingAfter, drops after hangUpAfter, and waits otherwise")
    func silenceWheel() {
        typealias Wheel = SilenceWheel<Int>
        #expect(Wheel.verdict(heard: 0, now: 10, pingAfter: 30, hangUpAfter: 70) == .wait(until: 30))
        #expect(Wheel.verdict(heard: 0, now: 30, pingAfter: 30, hangUpAfter: 70) == .ping(thenLookAt: 70))
        #expect(Wheel.verdict(heard: 0, now: 70, pingAfter: 30, hangUpAfter: 70) == .hangUp)
        var wheel = Wheel(horizon: 5)
        wheel.schedule(1, at: 3)
        wheel.schedule(2, at: 99)
        var seen: [Int: Int] = [:]
        for _ in 0..<6 {
            for key in wheel.advance() { seen[key] = wheel.now }
        }
        #expect(seen == [1: 3, 2: 5])
    }

    @Test("admission counts connections per address, lets trusted proxies through, and reads CIDR blocks")
    func admission() {
        var admission = Admission(limits: .init(connectionsPerAddress: 2, unfinishedPerAddress: 1, trustedProxies: [IPv4Range("10.0.0.0/8")!]))
        let client = IPv4Range.address("192.0.2.1")!
        #expect(admission.admit(client) == nil)
        #expect(admission.admit(client) == .tooManyConnections)
        admission.finished(client)
        #expect(admission.admit(client) == nil)
        admission.finished(client)
        #expect(admission.admit(client) == .tooManyConnections)
        admission.closed(client, wasFinished: true)
        #expect(admission.admit(client) == nil)
        for _ in 0..<10 { #expect(admission.admit(IPv4Range.address("10.1.2.3")!) == nil) }
        // WebSockets through a trusted proxy count against the client it forwarded.
        #expect(admission.isTrusted(IPv4Range.address("10.1.2.3")!) && !admission.isTrusted(client))
        #expect(admission.admitForwarded("198.51.100.7") == nil)
        #expect(admission.admitForwarded("198.51.100.7") == nil)
        #expect(admission.admitForwarded("198.51.100.7") == .tooManyConnections)
        #expect(admission.admitForwarded("198.51.100.8") == nil)
        admission.closedForwarded("198.51.100.7")
        #expect(admission.admitForwarded("198.51.100.7") == nil)
        #expect(IPv4Range("300.1.1.1") == nil)
        #expect(IPv4Range("10.0.0.0/33") == nil)
        #expect(IPv4Range("192.168.1.7/24")?.description == "192.168.1.0/24")
    }
}
