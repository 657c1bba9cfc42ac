public import GenflowCore
internal import GenflowHTTPServer
public import Foundation

/// Who is calling: a user (from a JWT's `sub`) or an operator (the admin token).
public enum Principal: Sendable, Hashable {
    case user(String)
    case `operator`

    /// The user whose resources a request reads: the caller, or for an operator the `user_id`
    /// it names (nil when it names none).
    func owner(named requested: String?) -> String? {
        switch self {
        case .user(let id): id
        case .operator: requested
        }
    }
}

/// A verified caller, and until when its token holds (nil: the admin token, which does not expire).
public struct Authenticated: Sendable {
    public var principal: Principal
    public var expiresAt: Date?
}

/// Turns bearer tokens into principals, and stops a client address that keeps sending bad ones.
public struct Authenticator: Sendable {
    let jwtSecret: Secret
    let adminToken: Secret?
    /// Clock skew allowed around a token's `exp` and `nbf` (`auth.clock_skew`).
    let leeway: TimeInterval
    /// Bad tokens per client address (`limits.auth_failures_per_minute`): past the limit, the
    /// address's authenticated requests get 429 until its bucket refills.
    let failures: RateLimiter
    /// An identity provider's keys and rules, for its RS256, ES256 and EdDSA tokens.
    let identity: (keys: IdentityKeys, rules: IdentityRules)?

    /// The algorithms an identity provider's tokens may use (`none` and HMAC are never among them:
    /// HS256 tokens are checked with `jwtSecret` alone, never with a provider's public key).
    static let providerAlgorithms: Set<String> = ["RS256", "ES256", "EdDSA"]

    public init(
        jwtSecret: Secret, adminToken: Secret?, failuresPerMinute: Int = 60, clockSkew: Duration = .seconds(30),
        identity: (keys: IdentityKeys, rules: IdentityRules)? = nil
    ) {
        self.jwtSecret = jwtSecret
        self.adminToken = adminToken
        leeway = clockSkew.seconds
        failures = RateLimiter(perMinute: failuresPerMinute)
        self.identity = identity
    }

    /// The principal of a request's token from `client` (its address: the peer's, or the one a
    /// trusted proxy forwarded). A bad token counts against the address; a missing one does not.
    public func principal(token: String?, client: String) async throws(APIError) -> Principal {
        try await authenticate(token: token, client: client).principal
    }

    /// As `principal`, with the moment the token stops holding (an open socket is closed then).
    public func authenticate(token: String?, client: String) async throws(APIError) -> Authenticated {
        if let wait = failures.waiting(client) {
            var error = APIError(429, "too_many_failures", "too many bad tokens from this address; retry in \(wait) s")
            error.headers = [("Retry-After", "\(wait)")]
            throw error
        }
        do {
            return try await authenticate(token: token)
        } catch {
            if token?.isEmpty == false { _ = failures.take(client) }
            throw error
        }
    }

    /// The caller of a bearer token, or the API error for a missing or bad one.
    public func authenticate(token: String?) async throws(APIError) -> Authenticated {
        guard let token, !token.isEmpty else { throw APIError(401, "unauthorized", "send Authorization: Bearer <token>") }
        if let adminToken, JWT.constantTimeEqual(Array(token.utf8), Array(adminToken.value.utf8)) { return Authenticated(principal: .operator, expiresAt: nil) }
        do throws(JWT.Failure) {
            let algorithm = JWT.algorithm(of: token)
            if let algorithm, let identity, Self.providerAlgorithms.contains(algorithm) {
                try await identity.keys.verifySignature(token)
                let (claims, isOperator) = try JWT.checkClaims(token, rules: identity.rules, leeway: leeway)
                return Authenticated(principal: isOperator ? .operator : .user(claims.subject), expiresAt: claims.expiresAt.addingTimeInterval(leeway))
            }
            if let algorithm, algorithm != "HS256" {
                let accepted = (identity == nil ? ["HS256"] : ["HS256"] + Self.providerAlgorithms.sorted()).joined(separator: ", ")
                throw JWT.Failure(code: "unsupported_algorithm", message: "tokens signed with '\(algorithm.prefix(20))' are not accepted (accepted: \(accepted))")
            }
            let claims = try JWT.verify(token, secret: jwtSecret, leeway: leeway)
            return Authenticated(principal: .user(claims.subject), expiresAt: claims.expiresAt.addingTimeInterval(leeway))
        } catch {
            throw APIError(401, "unauthorized", "bad token: \(error.message)", details: ["reason": .string(error.code)])
        }
    }

    /// The token of a request: `Authorization: Bearer …`, else `?token=` (browsers cannot set
    /// headers on a WebSocket).
    static func token(headers: [String: String], query: [String: String]) -> String? {
        if let header = headers["authorization"] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]).trimmingCharacters(in: .whitespaces) }
            return ""
        }
        return query["token"]
    }
}

/// An error answered as `{"error": {"code", "message", "details"?}}` with an HTTP status.
public struct APIError: Error, Sendable {
    public var status: Int
    public var code: String
    public var message: String
    public var details: JSON?
    public var headers: [(String, String)] = []

    public init(_ status: Int, _ code: String, _ message: String, details: JSON? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
    }

    static func notFound(_ what: String) -> APIError { APIError(404, "not_found", "\(what) not found") }

    var body: JSON {
        var error: [String: JSON] = ["code": .string(code), "message": .string(message)]
        if let details { error["details"] = details }
        return ["error": .object(error)]
    }
}

/// Who may call a route.
enum Access: Sendable {
    case anyone, user, `operator`
}

/// One endpoint: method, path pattern (`/v1/jobs/{id}`), who may call it, and a one-line summary
/// (the OpenAPI document is made from these).
struct Route: Sendable {
    var method: String
    var pattern: String
    var access: Access
    var summary: String
    /// Query parameters it reads (for the OpenAPI document).
    var query: [String] = []
    /// Its success status (for the OpenAPI document).
    var status = 200
    var handler: @Sendable (Call) async throws -> Reply

    init(method: String, pattern: String, access: Access, summary: String, query: [String] = [], status: Int = 200,
         handler: @escaping @Sendable (Call) async throws -> Reply) {
        self.method = method
        self.pattern = pattern
        self.access = access
        self.summary = summary
        self.query = query
        self.status = status
        self.handler = handler
    }

    /// The path parameters when `path` matches the pattern.
    func match(_ path: String) -> [String: String]? {
        let wanted = pattern.split(separator: "/"), given = path.split(separator: "/")
        guard wanted.count == given.count else { return nil }
        var parameters: [String: String] = [:]
        for (pattern, segment) in zip(wanted, given) {
            if pattern.hasPrefix("{") {
                parameters[String(pattern.dropFirst().dropLast())] = String(segment)
            } else if pattern != segment {
                return nil
            }
        }
        return parameters
    }
}

/// A request as a route sees it.
struct Call: Sendable {
    var request: ServerRequest
    var principal: Principal?
    var parameters: [String: String]

    func parameter(_ name: String) -> String { parameters[name] ?? "" }

    /// The user the request is about (for an operator, `?user_id=`); 400 when there is none.
    func owner() throws -> String {
        guard let principal else { throw APIError(401, "unauthorized", "send Authorization: Bearer <token>") }
        guard let owner = principal.owner(named: request.query["user_id"]) else {
            throw APIError(400, "user_required", "operators must name the user: ?user_id=")
        }
        return owner
    }

    /// The user filter of a listing: the caller; all users for an operator unless `?user_id=`.
    var scope: String? {
        principal?.owner(named: request.query["user_id"])
    }

    /// `?limit=` within 1…200 (default 50) and `?cursor=`.
    func page() throws -> (limit: Int, cursor: String?) {
        var limit = 50
        if let text = request.query["limit"] {
            guard let value = Int(text), (1...200).contains(value) else {
                throw APIError(400, "invalid_limit", "limit must be an integer from 1 to 200, not '\(text.prefix(40))'")
            }
            limit = value
        }
        return (limit, request.query["cursor"])
    }

    /// The body as a JSON object whose keys are all in `allowed`.
    func body(allowed: Set<String>) throws -> [String: JSON] {
        guard !request.body.isEmpty else { return [:] }
        let value: JSON
        do {
            value = try JSON(parsing: Data(request.body))
        } catch {
            // "the request body is invalid JSON: expected ',' or '}' in an object at byte 12"
            throw APIError(400, "invalid_json", "the request body is \(error)")
        }
        guard case .object(let members) = value else {
            throw APIError(400, "invalid_body", "the request body must be a JSON object, not \(value.typeName)")
        }
        if let pointer = value.pointerToNUL {
            throw APIError(400, "invalid_body", "the request body holds a NUL character (\\u0000) at '\(pointer.prefix(200))'; text may not contain one")
        }
        let unknown = members.keys.filter { !allowed.contains($0) }.sorted()
        guard unknown.isEmpty else {
            let name = unknown[0]
            throw APIError(400, "unknown_field", "unknown field '\(name.prefix(60))'\(Suggestions.didYouMean(name, in: allowed.sorted())) (fields: \(allowed.sorted().joined(separator: ", ")))")
        }
        return members
    }
}

/// What a route answers.
struct Reply: Sendable {
    var status: Int
    var body: JSON?
    var raw: (contentType: String, bytes: [UInt8])?
    var headers: [(String, String)] = []

    static func json(_ body: JSON, status: Int = 200) -> Reply { Reply(status: status, body: body) }

    /// `{"items": […], "next_cursor": …}`.
    static func page(_ items: [JSON], next: String?) -> Reply {
        .json(["items": .array(items), "next_cursor": next.map(JSON.string) ?? .null])
    }
}
