public import GenflowCore
internal import GenflowPipeline
internal import Synchronization

/// When a provider's target (a provider and a model) is skipped: after `failures` failures within
/// `window`, for `duration` (`cooldown: {failures, window, for}` in the config). A 429 with
/// `Retry-After` cools the target for what the provider asked, at once.
public struct CooldownPolicy: Sendable, Hashable {
    public var failures = 3
    public var window: Duration = .seconds(60)
    public var duration: Duration = .seconds(30)

    public init(failures: Int = 3, window: Duration = .seconds(60), duration: Duration = .seconds(30)) {
        self.failures = failures
        self.window = window
        self.duration = duration
    }

    /// The `cooldown` setting's schema, shared by every kind.
    static let schema = JSONSchema.object(description: "Skip a target (this provider and a model) that keeps failing, in every job of the daemon.", [
        .init("failures", .integer("Failures (of the fallback classes) that start a cooldown.", default: 3, minimum: 1)),
        .init("window", .duration("Within this long.", default: "60s")),
        .init("for", .duration("How long the target is skipped.", default: "30s")),
    ])

    /// From the validated setting (defaults for what it leaves out).
    public init(_ setting: JSON?) {
        self.init()
        if let count = setting?["failures"]?.intValue { failures = count }
        if let text = setting?["window"]?.stringValue, let parsed = DurationText.parse(text) { window = parsed }
        if let text = setting?["for"]?.stringValue, let parsed = DurationText.parse(text) { duration = parsed }
    }
}

/// Which targets are cooling down, shared by every job of the daemon: `call_model` asks before it
/// calls and reports how each call went; `GET /v1/providers` and `/metrics` show it. The counting
/// is pure (`Ledger`, times given); this class only puts it behind a lock.
public final class ProviderHealth: Sendable {
    public struct Target: Hashable, Sendable {
        public var provider: String
        public var model: String

        public init(provider: String, model: String) {
            self.provider = provider
            self.model = model
        }
    }

    /// One target's recent history.
    public struct State: Sendable {
        public var recentFailures: [ContinuousClock.Instant] = []
        public var coolingUntil: ContinuousClock.Instant?
        public var lastError: String?
        public var calls = 0
        public var failures = 0
    }

    /// The counting, pure.
    public struct Ledger: Sendable {
        public private(set) var states: [Target: State] = [:]

        public init() {}

        /// Until when `target` is skipped, if it is at `now`. A cooldown within `slack` of its end
        /// counts as ended, so the retry that waited for it is not turned away by a few milliseconds
        /// between the database's timer and this clock.
        public func coolingUntil(_ target: Target, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
            guard let until = states[target]?.coolingUntil, until > now + Self.slack else { return nil }
            return until
        }

        static let slack: Duration = .milliseconds(100)

        public mutating func succeeded(_ target: Target) {
            states[target, default: State()].calls += 1
            states[target]?.recentFailures = []
        }

        /// Counts a failure of a class that moves to the next target; true when it starts a cooldown.
        public mutating func failed(_ target: Target, _ error: StepError, policy: CooldownPolicy, now: ContinuousClock.Instant) -> Bool {
            var state = states[target, default: State()]
            state.calls += 1
            state.failures += 1
            state.lastError = "\(error.errorClass.rawValue): \(error.message)"
            state.recentFailures = state.recentFailures.filter { now - $0 < policy.window } + [now]
            var until: ContinuousClock.Instant?
            if error.errorClass == .rateLimited, let wait = error.retryAfter, wait > .zero {
                until = now + wait
            } else if state.recentFailures.count >= policy.failures {
                until = now + policy.duration
            }
            let starts = until != nil && (state.coolingUntil.map { $0 <= now } ?? true)
            if let until {
                state.coolingUntil = max(until, state.coolingUntil ?? until)
                state.recentFailures = []
            }
            states[target] = state
            return starts
        }
    }

    private let ledger = Mutex(Ledger())

    public init() {}

    public func coolingUntil(_ target: Target) -> ContinuousClock.Instant? {
        let now = ContinuousClock.now
        return ledger.withLock { $0.coolingUntil(target, now: now) }
    }

    public func succeeded(_ target: Target) {
        ledger.withLock { $0.succeeded(target) }
    }

    @discardableResult
    public func failed(_ target: Target, _ error: StepError, policy: CooldownPolicy) -> Bool {
        let now = ContinuousClock.now
        return ledger.withLock { $0.failed(target, error, policy: policy, now: now) }
    }

    /// Every target called so far, with how it stands now.
    public var states: [Target: State] { ledger.withLock { $0.states } }
}
