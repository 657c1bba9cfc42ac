/// Where this daemon's claims left each priority's range of `jobs_ready`, so that the next claim
/// walks on from there instead of from the range's start.
///
/// A claimed job's entry stays in `jobs_ready` until a vacuum, and the oldest jobs are claimed
/// first, so those entries gather at the start of each priority's range: a claim that walks from
/// the start passes every job claimed since the last vacuum (185 index pages after 30,000 claims;
/// a third of PostgreSQL's statement time in a no-op drain). A claim that starts after the last
/// job it took, `(run_at, id)` in the index's order, passes none of them.
///
/// What a floor skips: a job released back to the queue (it keeps its `run_at`), one submitted
/// with a `run_at` already past, one another claim held locked as this one passed, and one whose
/// submission committed after a later one's (`run_at` is its transaction's start: concurrent
/// submissions commit in any order). So a claim walks from the start when none has for
/// `fromStartEvery`, and `StoreSession.claim` walks from the start at once when a walk from the
/// floors found no job: such a job waits at most that much longer, and only while others run.
public struct ClaimFloors: Sendable {
    /// The last job claimed in a priority's range.
    public struct Floor: Sendable, Equatable {
        public var priority: Int
        /// `Job.runAt`: microseconds, UTC, fixed width (so strings compare as times do).
        public var runAt: String
        public var id: String
    }

    /// How often a claim walks every range from its start.
    public static let fromStartEvery = Duration.milliseconds(50)
    /// Priorities followed at most (each priority in use has one floor).
    static let maxPriorities = 64

    private var byPriority: [Int: Floor] = [:]
    private var walkedFromStartAt: ContinuousClock.Instant?

    public init() {}

    /// The floors a claim sent at `now` starts from: none when a walk from the start is due.
    public func floors(at now: ContinuousClock.Instant) -> [Floor] {
        guard let walked = walkedFromStartAt, now - walked < Self.fromStartEvery else { return [] }
        return Array(byPriority.values)
    }

    /// Takes what a claim sent at `sent` from `floors` brought back: each priority's floor moves to
    /// the last ready job claimed in it (claims return their jobs in the index's order). A job
    /// taken over from a stopped daemon was found by its lease, not in `jobs_ready`, and moves none.
    public mutating func claimed(_ jobs: [ClaimedJob], from floors: [Floor], sent: ContinuousClock.Instant) {
        if floors.isEmpty { walkedFromStartAt = sent }
        for claimed in jobs where !claimed.wasRescued {
            let job = claimed.job
            byPriority[job.priority] = Floor(priority: job.priority, runAt: job.runAt, id: job.id)
        }
        if byPriority.count > Self.maxPriorities { byPriority = [:] }
    }
}
