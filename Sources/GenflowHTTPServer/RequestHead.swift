public import GenflowCore

/// A request head that `HeadScanner` found complete and well-formed, taken apart: the method, the
/// path and query decoded, the headers by lowercased name, and what the head says about the
/// connection (keep-alive, a WebSocket upgrade, a body).
///
/// Pure: the listener's front door builds one per request.
struct RequestHead {
    var method: String
    /// Percent-decoded, `//` merged and dot segments removed (`/a/../b` is `/b`).
    var path: String
    /// Decoded (`+` is a space); pairs split on `&` or `;`; the last value of a repeated name.
    var query: [String: String]
    /// Names lowercased; a repeated header's values joined with `, `.
    var headers: [String: String]
    var isHTTP10: Bool

    /// `head` is the scanner's complete head, its empty line included.
    init(_ head: ArraySlice<UInt8>) {
        var lines = head.split(separator: 0x0A, omittingEmptySubsequences: true).map { $0.last == 0x0D ? $0.dropLast() : $0 }
        let requestLine = lines.isEmpty ? [] : lines.removeFirst().split(separator: 0x20, omittingEmptySubsequences: false)
        method = requestLine.first.map { String(decoding: $0, as: UTF8.self) } ?? "GET"
        let target = requestLine.count > 1 ? requestLine[1] : ArraySlice("/".utf8)
        isHTTP10 = requestLine.count > 2 && requestLine[2].elementsEqual("HTTP/1.0".utf8)
        let question = target.firstIndex(of: UInt8(ascii: "?"))
        path = Self.normalized(Self.decoded(target[..<(question ?? target.endIndex)], plusIsSpace: false))
        query = [:]
        if let question {
            for pair in target[(question + 1)...].split(whereSeparator: { $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: ";") }) {
                let equals = pair.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
                let value = equals < pair.endIndex ? Self.decoded(pair[(equals + 1)...], plusIsSpace: true) : ""
                query[Self.decoded(pair[..<equals], plusIsSpace: true)] = value
            }
        }
        headers = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces
            headers[name] = headers[name].map { "\($0), \(value)" } ?? value
        }
    }

    /// Whether the connection stays open after the answer: HTTP/1.1 unless `Connection: close`,
    /// HTTP/1.0 only with `Connection: keep-alive`.
    var keepsAlive: Bool {
        let tokens = connectionTokens
        return isHTTP10 ? tokens.contains("keep-alive") : !tokens.contains("close")
    }

    /// Asks to become a WebSocket (`Connection: upgrade`, `Upgrade: websocket`).
    var isWebSocketUpgrade: Bool {
        connectionTokens.contains("upgrade") && headers["upgrade"]?.lowercased().contains("websocket") == true
    }

    var expectsContinue: Bool { headers["expect"]?.lowercased() == "100-continue" }

    /// The body's length: 0 when there is none, nil when the header is not a number.
    var contentLength: Int? {
        guard let value = headers["content-length"] else { return 0 }
        return Int(value).flatMap { $0 >= 0 ? $0 : nil }
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest address
    /// in `X-Forwarded-For` that is not one of the trusted proxies (a client can write any
    /// address it likes at the far end of that list; only what trusted proxies appended counts).
    func clientAddress(peer: UInt32, trusted: [IPv4Range]) -> String {
        var address = IPv4Range.text(peer)
        guard trusted.contains(where: { $0.contains(peer) }), let forwarded = headers["x-forwarded-for"] else { return address }
        for hop in forwarded.split(separator: ",").reversed() {
            let hop = String(hop).trimmingSpaces
            guard let parsed = IPv4Range.address(hop) else { break }
            address = hop
            if !trusted.contains(where: { $0.contains(parsed) }) { break }
        }
        return address
    }

    private var connectionTokens: [String] {
        (headers["connection"] ?? "").lowercased().split(separator: ",").map { String($0).trimmingSpaces }
    }

    /// `%XX` decoded (the scanner made sure each `%` has two hex digits and none is `%00`).
    private static func decoded(_ bytes: ArraySlice<UInt8>, plusIsSpace: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.endIndex, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                out.append(high << 4 | low)
                index += 3
                continue
            }
            out.append(plusIsSpace && byte == UInt8(ascii: "+") ? 0x20 : byte)
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Empty and `.` segments dropped, `..` removes the one before it (never above `/`).
    static func normalized(_ path: String) -> String {
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." {
                _ = segments.popLast()
                continue
            }
            segments.append(segment)
        }
        let joined = "/" + segments.joined(separator: "/")
        return path.hasSuffix("/") && !segments.isEmpty ? joined + "/" : joined
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A response as the bytes sent: status line, headers, then the body (none for HEAD).
extension ServerResponse {
    func encoded(closing: Bool, omittingBody: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\ncontent-type: \(contentType)\r\ncontent-length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += closing ? "connection: close\r\n\r\n" : "\r\n"
        var bytes = Array(head.utf8)
        if !omittingBody { bytes += body }
        return bytes
    }

    static func reason(_ status: Int) -> String {
        [
            100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
            301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
            402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            409: "Conflict", 410: "Gone", 411: "Length Required", 413: "Payload Too Large", 414: "URI Too Long",
            415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout",
        ][status] ?? "Status"
    }
}

private extension String {
    var trimmingSpaces: String {
        var view = Substring(self)
        while view.first == " " || view.first == "\t" { view.removeFirst() }
        while view.last == " " || view.last == "\t" { view.removeLast() }
        return String(view)
    }
}
