import Foundation

/// A TCP client socket driven byte by byte, for the requests no well-behaved client library sends:
/// slow heads, NUL bytes, oversized lines, hand-made WebSocket frames. Blocking, with a receive
/// timeout that guards against a hang (it is not a timing check).
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
        setTimeout(seconds: 20)
    }

    deinit { close(fd) }

    func setTimeout(seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Up to `count` more bytes: fewer only at the end of the stream or on the guard timeout.
    func read(_ count: Int) -> [UInt8] {
        while pending.count < count {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            pending += chunk[0..<n]
        }
        let taken = Array(pending.prefix(count))
        pending.removeFirst(taken.count)
        return taken
    }

    /// Everything until the server closes (or the guard timeout), as text.
    func readToEnd() -> String {
        String(decoding: read(1 << 24), as: UTF8.self)
    }

    /// One HTTP response whose body has a Content-Length: (status, body).
    func response() -> (status: Int, body: String) {
        var head: [UInt8] = []
        while !head.ends(with: Array("\r\n\r\n".utf8)) {
            let byte = read(1)
            guard let first = byte.first else { return (0, "") }
            head.append(first)
        }
        let text = String(decoding: head, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let length = text.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        return (status, String(decoding: read(length), as: UTF8.self))
    }

    /// Whether the server has closed the connection, waiting at most `seconds` for it.
    func isClosedByServer(within seconds: Int) -> Bool {
        setTimeout(seconds: seconds)
        defer { setTimeout(seconds: 20) }
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, 0)
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return true }
            if n < 0 { return false }
        }
    }

    // MARK: WebSocket

    /// The opening handshake; the server's status.
    func upgrade(path: String = "/ws") -> Int {
        send("GET \(path) HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        var head: [UInt8] = []
        while !head.ends(with: Array("\r\n\r\n".utf8)) {
            guard let byte = read(1).first else { return 0 }
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
    func readFrame() -> (opcode: UInt8, payload: [UInt8])? {
        let head = read(2)
        guard head.count == 2 else { return nil }
        var length = Int(head[1] & 0x7F)
        if length == 126 {
            length = read(2).reduce(0) { $0 << 8 | Int($1) }
        } else if length == 127 {
            length = read(8).reduce(0) { $0 << 8 | Int($1) }
        }
        return (head[0] & 0x0F, read(length))
    }

    /// Frames until a close frame: its code, or nil if the stream ended without one.
    func closeCode() -> UInt16? {
        while let frame = readFrame() {
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
