internal import Foundation
public import GenflowCore
internal import GenflowHTTPClient
internal import JWTKit
public import Logging
internal import Synchronization

/// What an identity provider's tokens must satisfy, beyond their signature.
public struct IdentityRules: Sendable {
    public var issuer: String?
    public var audiences: [String]
    public var userClaim: String
    public var operatorClaim: String?
    public var operatorValue: String?

    public init(issuer: String?, audiences: [String], userClaim: String, operatorClaim: String?, operatorValue: String?) {
        self.issuer = issuer
        self.audiences = audiences
        self.userClaim = userClaim
        self.operatorClaim = operatorClaim
        self.operatorValue = operatorValue
    }
}

/// An identity provider's public keys (a JWKS), for its RS256, ES256 and EdDSA tokens; jwt-kit
/// checks the signatures. Keys from `jwks_url` are fetched over the daemon's HTTP client, used for
/// `refresh`, and fetched again on a token whose `kid` is unknown, at most once per
/// `unknownKeyRefetch`; a fetch that fails keeps the last good keys. Each successful fetch replaces
/// the whole set, so a key the provider dropped stops working. Keys from a file are read once.
public final class IdentityKeys: Sendable {
    private struct State {
        var keys: JWTKeyCollection?
        var fetchedAt: ContinuousClock.Instant?
        var lastAttempt: ContinuousClock.Instant?
    }

    let url: String?
    /// The JWKS file's contents, made into keys on first use.
    let fileData: Data?
    let refresh: Duration
    let unknownKeyRefetch: Duration
    let logger: Logger
    private let state = Mutex(State())
    /// Only for keys from a URL.
    private let http: HTTPClient?

    /// Keys fetched from `url`, or read from the JWKS document `file` (then never refetched).
    public init(url: String?, file: String?, refresh: Duration, unknownKeyRefetch: Duration = .seconds(30), logger: Logger) throws {
        self.url = url
        http = url == nil ? nil : HTTPClient()
        self.refresh = refresh
        self.unknownKeyRefetch = min(unknownKeyRefetch, refresh)
        self.logger = logger
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw IdentityKeysError("cannot read the JWKS file \(file)") }
            // Checked now, so that a bad file stops the daemon at start, not the first caller.
            _ = try Self.usableKeys(from: data, source: file)
            fileData = data
        } else {
            fileData = nil
        }
    }

    deinit { http?.close() }

    /// Checks `token`'s signature with the provider's keys; a `JWT.Failure` says why not.
    func verifySignature(_ token: String) async throws(JWT.Failure) {
        guard let keys = await currentKeys() else {
            throw JWT.Failure(code: "unknown_key", message: "the identity provider's keys could not be fetched yet")
        }
        do {
            _ = try await keys.verify(token, as: SignatureOnly.self)
        } catch let error as JWTError where [.unknownKID, .missingKIDHeader, .noKeyProvided].contains(error.errorType) {
            // A key the provider added since the last fetch (rotation): fetch once more, at most so often.
            guard let refreshed = await refetch(ifOlderThan: unknownKeyRefetch) else {
                throw JWT.Failure(code: "unknown_key", message: "no key of the identity provider has the token's kid")
            }
            do {
                _ = try await refreshed.verify(token, as: SignatureOnly.self)
            } catch {
                throw Self.failure(error)
            }
        } catch {
            throw Self.failure(error)
        }
    }

    static func failure(_ error: any Error) -> JWT.Failure {
        guard let error = error as? JWTError else { return JWT.Failure(code: "bad_signature", message: "the token could not be verified: \(error)") }
        switch error.errorType {
        case .unknownKID, .missingKIDHeader, .noKeyProvided: return JWT.Failure(code: "unknown_key", message: "no key of the identity provider has the token's kid")
        case .malformedToken: return JWT.Failure(code: "malformed", message: "the token is not a JWT (three base64url parts)")
        case .unsupportedAlgorithm: return JWT.Failure(code: "unsupported_algorithm", message: "the token's algorithm is not its key's")
        default: return JWT.Failure(code: "bad_signature", message: "the token's signature does not match the identity provider's key")
        }
    }

    /// The keys to use now: fetched again first when older than `refresh`.
    private func currentKeys() async -> JWTKeyCollection? {
        if let fileData, state.withLock({ $0.keys == nil }), let keys = try? await Self.collection(from: fileData, source: "auth.jwks_file", logger: logger) {
            state.withLock { $0.keys = keys }
        }
        let (keys, fetchedAt) = state.withLock { ($0.keys, $0.fetchedAt) }
        guard url != nil, fetchedAt.map({ ContinuousClock.now - $0 >= refresh }) ?? true else { return keys }
        // Without any keys yet (the provider was down at the first tries), a fetch is tried at most
        // once per refetch interval, not on every request.
        return await refetch(ifOlderThan: keys == nil ? unknownKeyRefetch : refresh) ?? keys
    }

    /// Fetches the JWKS unless the last attempt is more recent than `age`; the new keys, or nil
    /// (none fetched, or the fetch failed: the last good keys stay).
    private func refetch(ifOlderThan age: Duration) async -> JWTKeyCollection? {
        guard let url, let http else { return nil }
        let now = ContinuousClock.now
        let allowed = state.withLock { state -> Bool in
            if let last = state.lastAttempt, now - last < age { return false }
            state.lastAttempt = now
            return true
        }
        guard allowed else { return nil }
        do {
            let response = try await http.perform(HTTPRequest(url: url, headers: [("Accept", "application/json")], timeout: .seconds(10)))
            guard response.status == 200 else { throw IdentityKeysError("\(url) answered HTTP \(response.status)") }
            let keys = try await Self.collection(from: Data(response.body), source: url, logger: logger)
            state.withLock { state in
                state.keys = keys
                state.fetchedAt = now
            }
            logger.info("fetched the identity provider's keys", metadata: ["genflow.jwks_url": "\(url)"])
            return keys
        } catch {
            logger.warning("cannot fetch the identity provider's keys; the last good ones stay", metadata: [
                "genflow.jwks_url": "\(url)", "genflow.error": "\(error)",
            ])
            return nil
        }
    }

    private static func collection(from data: Data, source: String, logger: Logger? = nil) async throws -> JWTKeyCollection {
        let keys = JWTKeyCollection()
        var added = 0
        // Key by key: one malformed key (a short EC coordinate, say) must not take the others down.
        for jwk in try usableKeys(from: data, source: source).keys {
            do {
                try await keys.add(jwk: jwk)
                added += 1
            } catch {
                logger?.warning("skipping a key of the identity provider's JWKS", metadata: [
                    "genflow.kid": "\(jwk.keyIdentifier?.string ?? "-")", "genflow.error": "\(error)",
                ])
            }
        }
        guard added > 0 else { throw IdentityKeysError("\(source) has no key that can be used") }
        // No default key: a token is checked with the key its `kid` names, or refused as
        // `unknown_key` (which fetches the keys again), never with some other key of the set.
        _ = await keys.clearDefault()
        return keys
    }

    private static func usableKeys(from data: Data, source: String) throws -> JWKS {
        let jwks: JWKS
        do {
            jwks = try JSONDecoder().decode(JWKS.self, from: data)
        } catch {
            throw IdentityKeysError("\(source) is not a JWKS document (a JSON object with \"keys\"): \(error)")
        }
        // Only keys that verify signatures (RSA, EC, OKP): a JWKS may also list keys for other uses.
        let usable = jwks.keys.filter { [.rsa, .ecdsa, .octetKeyPair].contains($0.keyType) }
        guard !usable.isEmpty else { throw IdentityKeysError("\(source) has no RSA, EC or OKP key") }
        return JWKS(keys: usable)
    }
}

/// jwt-kit decodes a payload type; the claims are checked by `IdentityRules` instead.
private struct SignatureOnly: JWTPayload {
    func verify(using algorithm: some JWTAlgorithm) throws {}
}

struct IdentityKeysError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
