internal import Synchronization

/// A token bucket per key (a user's submissions, a client address's failed authentications) of
/// `perMinute` tokens refilled evenly over a minute, so a burst up to the limit passes and the
/// steady rate is the limit. In memory, per daemon.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let perMinute: Int
    private let buckets = Mutex([String: Bucket]())

    init(perMinute: Int) {
        self.perMinute = perMinute
    }

    /// The seconds until `key` has a token again, without taking one; nil when it has one now.
    func waiting(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        let rate = Double(perMinute) / 60
        return buckets.withLock { buckets in
            guard let bucket = buckets[key] else { return nil }
            let tokens = min(Double(perMinute), bucket.tokens + rate * (now - bucket.updated).seconds)
            return tokens >= 1 ? nil : max(1, Int(((1 - tokens) / rate).rounded(.up)))
        }
    }

    /// Takes one token for `user`: nil when allowed, else the seconds until one is free.
    func take(_ user: String, now: ContinuousClock.Instant = .now) -> Int? {
        let rate = Double(perMinute) / 60
        return buckets.withLock { buckets in
            var bucket = buckets[user] ?? Bucket(tokens: Double(perMinute), updated: now)
            let elapsed = now - bucket.updated
            bucket.tokens = min(Double(perMinute), bucket.tokens + rate * elapsed.seconds)
            bucket.updated = now
            defer {
                buckets[user] = bucket
                // Forget idle users now and then so the map stays small.
                if buckets.count > 100_000 { buckets = buckets.filter { $0.value.tokens < Double(perMinute) } }
            }
            guard bucket.tokens >= 1 else { return max(1, Int(((1 - bucket.tokens) / rate).rounded(.up))) }
            bucket.tokens -= 1
            return nil
        }
    }
}
