internal import GenflowCore

/// How fast a daemon's jobs end, smoothed, and so how many it may claim ahead of its free workers:
/// the jobs expected to end within a short window. Fast jobs get a worker the moment one frees up;
/// slow jobs are not claimed ahead at all, so no daemon hoards work another could start.
struct ClaimPace {
    private var sampledAt: ContinuousClock.Instant
    private var endedAtSample = 0
    /// Jobs ended per second, smoothed (each sample of at least `minimumSample` weighs half).
    private(set) var rate = 0.0

    static let minimumSample = Duration.milliseconds(50)

    /// A pace with no rate yet, counting from `endedSoFar` jobs ended at `now`.
    init(now: ContinuousClock.Instant, endedSoFar: Int = 0) {
        sampledAt = now
        endedAtSample = endedSoFar
    }

    /// Takes a sample: `endedSoFar` jobs had ended by `now`. Samples closer than `minimumSample`
    /// to the last one are skipped.
    mutating func observe(endedSoFar: Int, now: ContinuousClock.Instant) {
        let elapsed = now - sampledAt
        guard elapsed >= Self.minimumSample else { return }
        let recent = Double(endedSoFar - endedAtSample) / elapsed.seconds
        rate = rate == 0 ? recent : (rate + recent) / 2
        sampledAt = now
        endedAtSample = endedSoFar
    }

    /// Whether to claim now, with `free` workers idle and `waiting` jobs claimed ahead of `ahead`
    /// expected to end within the window: when a worker is idle, or when fewer than half of those
    /// wait. Between, the jobs waiting keep the workers fed while the claim loop lets more end, so
    /// it claims many at once instead of a few after each one that ends (369 claims instead of 600
    /// for 10,000 model calls through 2,000 workers: each claim also walks the entries of the jobs
    /// claimed before it).
    static func isDue(free: Int, waiting: Int, ahead: Int) -> Bool {
        free > 0 || waiting * 2 <= ahead
    }

    /// Jobs expected to end within `window` at the current rate.
    func jobs(within window: Duration) -> Int {
        let expected = rate * window.seconds
        return expected < Double(Int.max) ? Int(expected) : Int.max
    }
}

/// When the next queued job is due, as the claim loop last read it (`millisecondsUntilNextRunnable`),
/// so it sleeps until then without asking after every claim: the read walks `jobs_ready` from its
/// start, through the entries of every job claimed since the last vacuum (0.29 ms a read, after a
/// third of the claims, while 1,000 jobs a second were submitted and run). It is read again when
/// jobs were queued for later (`genflow_scheduled`), when the job it names is due, and at least
/// once a poll interval (a notification missed while the listener reconnected).
struct NextDue {
    /// Nil: no job queued at all.
    var at: ContinuousClock.Instant?
    /// Nil: never read.
    var readAt: ContinuousClock.Instant?

    func isStale(now: ContinuousClock.Instant, maxAge: Duration) -> Bool {
        guard let readAt, now - readAt < maxAge else { return true }
        return at.map { $0 <= now } ?? false
    }
}
