internal import GenflowCore
internal import GenflowPostgres
public import GenflowStore
internal import Logging
internal import Synchronization

/// The one writer of a daemon's job state. Runs hand it their writes (`submit`, or `commit` to wait
/// for them); it applies the writes of every job it holds as one `JobBatch`: one statement per kind
/// of change and one commit for many jobs, the way River's batch completer and PgQueuer's buffered
/// acknowledgements do.
///
/// It flushes at once when idle; what arrives during a flush goes into the next one (no timer, so a
/// job alone is not slowed). A flush carries at most `maxRows` writes, taken in arrival order, so a
/// job's writes are never applied out of order; above `backlog` queued writes, callers wait.
///
/// A job whose lease did not hold is dropped from the flush by the statements and stopped, as is a
/// job whose writes the database refused: a failed flush is applied again job by job, and only the
/// job that fails alone is failed (with the database's error). A flush that fails for another reason
/// (the connection) stops every run in it; their jobs resume from their last checkpoint elsewhere.
final class JobWriter: Sendable {
    /// Writes of one job, queued.
    private struct Submission: Sendable {
        var job: Job
        var lease: Lease
        var writes: [JobWrite]
        var at: ContinuousClock.Instant
        var waiter: CheckedContinuation<Void, any Error>?
    }

    private struct State {
        var queue: [Submission] = []
        var queuedRows = 0
        var isFlushing = false
        /// Claims whose writes can no longer be made, and why (`LeaseLost`, or the database's error).
        var stopped: [Claim: any Error] = [:]
        var backlogWaiters: [CheckedContinuation<Void, Never>] = []
        var statistics = Statistics()
    }

    /// What the writer has done since it started.
    struct Statistics {
        var flushes = 0
        var writes = 0
        /// Batches the database refused, applied again job by job.
        var isolated = 0
    }

    private let state = Mutex(State())
    private let stopHandler = Mutex<(@Sendable (Claim, any Error) -> Void)?>(nil)
    private let store: JobStore
    private let logger: Logger
    /// Most writes one flush applies.
    let maxRows: Int
    /// Queued writes above which `submit` and `commit` wait for a flush.
    let backlog: Int

    init(store: JobStore, logger: Logger, maxRows: Int = 2_000, backlog: Int = 10_000) {
        self.store = store
        self.logger = logger
        self.maxRows = maxRows
        self.backlog = backlog
    }

    /// Called with a claim when its writes stopped holding (lease lost, refused, flush failed).
    func onStop(_ handler: @escaping @Sendable (Claim, any Error) -> Void) {
        stopHandler.withLock { $0 = handler }
    }

    /// Queues `writes`; they are applied by the next flush. Throws at once when the job's earlier
    /// writes were refused or its lease was lost.
    func submit(_ writes: [JobWrite], for job: Job, lease: Lease) async throws {
        try await enqueue(writes, for: job, lease: lease, wait: false)
    }

    /// Queues `writes` and returns once they are committed. Throws `LeaseLost` when the job's lease
    /// did not hold (nothing of it was written), or the error that stopped its writes.
    func commit(_ writes: [JobWrite], for job: Job, lease: Lease) async throws {
        try await enqueue(writes, for: job, lease: lease, wait: true)
    }

    /// The run of `claim` ended: forget why its writes stopped, if they did.
    func forget(_ claim: Claim) {
        state.withLock { _ = $0.stopped.removeValue(forKey: claim) }
    }

    var statistics: Statistics { state.withLock { $0.statistics } }

    /// Submissions waiting for a flush.
    var queuedCount: Int { state.withLock { $0.queue.count } }

    private func enqueue(_ writes: [JobWrite], for job: Job, lease: Lease, wait: Bool) async throws {
        if state.withLock({ $0.queuedRows >= backlog }) {
            await withCheckedContinuation { continuation in
                let full = state.withLock { state in
                    guard state.queuedRows >= backlog else { return false }
                    state.backlogWaiters.append(continuation)
                    return true
                }
                if !full { continuation.resume() }
            }
        }
        let at = ContinuousClock.now
        if wait {
            try await withCheckedThrowingContinuation { continuation in
                add(Submission(job: job, lease: lease, writes: writes, at: at, waiter: continuation))
            }
        } else {
            let refused = state.withLock { $0.stopped[Claim(job)] }
            if let refused { throw refused }
            add(Submission(job: job, lease: lease, writes: writes, at: at, waiter: nil))
        }
    }

    private func add(_ submission: Submission) {
        enum Next { case refuse(any Error), flush, none }
        let next = state.withLock { state -> Next in
            if let refused = state.stopped[Claim(submission.job)] { return .refuse(refused) }
            state.queue.append(submission)
            state.queuedRows += submission.writes.count
            guard !state.isFlushing else { return .none }
            state.isFlushing = true
            return .flush
        }
        switch next {
        case .refuse(let error): submission.waiter?.resume(throwing: error)
        case .flush: Task { await self.flushWhileQueued() }
        case .none: break
        }
    }

    /// Flushes until nothing is queued; what arrives during a flush goes into the next one.
    private func flushWhileQueued() async {
        while true {
            let (taken, released) = state.withLock { state -> ([Submission], [CheckedContinuation<Void, Never>]) in
                var rows = 0, count = 0
                while count < state.queue.count && (count == 0 || rows + state.queue[count].writes.count <= maxRows) {
                    rows += state.queue[count].writes.count
                    count += 1
                }
                let taken = Array(state.queue.prefix(count))
                state.queue.removeFirst(count)
                state.queuedRows -= rows
                if !taken.isEmpty {
                    state.statistics.flushes += 1
                    state.statistics.writes += rows
                }
                if taken.isEmpty { state.isFlushing = false }
                var released: [CheckedContinuation<Void, Never>] = []
                if state.queuedRows < backlog { swap(&released, &state.backlogWaiters) }
                return (taken, released)
            }
            released.forEach { $0.resume() }
            if taken.isEmpty { return }
            await flush(taken)
        }
    }

    private static func batch(_ submissions: [Submission]) -> JobBatch {
        var batch = JobBatch()
        for submission in submissions { batch.add(submission.writes, for: submission.job, lease: submission.lease, at: submission.at) }
        return batch
    }

    private func flush(_ taken: [Submission]) async {
        do {
            finish(taken, held: try await store.apply(Self.batch(taken)))
        } catch let error as PostgresError where !error.isConnectionFailure {
            await isolate(taken, after: error)
        } catch {
            logger.error("writing a batch of job changes failed; its runs stop and resume from their last checkpoints", metadata: [
                "genflow.error": "\(error)", "genflow.jobs": "\(Set(taken.map(\.job.id)).count)",
            ])
            finish(taken, failed: error)
        }
    }

    /// A batch the database refused: each job's writes again on their own, so one bad row fails
    /// only its job.
    private func isolate(_ taken: [Submission], after error: PostgresError) async {
        state.withLock { $0.statistics.isolated += 1 }
        var byJob: [String: [Submission]] = [:]
        var order: [String] = []
        for submission in taken {
            if byJob[submission.job.id] == nil { order.append(submission.job.id) }
            byJob[submission.job.id, default: []].append(submission)
        }
        guard order.count > 1 else {
            if error.isRefusedValue { await refuse(taken, error) } else { finish(taken, failed: error) }
            return
        }
        for id in order {
            let alone = byJob[id] ?? []
            do {
                finish(alone, held: try await store.apply(Self.batch(alone)))
            } catch let error as PostgresError where error.isRefusedValue {
                await refuse(alone, error)
            } catch {
                finish(alone, failed: error)
            }
        }
    }

    /// The database refused these writes of one job: the job fails with its error (not retried:
    /// the same writes would be refused again), and its run stops.
    private func refuse(_ submissions: [Submission], _ error: PostgresError) async {
        guard let first = submissions.first else { return }
        let failure = StepError(.internal, "the database refused this job's writes: \(error)")
        logger.error("the database refused a job's writes; the job fails", metadata: ["genflow.job_id": "\(first.job.id)", "genflow.error": "\(error)"])
        var failed = JobBatch()
        let started = submissions.flatMap(\.writes).compactMap { write -> String? in
            if case .startStep(let step, _, _, _) = write { return step }
            return nil
        }
        let step = started.last ?? first.job.currentStep
        failed.add([.failJob(step: step, attempt: nil, error: failure, reason: "database")], for: first.job, lease: first.lease)
        do {
            _ = try await store.apply(failed)
            finish(submissions, failed: WriteRefused(jobID: first.job.id, error: error))
        } catch {
            finish(submissions, failed: error)
        }
    }

    private func finish(_ submissions: [Submission], held: Set<Claim>) {
        var lost: [String] = []
        for submission in submissions where held.contains(Claim(submission.job)) {
            submission.waiter?.resume()
        }
        for submission in submissions where !held.contains(Claim(submission.job)) {
            let error = LeaseLost(jobID: submission.job.id)
            if markStopped(Claim(submission.job), error) { lost.append(submission.job.id) }
            submission.waiter?.resume(throwing: error)
        }
        if !lost.isEmpty {
            logger.warning("writes dropped: the lease of their jobs was taken over", metadata: ["genflow.jobs": "\(lost.count)"])
        }
    }

    private func finish(_ submissions: [Submission], failed error: any Error) {
        for submission in submissions {
            _ = markStopped(Claim(submission.job), error)
            submission.waiter?.resume(throwing: error)
        }
    }

    /// Records why a claim's writes stopped; tells the engine the first time. Returns whether it was the first.
    private func markStopped(_ claim: Claim, _ error: any Error) -> Bool {
        let isFirst = state.withLock { state in
            guard state.stopped[claim] == nil else { return false }
            state.stopped[claim] = error
            return true
        }
        if isFirst { stopHandler.withLock { $0 }?(claim, error) }
        return isFirst
    }
}

/// The database refused a job's writes (a constraint, a value it cannot hold): the job was failed
/// with that error and its run stops.
struct WriteRefused: Error, CustomStringConvertible {
    var jobID: String
    var error: PostgresError

    var description: String { "the database refused the writes of job \(jobID): \(error)" }
}
