internal import Crypto
public import GenflowCore
public import Foundation

/// HS256 JSON Web Tokens: what users present as `Authorization: Bearer <JWT>`.
public enum JWT {
    /// Why a token was refused; `code` is stable (`malformed`, `bad_signature`, `expired`, …).
    public struct Failure: Error, Sendable, Hashable {
        public var code: String
        public var message: String
    }

    /// A token for `subject` valid from `now` for `lifetime`, signed with `secret`.
    public static func sign(subject: String, lifetime: Duration, secret: Secret, now: Date = Date()) -> String {
        let issued = Int(now.timeIntervalSince1970)
        let claims: JSON = ["sub": .string(subject), "iat": .int(issued), "exp": .int(issued + Int(lifetime.components.seconds))]
        let signingInput = base64URL(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8)) + "." + base64URL(claims.canonicalData)
        return signingInput + "." + base64URL(signature(signingInput, secret: secret))
    }

    /// What a verified token says: whose it is, and until when it may be used (its `exp`).
    public struct Claims: Sendable, Hashable {
        public var subject: String
        public var expiresAt: Date
    }

    /// The token's subject (user id) and expiry when its signature, `exp` and `nbf` hold at `now`,
    /// allowing `leeway` of clock skew.
    public static func verify(_ token: String, secret: Secret, now: Date = Date(), leeway: TimeInterval = 30) throws(Failure) -> Claims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = decodeBase64URL(parts[0]), let claimsData = decodeBase64URL(parts[1]),
              let givenSignature = decodeBase64URL(parts[2]) else {
            throw Failure(code: "malformed", message: "the token is not a JWT (three base64url parts)")
        }
        guard let header = try? JSON(parsing: headerData), header["alg"] == "HS256" else {
            throw Failure(code: "unsupported_algorithm", message: "only HS256 tokens are accepted")
        }
        let expected = signature("\(parts[0]).\(parts[1])", secret: secret)
        guard constantTimeEqual(Array(expected), Array(givenSignature)) else {
            throw Failure(code: "bad_signature", message: "the token's signature does not match")
        }
        guard let claims = try? JSON(parsing: claimsData), case .object = claims else {
            throw Failure(code: "malformed", message: "the token's claims are not a JSON object")
        }
        guard let subject = claims["sub"]?.stringValue, !subject.isEmpty, subject.count <= 200 else {
            throw Failure(code: "no_subject", message: "the token has no 'sub' (user id)")
        }
        let expiry = try expiry(of: claims, now: now, leeway: leeway)
        return Claims(subject: subject, expiresAt: Date(timeIntervalSince1970: expiry))
    }

    /// `exp` (required), checked with `nbf` at `now` allowing `leeway`.
    private static func expiry(of claims: JSON, now: Date, leeway: TimeInterval) throws(Failure) -> Double {
        let time = now.timeIntervalSince1970
        guard let expiry = claims["exp"]?.doubleValue else { throw Failure(code: "no_expiry", message: "the token has no 'exp'") }
        guard time <= expiry + leeway else { throw Failure(code: "expired", message: "the token expired") }
        if let notBefore = claims["nbf"]?.doubleValue, time + leeway < notBefore {
            throw Failure(code: "not_yet_valid", message: "the token is not valid yet (nbf)")
        }
        return expiry
    }

    /// The `alg` of a token's header; nil when the token is not a JWT.
    static func algorithm(of token: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = decodeBase64URL(parts[0]), let header = try? JSON(parsing: data) else { return nil }
        return header["alg"]?.stringValue ?? ""
    }

    /// The claims of an identity provider's token whose signature was checked: `exp` (required),
    /// `nbf`, `iss` and `aud` as `rules` ask, the user from `rules.userClaim`, and whether
    /// `rules.operatorClaim` makes the caller an operator.
    static func checkClaims(_ token: String, rules: IdentityRules, now: Date = Date(), leeway: TimeInterval) throws(Failure) -> (Claims, isOperator: Bool) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = decodeBase64URL(parts[1]), let claims = try? JSON(parsing: data), case .object = claims else {
            throw Failure(code: "malformed", message: "the token's claims are not a JSON object")
        }
        let expiry = try expiry(of: claims, now: now, leeway: leeway)
        if let issuer = rules.issuer, claims["iss"]?.stringValue != issuer {
            throw Failure(code: "wrong_issuer", message: "the token's issuer (iss) is not \(issuer)")
        }
        if !rules.audiences.isEmpty {
            let audiences = claims["aud"].map { $0.arrayValue?.compactMap(\.stringValue) ?? [$0.stringValue].compactMap { $0 } } ?? []
            guard audiences.contains(where: rules.audiences.contains) else {
                throw Failure(code: "wrong_audience", message: "the token's audience (aud) is none of \(rules.audiences.joined(separator: ", "))")
            }
        }
        guard let subject = claims[rules.userClaim]?.stringValue, !subject.isEmpty, subject.count <= 200 else {
            throw Failure(code: "no_subject", message: "the token has no '\(rules.userClaim)' (the user id)")
        }
        var isOperator = false
        if let name = rules.operatorClaim, let value = rules.operatorValue, let claim = claims[name] {
            isOperator = claim.stringValue == value || claim.arrayValue?.contains(.string(value)) == true
        }
        return (Claims(subject: subject, expiresAt: Date(timeIntervalSince1970: expiry)), isOperator)
    }

    static func signature(_ input: String, secret: Secret) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: Data(secret.value.utf8))))
    }

    /// Equal bytes, compared in time that does not depend on where they differ.
    static func constantTimeEqual(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        guard left.count == right.count else { return false }
        return zip(left, right).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Base64url to bytes, the alphabet mapped byte by byte (Foundation's `replacingOccurrences`
    /// went through NSString: perf had it at 4 % of the daemon under 1,000 submissions a second).
    static func decodeBase64URL(_ text: Substring) -> Data? {
        var base64 = text.utf8.map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "-"): UInt8(ascii: "+")
            case UInt8(ascii: "_"): UInt8(ascii: "/")
            default: byte
            }
        }
        base64.append(contentsOf: repeatElement(UInt8(ascii: "="), count: (4 - base64.count % 4) % 4))
        return Data(base64Encoded: Data(base64))
    }
}
