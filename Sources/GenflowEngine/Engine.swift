internal import GenflowCore
public import GenflowPipeline
public import GenflowStore
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

    public init(
        workers: Int = 64, lease: Duration = .seconds(30), pollInterval: Duration = .seconds(1), maxRescues: Int = 5,
        runningPerUser: Int? = nil, shutdownGrace: Duration = .seconds(30), claimBatch: Int = 256
    ) {
        self.workers = workers
        self.lease = lease
        self.pollInterval = pollInterval
        self.maxRescues = maxRescues
        self.runningPerUser = runningPerUser
        self.shutdownGrace = shutdownGrace
        self.claimBatch = claimBatch
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

    /// Runs by claim: a job whose lease expired under a run of this daemon may be claimed again
    /// here (a new token) while the old run is still stopping.
    private let running = Mutex<[Claim: RunningJob]>([:])
    private let isDraining = Atomic<Bool>(false)
    private let claimWake = WakeSignal()
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
        case JobStore.cancelChannel: heartbeatWake.signal()
        default: break
        }
    }

    /// Jobs running here now.
    public var runningCount: Int { running.withLock { $0.count } }

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

    private func claimLoop() async {
        while !isDraining.load(ordering: .sequentiallyConsistent) && !Task.isCancelled {
            let free = configuration.workers - runningCount
            let want = min(free, configuration.claimBatch)
            var claimedAll = false
            if want > 0 {
                do {
                    let owner = owner, lease = configuration.lease, cap = configuration.runningPerUser
                    let claimed = try await store.write { try $0.claim(owner: owner, limit: want, lease: lease, runningPerUser: cap) }
                    claimed.forEach(start)
                    claimedAll = claimed.count == want
                } catch {
                    logger.warning("claiming jobs failed; will retry", metadata: ["genflow.error": "\(error)"])
                    await claimWake.wait(timeout: configuration.pollInterval)
                    continue
                }
            }
            if claimedAll { continue }
            var timeout = configuration.pollInterval
            if want > 0, let milliseconds = try? await store.read({ try $0.millisecondsUntilNextRunnable() }), milliseconds > 0 {
                timeout = min(timeout, .milliseconds(milliseconds))
            }
            await claimWake.wait(timeout: timeout)
        }
    }

    private func start(_ claimed: ClaimedJob) {
        let id = Claim(claimed.job)
        running.withLock { $0[id] = RunningJob() }
        let task = Task {
            await self.execute(claimed)
            self.writer.forget(id)
            self.running.withLock { _ = $0.removeValue(forKey: id) }
            self.claimWake.signal()
            self.idle.signal()
        }
        running.withLock { jobs in
            if jobs[id] != nil { jobs[id]?.task = task }
        }
    }

    private func execute(_ claimed: ClaimedJob) async {
        var logger = logger
        logger[metadataKey: "genflow.job_id"] = "\(claimed.job.id)"
        do {
            try await JobRun(engine: self, job: claimed.job, wasRescued: claimed.wasRescued, logger: logger).run()
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
        running.withLock { $0[claim]?.stopReason }
    }

    func stop(_ claim: Claim, _ reason: StopReason) {
        let task = running.withLock { jobs -> Task<Void, Never>? in
            guard jobs[claim] != nil, jobs[claim]?.stopReason == nil else { return nil }
            jobs[claim]?.stopReason = reason
            return jobs[claim]?.task
        }
        task?.cancel()
    }

    // MARK: Leases

    private func heartbeatLoop() async {
        while !Task.isCancelled {
            await heartbeatWake.wait(timeout: configuration.lease / 3)
            if Task.isCancelled { return }
            let local = running.withLock { Array($0.keys) }
            guard !local.isEmpty else { continue }
            do {
                let owner = owner, lease = configuration.lease
                let held = Dictionary(try await store.write { try $0.heartbeat(owner: owner, lease: lease) }.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
                for claim in local {
                    if let job = held[claim.jobID], job.token == claim.token {
                        if job.cancelRequested { stop(claim, .cancelRequested) }
                    } else if running.withLock({ $0[claim] != nil }) {
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
        let left = running.withLock { Array($0.keys) }
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
