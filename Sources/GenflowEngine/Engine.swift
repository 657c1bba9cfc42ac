internal import GenflowCore
public import GenflowPipeline
public import GenflowQueue
public import Logging
public import ServiceLifecycle
internal import Foundation
internal import Synchronization

/// How the engine runs jobs.
public struct EngineConfiguration: Sendable {
    /// Jobs run at once by this daemon.
    public var workers: Int
    /// How long a claimed job stays this daemon's without a heartbeat.
    public var lease: Duration
    /// Longest wait for work without a notification.
    public var pollInterval: Duration
    /// Rescues after which a job fails as poisoned instead of being taken over again.
    public var maxRescues: Int
    /// Jobs one user may have running at once, across daemons (nil = no cap).
    public var runningPerUser: Int?
    /// On shutdown, how long running steps may go on before their jobs are released.
    public var shutdownGrace: Duration
    /// Most jobs claimed by one statement.
    public var claimBatch: Int
    /// Jobs expected to end within this window are claimed ahead of free workers (zero: never).
    public var claimAheadWindow: Duration
    /// Longest a job claimed ahead waits for a worker before it goes back to the queue.
    public var readyTimeToLive: Duration
    /// After a claim that found some jobs but fewer than it asked for (jobs trickle in), the next
    /// one is sent no sooner than this after it, whatever wakes the loop: jobs submitted one by one
    /// under load are then claimed a few at a time instead of one claim each. After a claim that
    /// found none (the queue is idle), the next job is claimed the moment it comes.
    public var claimSpacing: Duration
    /// False: a step's retry is due at once; the delay its policy computed is recorded, not waited
    /// (`genflow test`, which makes waiting jobs due at once too).
    public var waitsOutRetries: Bool

    public init(
        workers: Int = 64, lease: Duration = .seconds(30), pollInterval: Duration = .seconds(1), maxRescues: Int = 5,
        runningPerUser: Int? = nil, shutdownGrace: Duration = .seconds(30), claimBatch: Int = 256,
        claimAheadWindow: Duration = .milliseconds(100), readyTimeToLive: Duration = .seconds(2), waitsOutRetries: Bool = true,
        claimSpacing: Duration = .milliseconds(5)
    ) {
        self.workers = workers
        self.lease = lease
        self.pollInterval = pollInterval
        self.maxRescues = maxRescues
        self.runningPerUser = runningPerUser
        self.shutdownGrace = shutdownGrace
        self.claimBatch = claimBatch
        self.claimAheadWindow = claimAheadWindow
        self.readyTimeToLive = min(readyTimeToLive, lease / 2)
        self.waitsOutRetries = waitsOutRetries
        self.claimSpacing = claimSpacing
    }
}

/// Claims jobs from the queue and runs them, a task per job, up to `workers` at once; keeps their
/// leases alive; stops a job when it is cancelled or its lease is lost; on graceful shutdown stops
/// claiming, lets running steps finish up to the grace period, and releases the rest.
public final class Engine: Service, Sendable {
    /// Why a running job is being stopped.
    enum StopReason: Sendable {
        case cancelRequested
        case leaseLost
        case shutdown
        /// The writer could not write for the job (its writes were refused, or a flush failed).
        case writesStopped(any Error)
    }

    struct RunningJob {
        var task: Task<Void, Never>?
        var stopReason: StopReason?
    }

    /// A job claimed ahead of a free worker.
    struct ReadyJob {
        var claimed: ClaimedJob
        /// When its claim was sent.
        var claimedAt: ContinuousClock.Instant
        var claim: Claim { Claim(claimed.job) }
    }

    /// Jobs claimed ahead, oldest first. Taking from the front moves nothing: a head index, the
    /// storage compacted once most of it was taken. (An array shifted or filtered whole on every
    /// pass of the claim loop was 3–4 % of the daemon with 2,000 workers: copies and retains.)
    struct ReadyQueue {
        private var jobs: [ReadyJob] = []
        private var head = 0

        var count: Int { jobs.count - head }

        mutating func append(_ job: ReadyJob) { jobs.append(job) }

        /// Takes up to `limit` jobs from the front, while `condition` holds for them (jobs wait in
        /// claim order, so those waiting longest are first).
        mutating func take(_ limit: Int = .max, while condition: (ReadyJob) -> Bool = { _ in true }) -> [ReadyJob] {
            var taken: [ReadyJob] = []
            while taken.count < limit, head < jobs.count, condition(jobs[head]) {
                taken.append(jobs[head])
                head += 1
            }
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 256 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            return taken
        }
    }

    /// The claims this daemon holds: running, or claimed ahead and waiting for a worker.
    struct Held {
        /// Every claim held, by claim: a job whose lease expired under a run of this daemon may be
        /// claimed again here (a new token) while the old run is still stopping.
        var claims: [Claim: RunningJob] = [:]
        /// Claimed ahead, in claim order; they are in `claims` too.
        var ready = ReadyQueue()
        /// Runs started (workers busy).
        var started = 0
        /// Runs ended since the engine started.
        var ended = 0
    }

    let store: JobStore
    let catalog: PipelineCatalog
    let registry: StageRegistry
    let configuration: EngineConfiguration
    let logger: Logger
    /// This daemon's name in `lease_owner`.
    public let owner: String
    /// Writes the state of every job this daemon runs, many jobs per commit.
    let writer: JobWriter
    /// Reads balances for `tokens.require`, many users per statement.
    let balances: BalanceReader

    private let held = Mutex(Held())
    private let isDraining = Atomic<Bool>(false)
    private let claimWake = WakeSignal()
    /// Set when jobs were queued for later (here or by another daemon): the claim loop's last read
    /// of when the next job is due may be too late.
    private let scheduleChanged = Atomic<Bool>(true)
    private let heartbeatWake = WakeSignal()
    private let idle = WakeSignal()

    public init(store: JobStore, catalog: PipelineCatalog, registry: StageRegistry, configuration: EngineConfiguration, logger: Logger) {
        self.store = store
        self.catalog = catalog
        self.registry = registry
        self.configuration = configuration
        self.logger = logger
        owner = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(UUID().uuidString.prefix(8).lowercased())"
        writer = JobWriter(store: store, logger: logger)
        balances = BalanceReader(store: store)
        writer.onStop { [weak self] claim, error in
            self?.stop(claim, error is LeaseLost ? .leaseLost : .writesStopped(error))
        }
    }

    /// Called for each NOTIFY the daemon receives.
    public func notify(channel: String) {
        switch channel {
        case JobStore.jobsChannel: claimWake.signal()
        case JobStore.scheduledChannel:
            scheduleChanged.store(true, ordering: .sequentiallyConsistent)
            claimWake.signal()
        case JobStore.cancelChannel: heartbeatWake.signal()
        default: break
        }
    }

    /// Jobs this daemon holds now: running, or claimed ahead for a worker.
    public var runningCount: Int { held.withLock { $0.claims.count } }

    public func run() async throws {
        logger.info("engine started", metadata: ["genflow.owner": "\(owner)", "genflow.workers": "\(configuration.workers)"])
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.heartbeatLoop() }
                await self.claimLoop()
                // Draining waits on its own clock even when this task was cancelled.
                await Task {
                    await self.drain()
                    await self.writer.drain()
                }.value
                group.cancelAll()
                heartbeatWake.signal()
            }
        } onGracefulShutdown: {
            self.isDraining.store(true, ordering: .sequentiallyConsistent)
            self.claimWake.signal()
        }
        logger.info("engine stopped", metadata: ["genflow.owner": "\(owner)"])
    }

    // MARK: Claiming

    /// Claims jobs for the free workers and, while jobs end quickly, ahead of them: as many as end
    /// within `claimAheadWindow`, so a worker that frees up starts the next job at once instead of
    /// after a claim's round trip (Graphile Worker's local queue does the same). A job waits here at
    /// most `readyTimeToLive`, then goes back to the queue for any daemon, and the engine stops
    /// claiming ahead until jobs end again (its pace was wrong).
    private func claimLoop() async {
        var pace = ClaimPace(now: .now)
        var schedule = NextDue()
        var floors = ClaimFloors()
        /// When the last claim that came back short was sent.
        var lastShortClaim: ContinuousClock.Instant?
        while !isDraining.load(ordering: .sequentiallyConsistent) && !Task.isCancelled {
            let returned = returnReady(waitingLongerThan: configuration.readyTimeToLive)
            let (started, waiting, ended) = held.withLock { ($0.started, $0.ready.count, $0.ended) }
            if returned > 0 { pace = ClaimPace(now: .now, endedSoFar: ended) }
            pace.observe(endedSoFar: ended, now: .now)
            let ahead = min(configuration.workers, pace.jobs(within: configuration.claimAheadWindow))
            let free = configuration.workers - started
            let want = min(free + ahead - waiting, configuration.claimBatch)
            var claimedAll = false
            if want > 0 && ClaimPace.isDue(free: free, waiting: waiting, ahead: ahead) {
                if let last = lastShortClaim, case let since = ContinuousClock.now - last, since < configuration.claimSpacing {
                    try? await Task.sleep(for: configuration.claimSpacing - since)
                    continue  // what to claim, and whether to, may have changed meanwhile (a drain)
                }
                do {
                    let owner = owner, lease = configuration.lease, cap = configuration.runningPerUser
                    let sent = ContinuousClock.now, from = floors.floors(at: sent)
                    let claimed = try await store.write(begin: JobStore.beginByKey) {
                        try $0.claim(owner: owner, limit: want, lease: lease, runningPerUser: cap, from: from)
                    }
                    floors.claimed(claimed, from: from, sent: sent)
                    held.withLock { held in
                        for job in claimed {
                            let ready = ReadyJob(claimed: job, claimedAt: sent)
                            held.claims[ready.claim] = RunningJob()
                            held.ready.append(ready)
                        }
                    }
                    startReady()
                    claimedAll = claimed.count == want
                    // An empty claim means the queue is idle: the next job is claimed the moment it comes.
                    lastShortClaim = claimedAll || claimed.isEmpty ? nil : sent
                } catch {
                    logger.warning("claiming jobs failed; will retry", metadata: ["genflow.error": "\(error)"])
                    await claimWake.wait(timeout: configuration.pollInterval)
                    continue
                }
            }
            if claimedAll { continue }
            var timeout = configuration.pollInterval
            if want > 0 {
                let now = ContinuousClock.now
                if scheduleChanged.exchange(false, ordering: .sequentiallyConsistent) || schedule.isStale(now: now, maxAge: configuration.pollInterval) {
                    do {
                        let milliseconds = try await store.read { try $0.millisecondsUntilNextRunnable() }
                        // From when the answer came, not when it was asked: the database's `now()`
                        // was no later, so a claim sent then finds the job due (rounded up).
                        let answered = ContinuousClock.now
                        schedule = NextDue(at: milliseconds.map { answered + .milliseconds($0) }, readAt: now)
                    } catch {
                        schedule = NextDue()  // read again next time
                    }
                }
                if let due = schedule.at, due > now { timeout = min(timeout, due - now) }
            }
            await claimWake.wait(timeout: timeout)
        }
        returnReady(waitingLongerThan: .zero)
    }

    /// Starts jobs claimed ahead while workers are free.
    private func startReady() {
        let workers = configuration.workers
        let starting = held.withLock { held -> [ReadyJob] in
            let starting = held.ready.take(workers - held.started)
            held.started += starting.count
            return starting
        }
        starting.forEach(start)
    }

    /// Gives jobs claimed ahead back to the queue when they waited longer than `age` (all of
    /// them for `.zero`): their leases end, any daemon may claim them; nothing of theirs changed.
    /// Returns how many went back.
    @discardableResult
    private func returnReady(waitingLongerThan age: Duration) -> Int {
        let now = ContinuousClock.now
        let returned = held.withLock { held -> [ReadyJob] in
            let stale = held.ready.take(while: { now - $0.claimedAt >= age })
            for ready in stale { held.claims[ready.claim] = nil }
            return stale
        }
        guard !returned.isEmpty else { return 0 }
        logger.debug("returning jobs claimed ahead to the queue", metadata: ["genflow.count": "\(returned.count)"])
        for ready in returned {
            let job = ready.claimed.job, lease = Lease(owner: owner, token: job.leaseToken)
            let writes: [JobWrite] = ready.claimed.wasRescued ? [.interruptStaleRuns, .unclaim] : [.unclaim]
            Task {
                try? await self.writer.submit(writes, for: job, lease: lease)
                self.writer.forget(ready.claim)
                self.idle.signal()
            }
        }
        return returned.count
    }

    private func start(_ ready: ReadyJob) {
        let id = ready.claim
        let task = Task {
            await self.execute(ready)
            self.writer.forget(id)
            self.held.withLock { held in
                held.claims[id] = nil
                held.started -= 1
                held.ended += 1
            }
            self.startReady()
            self.claimWake.signal()
            self.idle.signal()
        }
        held.withLock { held in
            if held.claims[id] != nil { held.claims[id]?.task = task }
        }
    }

    private func execute(_ ready: ReadyJob) async {
        let claimed = ready.claimed
        var logger = logger
        logger[metadataKey: "genflow.job_id"] = "\(claimed.job.id)"
        do {
            try await JobRun(engine: self, job: claimed.job, wasRescued: claimed.wasRescued, claimedAt: ready.claimedAt, logger: logger).run()
        } catch is LeaseLost {
            logger.warning("lease lost: another daemon took the job over")
        } catch let error as WriteRefused {
            logger.error("job failed: the database refused its writes", metadata: ["genflow.error": "\(error.error)"])
        } catch {
            // The lease runs out and any daemon picks the job up again from its last checkpoint.
            logger.error("job run stopped by an error; it will be resumed after its lease expires", metadata: ["genflow.error": "\(error)"])
        }
    }

    /// Why the run of `claim` is being stopped, if it is.
    func stopReason(_ claim: Claim) -> StopReason? {
        held.withLock { $0.claims[claim]?.stopReason }
    }

    func stop(_ claim: Claim, _ reason: StopReason) {
        let task = held.withLock { held -> Task<Void, Never>? in
            guard held.claims[claim] != nil, held.claims[claim]?.stopReason == nil else { return nil }
            held.claims[claim]?.stopReason = reason
            return held.claims[claim]?.task
        }
        task?.cancel()
    }

    // MARK: Leases

    private func heartbeatLoop() async {
        while !Task.isCancelled {
            await heartbeatWake.wait(timeout: configuration.lease / 3)
            if Task.isCancelled { return }
            let local = held.withLock { Array($0.claims.keys) }
            guard !local.isEmpty else { continue }
            do {
                let owner = owner, lease = configuration.lease
                let extended = Dictionary(try await store.write { try $0.heartbeat(owner: owner, lease: lease) }.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
                for claim in local {
                    if let job = extended[claim.jobID], job.token == claim.token {
                        if job.cancelRequested { stop(claim, .cancelRequested) }
                    } else if held.withLock({ $0.claims[claim] != nil }) {
                        stop(claim, .leaseLost)
                    }
                }
            } catch {
                logger.warning("heartbeat failed; will retry", metadata: ["genflow.error": "\(error)"])
            }
        }
    }

    // MARK: Shutdown

    private func drain() async {
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        logger.info("draining", metadata: ["genflow.running": "\(runningCount)"])
        while runningCount > 0 && ContinuousClock.now < deadline {
            await idle.wait(timeout: .milliseconds(100))
        }
        let left = held.withLock { Array($0.claims.keys) }
        if !left.isEmpty {
            logger.notice("releasing jobs still running after the grace period", metadata: ["genflow.count": "\(left.count)"])
            left.forEach { stop($0, .shutdown) }
            let hardDeadline = ContinuousClock.now + .seconds(10)
            while runningCount > 0 && ContinuousClock.now < hardDeadline {
                await idle.wait(timeout: .milliseconds(100))
            }
        }
    }
}
