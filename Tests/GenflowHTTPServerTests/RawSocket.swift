import Foundation

/// A TCP client socket driven byte by byte, for the requests no well-behaved client library sends:
/// slow heads, NUL bytes, oversized lines, hand-made WebSocket frames. Reads poll a non-blocking
/// socket and sleep between tries, so a test waiting for the server never holds one of Swift's
/// cooperative threads (two here), which the listener's handler tasks need. A read gives up after
/// a guard time: a guard against a hang, not a timing check.
final class RawSocket {
    let fd: Int32
    private var pending: [UInt8] = []

    /// Connects to 127.0.0.1:`port`, from the local address `from` (any 127.x.y.z works on Linux).
    init(port: Int, from: String = "127.0.0.1") throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, from, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, connected == 0 else {
            close(fd)
            throw RawSocketError("cannot connect from \(from) to port \(port): \(String(cString: strerror(errno)))")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(fd) }

    /// One `recv`: bytes, [] at the end of the stream, nil when nothing has arrived yet.
    private func receive(_ size: Int = 65_536) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: size)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? nil : [] }
        return Array(chunk[0..<n])
    }

    /// All of `bytes` (a full send buffer waits a millisecond at a time), unless the peer is gone.
    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                usleep(1_000)
                continue
            }
            guard n > 0 else { return }
            sent += n
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Up to `count` more bytes: fewer only at the end of the stream or after `guardTime`.
    func read(_ count: Int, guardTime: Duration = .seconds(20)) async -> [UInt8] {
        let deadline = ContinuousClock.now + guardTime
        while pending.count < count, ContinuousClock.now < deadline {
            guard let chunk = receive() else {
                try? await Task.sleep(for: .milliseconds(2))
                continue
            }
            if chunk.isEmpty { break }
            pending += chunk
        }
        let taken = Array(pending.prefix(count))
        pending.removeFirst(taken.count)
        return taken
    }

    /// One HTTP response whose body has a Content-Length: (status, body).
    func response() async -> (status: Int, body: String) {
        var head: [UInt8] = []
        while !head.ends(with: Array("\r\n\r\n".utf8)) {
            let byte = await read(1)
            guard let first = byte.first else { return (0, "") }
            head.append(first)
        }
        let text = String(decoding: head, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let length = text.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        return (status, String(decoding: await read(length), as: UTF8.self))
    }

    /// Whether the server has closed the connection, waiting at most `seconds` for it (bytes that
    /// arrive meanwhile are dropped).
    func isClosedByServer(within seconds: Int) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let chunk = receive() {
                if chunk.isEmpty { return true }
            } else {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        return false
    }

    // MARK: WebSocket

    /// The opening handshake; the server's status.
    func upgrade(path: String = "/ws") async -> Int {
        send("GET \(path) HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        var head: [UInt8] = []
        while !head.ends(with: Array("\r\n\r\n".utf8)) {
            guard let byte = await read(1).first else { return 0 }
            head.append(byte)
        }
        return Int(String(decoding: head, as: UTF8.self).split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// Sends one masked frame (a client's frames must be masked).
    func sendFrame(opcode: UInt8, _ payload: [UInt8]) {
        var frame: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count < 65_536 {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        send(frame)
    }

    /// The next frame from the server: (opcode, payload), or nil at the end of the stream.
    func readFrame() async -> (opcode: UInt8, payload: [UInt8])? {
        let head = await read(2)
        guard head.count == 2 else { return nil }
        var length = Int(head[1] & 0x7F)
        if length == 126 {
            length = await read(2).reduce(0) { $0 << 8 | Int($1) }
        } else if length == 127 {
            length = await read(8).reduce(0) { $0 << 8 | Int($1) }
        }
        return (head[0] & 0x0F, await read(length))
    }

    /// Frames until a close frame: its code, or nil if the stream ended without one.
    func closeCode() async -> UInt16? {
        while let frame = await readFrame() {
            if frame.opcode == 0x8 { return frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : nil }
        }
        return nil
    }
}

struct RawSocketError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
