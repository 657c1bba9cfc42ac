internal import Metrics

/// Reads the head of an HTTP/1.x request (request line and header lines, up to the empty line) as
/// its bytes arrive, and refuses one that can never be served with the status a client can act on:
/// 400 for a malformed line, a control character or `%00`, 414 for a request target that is too
/// long, 431 for a head that is too large. libwebsockets would drop such a connection without a
/// word, so the listener's front door reads every first request with this before lws sees it.
///
/// Resumable and pure: each call looks only at the bytes not looked at before, so a client that
/// sends its head a byte at a time costs O(head) in all.
struct HeadScanner {
    struct Limits: Sendable {
        /// The request line and header lines together, their line ends included.
        var maxHeadBytes = 8_192
        /// The request target (path and query), as sent.
        var maxTargetBytes = 4_096
    }

    enum Scan: Equatable {
        case incomplete
        /// The head is the first `length` bytes (the empty line included); what follows is body.
        case complete(length: Int)
        case refused(ListenerRefusal)
    }

    let limits: Limits
    /// Bytes up to here are complete lines, checked.
    private var checked = 0
    /// Bytes up to here were searched for a line end and for forbidden bytes.
    private var searched = 0
    private var hasRequestLine = false

    init(limits: Limits) {
        self.limits = limits
    }

    mutating func scan(_ bytes: [UInt8]) -> Scan {
        while true {
            let from = max(checked, searched)
            for index in from..<bytes.count where Self.isForbidden(bytes[index]) {
                return .refused(.badRequest(bytes[index] == 0 ? "a NUL byte in the request head" : "a control character in the request head"))
            }
            guard let newline = bytes[from...].firstIndex(of: 0x0A) else {
                searched = bytes.count
                if !hasRequestLine && bytes.count - checked > limits.maxTargetBytes + Self.requestLineOverhead {
                    return .refused(.uriTooLong(limits.maxTargetBytes))
                }
                if bytes.count > limits.maxHeadBytes { return .refused(.headTooLarge(limits.maxHeadBytes)) }
                return .incomplete
            }
            searched = newline + 1
            guard newline > checked, bytes[newline - 1] == 0x0D else {
                return .refused(.badRequest("a line of the request head ends without CR LF"))
            }
            let line = bytes[checked..<(newline - 1)]
            checked = newline + 1
            if !hasRequestLine {
                if let refusal = requestLine(line) { return .refused(refusal) }
                hasRequestLine = true
            } else if line.isEmpty {
                return checked > limits.maxHeadBytes ? .refused(.headTooLarge(limits.maxHeadBytes)) : .complete(length: checked)
            } else if let refusal = Self.headerLine(line) {
                return .refused(refusal)
            }
            if checked > limits.maxHeadBytes { return .refused(.headTooLarge(limits.maxHeadBytes)) }
        }
    }

    /// A method, the longest version and two spaces around the target.
    private static let requestLineOverhead = 32

    /// `METHOD SP target SP HTTP/1.x`, with an origin-form target (`/…`, or `*` for OPTIONS).
    private func requestLine(_ line: ArraySlice<UInt8>) -> ListenerRefusal? {
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].count <= 20, parts[0].allSatisfy(Self.isTokenByte) else {
            return .badRequest("the request line must be METHOD /target HTTP/1.1")
        }
        let (target, version) = (parts[1], parts[2])
        guard version.elementsEqual("HTTP/1.1".utf8) || version.elementsEqual("HTTP/1.0".utf8) else {
            return .badRequest("only HTTP/1.0 and HTTP/1.1 are served")
        }
        if target.count > limits.maxTargetBytes { return .uriTooLong(limits.maxTargetBytes) }
        guard target.first == UInt8(ascii: "/") || target.elementsEqual("*".utf8) else {
            return .badRequest("the request target must be a path starting with /")
        }
        var index = target.startIndex
        while index < target.endIndex {
            let byte = target[index]
            guard byte > 0x20, byte < 0x7F else { return .badRequest("the request target must be ASCII without spaces; percent-encode the rest") }
            if byte == UInt8(ascii: "%") {
                guard index + 2 < target.endIndex, let high = RequestHead.hexValue(target[index + 1]), let low = RequestHead.hexValue(target[index + 2]) else {
                    return .badRequest("a % in the request target must be followed by two hex digits")
                }
                if high == 0 && low == 0 { return .badRequest("%00 (a NUL byte) in the request target") }
                index += 2
            }
            index += 1
        }
        return nil
    }

    /// `name: value`, the name a token, the value without control characters (HTAB allowed).
    private static func headerLine(_ line: ArraySlice<UInt8>) -> ListenerRefusal? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
              line[line.startIndex..<colon].allSatisfy(isTokenByte) else {
            return .badRequest("a header line must be name: value (no folded lines, no space before the colon)")
        }
        return nil
    }

    /// Control characters other than HTAB and CR (CR is checked where lines end), and DEL.
    private static func isForbidden(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != 0x09 && byte != 0x0D && byte != 0x0A) || byte == 0x7F
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

/// Why the listener answers a request itself and closes the connection.
struct ListenerRefusal: Equatable, Sendable {
    var status: Int
    var code: String
    var message: String

    /// The JSON error body every listener answer carries.
    var body: [UInt8] { Array(#"{"error":{"code":"\#(code)","message":"\#(message)"}}"#.utf8) }

    /// The status line's reason phrase.
    var reason: String { ServerResponse.reason(status) }

    /// Counts it in `/metrics` (swift-metrics: Prometheus under `genflow serve`).
    func count() {
        Counter(label: "genflow_listener_refused_total", dimensions: [("status", String(status)), ("code", code)]).increment()
    }

    static func badRequest(_ message: String) -> ListenerRefusal { ListenerRefusal(status: 400, code: "bad_request", message: message) }
    static func uriTooLong(_ limit: Int) -> ListenerRefusal {
        ListenerRefusal(status: 414, code: "uri_too_long", message: "the request target is longer than \(limit) bytes")
    }
    static func headTooLarge(_ limit: Int) -> ListenerRefusal {
        ListenerRefusal(status: 431, code: "header_fields_too_large", message: "the request line and headers are larger than \(limit) bytes")
    }
    static let timeout = ListenerRefusal(status: 408, code: "request_timeout", message: "the request head was not received in time")
    static func bodyTimeout(_ seconds: Int) -> ListenerRefusal {
        ListenerRefusal(status: 408, code: "request_timeout", message: "the request body was not received within \(seconds) s")
    }
    static let lengthRequired = ListenerRefusal(status: 411, code: "length_required", message: "send the body with a Content-Length, not chunked")
    static func payloadTooLarge(_ limit: Int) -> ListenerRefusal {
        ListenerRefusal(status: 413, code: "payload_too_large", message: "the request body is larger than \(limit) bytes")
    }
    static let tooManyConnections = ListenerRefusal(
        status: 429, code: "too_many_connections", message: "too many connections from this address; close some and retry"
    )
}
