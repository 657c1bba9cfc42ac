/// The class of a step failure: what the retry policy decides on. A stable code, not free text.
public struct ErrorClass: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// An attempt ran past its timeout.
    public static let timeout: ErrorClass = "timeout"
    /// The provider asked us to slow down; may carry a delay (`Retry-After`).
    public static let rateLimited: ErrorClass = "rate_limited"
    /// The provider failed (5xx, an error inside a stream).
    public static let serverError: ErrorClass = "server_error"
    /// Connection refused, reset, DNS, TLS.
    public static let network: ErrorClass = "network"
    /// The request itself is wrong; sending it again will not help.
    public static let invalidRequest: ErrorClass = "invalid_request"
    /// Credentials were refused.
    public static let auth: ErrorClass = "auth"
    /// The output did not validate (e.g. no usable canvas objects).
    public static let outputInvalid: ErrorClass = "output_invalid"
    /// The user's token balance is below what the step requires.
    public static let insufficientTokens: ErrorClass = "insufficient_tokens"
    /// The user's spend on priced model calls reached `limits.budget`.
    public static let budgetExceeded: ErrorClass = "budget_exceeded"
    /// The job was cancelled.
    public static let cancelled: ErrorClass = "cancelled"
    /// A bug or an unimplemented feature in Genflow itself.
    public static let `internal`: ErrorClass = "internal"
    /// A plugin process died with the call in flight.
    public static let pluginCrashed: ErrorClass = "plugin_crashed"

    /// Every class Genflow itself produces.
    public static let known: [ErrorClass] = [
        .timeout, .rateLimited, .serverError, .network, .invalidRequest, .auth, .outputInvalid,
        .insufficientTokens, .budgetExceeded, .cancelled, .internal, .pluginCrashed,
    ]

    /// Classes no policy retries: repeating the same call cannot succeed.
    public static let neverRetried: Set<ErrorClass> = [.invalidRequest, .auth, .insufficientTokens, .budgetExceeded, .cancelled, .internal]
}

/// A classified failure of one step attempt.
public struct StepError: Error, Sendable, Hashable, CustomStringConvertible {
    public var errorClass: ErrorClass
    public var message: String
    /// A delay the other side asked for (`Retry-After`); wins over the backoff schedule.
    public var retryAfter: Duration?

    public init(_ errorClass: ErrorClass, _ message: String, retryAfter: Duration? = nil) {
        self.errorClass = errorClass
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(errorClass): \(message)" }
}
