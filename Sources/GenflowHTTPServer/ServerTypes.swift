/// One HTTP request, read whole (headers, query and body) before its handler runs.
public struct ServerRequest: Sendable {
    public var method: String
    /// The path without the query, percent-decoded, dot segments removed.
    public var path: String
    /// Query parameters (the last value of a repeated name).
    public var query: [String: String]
    /// Header names lowercased.
    public var headers: [String: String]
    public var body: [UInt8]
    /// The client's IPv4 address: the peer's, or the one a trusted proxy forwarded (`X-Forwarded-For`).
    public var clientAddress: String

    public init(
        method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:], body: [UInt8] = [],
        clientAddress: String = ""
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.clientAddress = clientAddress
    }
}

/// What a handler answers.
public struct ServerResponse: Sendable {
    public var status: Int
    public var contentType: String
    /// Extra headers; names as they should be sent.
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, contentType: String = "application/json", headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }
}

/// The request that asks to become a WebSocket.
public struct UpgradeRequest: Sendable {
    public var path: String
    public var query: [String: String]
    /// Header names lowercased.
    public var headers: [String: String]
    /// As in `ServerRequest`.
    public var clientAddress: String
}

/// What the server tells a WebSocket's owner. The methods run on the listener's service thread:
/// they must return quickly (hand work to a task) and never block.
public protocol WebSocketHandler: AnyObject, Sendable {
    /// The connection is open; messages may be sent on it.
    func opened(_ connection: WebSocketConnection)
    /// A complete text message arrived.
    func received(_ text: String, on connection: WebSocketConnection)
    /// The connection is gone; sends on it are dropped from now on.
    func closed(_ connection: WebSocketConnection)
}

/// Why an upgrade was refused. The connection is upgraded and closed at once with WebSocket close
/// code 4000 + `status` (4400, 4401, 4404) and `body` as the reason (at most 120 bytes): browsers
/// show a script the close code, never the status of a failed handshake.
public struct UpgradeRefusal: Error, Sendable {
    public var status: Int
    public var body: String

    public init(status: Int, body: String) {
        self.status = status
        self.body = body
    }
}
