import Foundation

/// How a step is retried: exponential backoff with jitter, capped, bounded by attempts and a deadline.
///
/// Pure logic: the runner asks `decide(after:attempt:elapsed:random:)` and reschedules the job in the
/// database with the delay it gets back; nothing here sleeps.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included (1 = no retry).
    public var maxAttempts: Int
    /// Delay before the second attempt.
    public var initialInterval: Duration
    /// Multiplier applied to the delay after each further failure.
    public var backoff: Double
    /// Cap on any backoff delay (a server-given delay is not capped).
    public var maxInterval: Duration
    /// Fraction (0–1) of each delay drawn at random, up or down, so retries do not arrive in step.
    public var jitter: Double
    /// Classes this step never retries, on top of `ErrorClass.neverRetried`.
    public var nonRetryable: Set<ErrorClass>
    /// Limit on one attempt.
    public var timeout: Duration
    /// Limit on the step across all its attempts and waits, if any.
    public var deadline: Duration?

    public init(
        maxAttempts: Int = 3, initialInterval: Duration = .seconds(1), backoff: Double = 2.0,
        maxInterval: Duration = .seconds(30), jitter: Double = 0.2, nonRetryable: Set<ErrorClass> = [],
        timeout: Duration = .seconds(60), deadline: Duration? = nil
    ) {
        self.maxAttempts = maxAttempts
        self.initialInterval = initialInterval
        self.backoff = backoff
        self.maxInterval = maxInterval
        self.jitter = jitter
        self.nonRetryable = nonRetryable
        self.timeout = timeout
        self.deadline = deadline
    }

    /// The policy used where nothing is configured.
    public static let standard = RetryPolicy()

    /// Accepted ranges, shared by validation and the editor schema.
    public enum Limits {
        public static let maxAttempts = 1...100
        public static let backoff = 1.0...10.0
        public static let jitter = 0.0...1.0
        public static let interval = Duration.milliseconds(1)...Duration.seconds(86_400)
    }

    /// Why a failed step is not tried again.
    public enum GiveUpReason: String, Sendable, Hashable {
        case nonRetryable = "non_retryable"
        case attemptsExhausted = "attempts_exhausted"
        case deadlineExceeded = "deadline_exceeded"
    }

    /// What to do after a failed attempt.
    public enum Decision: Sendable, Hashable {
        case retry(after: Duration)
        case giveUp(GiveUpReason)
    }

    /// Whether failures of this class may be retried under this policy.
    public func isRetryable(_ errorClass: ErrorClass) -> Bool {
        !ErrorClass.neverRetried.contains(errorClass) && !nonRetryable.contains(errorClass)
    }

    /// The backoff delay after failed attempt number `attempt` (1-based), before any server-given delay.
    ///
    /// `random` in 0..<1 picks the jitter: 0.5 gives the undisturbed delay. The result lies in
    /// `base × (1 − jitter) … min(base × (1 + jitter), maxInterval)` with
    /// `base = min(initialInterval × backoff^(attempt−1), maxInterval)`.
    public func delay(afterAttempt attempt: Int, random: Double) -> Duration {
        let cap = maxInterval.seconds
        let exponent = Double(max(0, attempt - 1))
        let base = min(initialInterval.seconds * pow(backoff, exponent), cap)
        let factor = 1 + jitter * (2 * min(max(random, 0), 1) - 1)
        let seconds = min(base * factor, cap)
        return .milliseconds(Int64((max(seconds, 0) * 1000).rounded()))
    }

    /// Decides whether attempt number `attempt` (1-based), which failed with `failure`, is retried.
    ///
    /// - Parameters:
    ///   - elapsed: time since the step's first attempt started, for the deadline.
    ///   - random: a number in 0..<1 for the jitter.
    public func decide(after failure: StepError, attempt: Int, elapsed: Duration, random: Double) -> Decision {
        guard isRetryable(failure.errorClass) else { return .giveUp(.nonRetryable) }
        guard attempt < maxAttempts else { return .giveUp(.attemptsExhausted) }
        let wait = failure.retryAfter.map { max($0, .zero) } ?? delay(afterAttempt: attempt, random: random)
        if let deadline, elapsed + wait >= deadline { return .giveUp(.deadlineExceeded) }
        return .retry(after: wait)
    }

    /// The time one attempt may take: the timeout, shortened to what is left of the deadline.
    public func attemptTimeout(elapsed: Duration) -> Duration {
        guard let deadline else { return timeout }
        return max(.zero, min(timeout, deadline - elapsed))
    }
}

/// Part of a retry policy as written in one place (a step, a pipeline's defaults, a stage's defaults).
/// Layers are merged field by field, the first that sets a field winning.
public struct RetrySettings: Sendable, Hashable {
    public var maxAttempts: Int?
    public var initialInterval: Duration?
    public var backoff: Double?
    public var maxInterval: Duration?
    public var jitter: Double?
    public var nonRetryable: Set<ErrorClass>?
    public var timeout: Duration?
    public var deadline: Duration?

    public init(
        maxAttempts: Int? = nil, initialInterval: Duration? = nil, backoff: Double? = nil,
        maxInterval: Duration? = nil, jitter: Double? = nil, nonRetryable: Set<ErrorClass>? = nil,
        timeout: Duration? = nil, deadline: Duration? = nil
    ) {
        self.maxAttempts = maxAttempts
        self.initialInterval = initialInterval
        self.backoff = backoff
        self.maxInterval = maxInterval
        self.jitter = jitter
        self.nonRetryable = nonRetryable
        self.timeout = timeout
        self.deadline = deadline
    }

    /// The policy these layers describe, most specific first, over `RetryPolicy.standard`.
    public static func resolve(_ layers: [RetrySettings]) -> RetryPolicy {
        func first<T>(_ field: KeyPath<RetrySettings, T?>) -> T? { layers.lazy.compactMap { $0[keyPath: field] }.first }
        let standard = RetryPolicy.standard
        return RetryPolicy(
            maxAttempts: first(\.maxAttempts) ?? standard.maxAttempts,
            initialInterval: first(\.initialInterval) ?? standard.initialInterval,
            backoff: first(\.backoff) ?? standard.backoff,
            maxInterval: first(\.maxInterval) ?? standard.maxInterval,
            jitter: first(\.jitter) ?? standard.jitter,
            nonRetryable: first(\.nonRetryable) ?? standard.nonRetryable,
            timeout: first(\.timeout) ?? standard.timeout,
            deadline: first(\.deadline) ?? standard.deadline
        )
    }
}
