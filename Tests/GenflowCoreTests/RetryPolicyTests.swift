import GenflowCore
import Testing

@Suite("Retry policy")
struct RetryPolicyTests {
    let failure = StepError(.serverError, "boom")

    @Test("without jitter the delays double from the initial interval up to the cap")
    func exponentialBackoff() {
        let policy = RetryPolicy(maxAttempts: 10, initialInterval: .seconds(1), backoff: 2, maxInterval: .seconds(30), jitter: 0)
        let delays = (1...7).map { policy.delay(afterAttempt: $0, random: 0.9) }
        #expect(delays == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30)])
    }

    @Test("every delay lies within the jitter band and never above max_interval (10,000 random policies)")
    func delayBounds() {
        var random = SplitMix64(seed: 42)
        for _ in 0..<10_000 {
            let initial = Int64.random(in: 1...5_000, using: &random)
            let policy = RetryPolicy(
                maxAttempts: 100,
                initialInterval: .milliseconds(initial),
                backoff: Double.random(in: 1...10, using: &random),
                maxInterval: .milliseconds(initial * Int64.random(in: 1...100, using: &random)),
                jitter: Double.random(in: 0...1, using: &random)
            )
            let attempt = Int.random(in: 1...30, using: &random)
            let r = Double.random(in: 0..<1, using: &random)
            let delay = policy.delay(afterAttempt: attempt, random: r).seconds
            let cap = policy.maxInterval.seconds
            let base = min(policy.initialInterval.seconds * pow(policy.backoff, Double(attempt - 1)), cap)
            let low = base * (1 - policy.jitter) - 0.001
            let high = min(base * (1 + policy.jitter), cap) + 0.001
            #expect(delay >= low && delay <= high, "attempt \(attempt) delay \(delay) outside \(low)...\(high) for \(policy)")
            #expect(delay <= cap + 0.001)
        }
    }

    @Test("jitter spreads delays: random 0 and 1 give the ends of the band")
    func jitterEnds() {
        let policy = RetryPolicy(initialInterval: .seconds(10), backoff: 1, maxInterval: .seconds(100), jitter: 0.2)
        #expect(policy.delay(afterAttempt: 1, random: 0) == .seconds(8))
        #expect(policy.delay(afterAttempt: 1, random: 0.5) == .seconds(10))
        #expect(policy.delay(afterAttempt: 1, random: 1) == .seconds(12))
    }

    @Test("max_attempts counts every attempt: N attempts means N−1 retries")
    func attemptCounting() {
        for maxAttempts in 1...10 {
            let policy = RetryPolicy(maxAttempts: maxAttempts, jitter: 0)
            var retries = 0
            var attempt = 1
            while case .retry = policy.decide(after: failure, attempt: attempt, elapsed: .zero, random: 0.5) {
                retries += 1
                attempt += 1
            }
            #expect(retries == maxAttempts - 1)
            #expect(policy.decide(after: failure, attempt: maxAttempts, elapsed: .zero, random: 0.5) == .giveUp(.attemptsExhausted))
        }
    }

    @Test("classes that can never succeed again, and the step's non_retryable, are not retried")
    func nonRetryable() {
        let policy = RetryPolicy(maxAttempts: 5, nonRetryable: [.timeout])
        for errorClass in ErrorClass.neverRetried.union([.timeout]) {
            #expect(policy.decide(after: StepError(errorClass, "x"), attempt: 1, elapsed: .zero, random: 0.5) == .giveUp(.nonRetryable))
        }
        for errorClass: ErrorClass in [.rateLimited, .serverError, .network, .outputInvalid, .pluginCrashed] {
            #expect(policy.isRetryable(errorClass))
        }
    }

    @Test("a server-given delay wins over backoff, even past max_interval")
    func retryAfterWins() {
        let policy = RetryPolicy(maxAttempts: 5, initialInterval: .seconds(1), maxInterval: .seconds(30), jitter: 0.5)
        let limited = StepError(.rateLimited, "slow down", retryAfter: .seconds(45))
        #expect(policy.decide(after: limited, attempt: 1, elapsed: .zero, random: 0.1) == .retry(after: .seconds(45)))
        let short = StepError(.rateLimited, "slow down", retryAfter: .milliseconds(250))
        #expect(policy.decide(after: short, attempt: 3, elapsed: .zero, random: 0.9) == .retry(after: .milliseconds(250)))
    }

    @Test("no retry is scheduled to start at or past the deadline (property over 10,000 cases)")
    func deadline() {
        var random = SplitMix64(seed: 7)
        for _ in 0..<10_000 {
            let policy = RetryPolicy(
                maxAttempts: 100, initialInterval: .milliseconds(Int64.random(in: 1...2_000, using: &random)),
                backoff: Double.random(in: 1...4, using: &random), maxInterval: .seconds(60),
                jitter: Double.random(in: 0...1, using: &random), deadline: .seconds(Int64.random(in: 1...120, using: &random))
            )
            let elapsed = Duration.milliseconds(Int64.random(in: 0...130_000, using: &random))
            let retryAfter: Duration? = Bool.random(using: &random) ? .milliseconds(Int64.random(in: 0...90_000, using: &random)) : nil
            let decision = policy.decide(
                after: StepError(.rateLimited, "x", retryAfter: retryAfter), attempt: Int.random(in: 1...20, using: &random),
                elapsed: elapsed, random: Double.random(in: 0..<1, using: &random)
            )
            if case .retry(let wait) = decision {
                #expect(elapsed + wait < policy.deadline!)
            }
        }
        let policy = RetryPolicy(maxAttempts: 10, initialInterval: .seconds(5), jitter: 0, deadline: .seconds(20))
        #expect(policy.decide(after: failure, attempt: 1, elapsed: .seconds(10), random: 0.5) == .retry(after: .seconds(5)))
        #expect(policy.decide(after: failure, attempt: 1, elapsed: .seconds(15), random: 0.5) == .giveUp(.deadlineExceeded))
    }

    @Test("an attempt's timeout is shortened to what is left of the deadline")
    func attemptTimeout() {
        let policy = RetryPolicy(timeout: .seconds(60), deadline: .seconds(90))
        #expect(policy.attemptTimeout(elapsed: .seconds(10)) == .seconds(60))
        #expect(policy.attemptTimeout(elapsed: .seconds(50)) == .seconds(40))
        #expect(policy.attemptTimeout(elapsed: .seconds(100)) == .zero)
        #expect(RetryPolicy(timeout: .seconds(5)).attemptTimeout(elapsed: .seconds(1_000)) == .seconds(5))
    }

    @Test("settings merge field by field, most specific layer first")
    func layering() {
        let step = RetrySettings(maxAttempts: 5, timeout: .seconds(120))
        let pipeline = RetrySettings(maxAttempts: 3, initialInterval: .seconds(2), jitter: 0.1)
        let stage = RetrySettings(initialInterval: .seconds(9), backoff: 3, nonRetryable: [.outputInvalid])
        let policy = RetrySettings.resolve([step, pipeline, stage])
        #expect(policy.maxAttempts == 5)
        #expect(policy.initialInterval == .seconds(2))
        #expect(policy.backoff == 3)
        #expect(policy.jitter == 0.1)
        #expect(policy.nonRetryable == [.outputInvalid])
        #expect(policy.timeout == .seconds(120))
        #expect(policy.maxInterval == RetryPolicy.standard.maxInterval)
        #expect(policy.deadline == nil)
    }
}

import Foundation
