internal import GenflowCore
internal import GenflowPipeline
internal import GenflowQueue
internal import GenflowTracing
internal import Logging
internal import Tracing

/// One daemon's run of one claimed job: every step (or `for_each` item) whose needs have completed
/// runs at once, each attempt in a task of its own, each recorded, each completion checkpointed.
/// A retryable failure makes its unit wait; the others go on, and when nothing is left to run but
/// waiting units, the job waits in the database (`waitForRetry`) and the run ends: nothing sleeps
/// here. A failure that gives up fails the job and cancels the running branches, unless the step
/// says `continue_on_error` (its output then carries the error).
///
/// Every write goes through the daemon's `JobWriter`, which commits the writes of many jobs
/// together. A step with outside effects (`Stage.hasOutsideEffects`) waits until its start is
/// committed (its lease checked) before it runs, or, for a stage that `runsWhileStartCommits`
/// while the lease provably holds, runs at once and has its result taken once the start has
/// committed; its checkpoint is queued as soon as it returns and so is in the next flush, before
/// any later write of the job. A step without outside effects
/// waits for nothing: its start and checkpoint ride with whatever the job writes next, often as one
/// row. A daemon killed before they commit runs such a step again on resume, which changes nothing
/// outside. The run waits for the writer only before an outside step, and at its end.
final class JobRun {
    let engine: Engine
    var job: Job
    let wasRescued: Bool
    /// Until when a step whose stage may run while its start commits (`Stage.runsWhileStartCommits`)
    /// does: half a lease after the claim was sent (the database set the lease's expiry a lease
    /// after its own `now()`, later still, so it provably holds). Never for a job taken over
    /// before: one that crashes its daemons then leaves an interrupted attempt behind each time.
    let leaseHolds: ContinuousClock.Instant
    let logger: Logger

    init(engine: Engine, job: Job, wasRescued: Bool, claimedAt: ContinuousClock.Instant, logger: Logger) {
        self.engine = engine
        self.job = job
        self.wasRescued = wasRescued
        self.leaseHolds = job.rescues == 0 ? claimedAt + engine.configuration.lease / 2 : claimedAt
        self.logger = logger
    }

    /// The lease this run writes under: this daemon, and the token of its claim.
    var lease: Lease { Lease(owner: engine.owner, token: job.leaseToken) }

    /// Queues `writes` for the next flush (`deferred`: for a flush something else starts).
    private func submit(_ writes: JobWrite..., deferred: Bool = false) async throws {
        try await engine.writer.submit(writes, for: job, lease: lease, deferred: deferred)
    }

    /// Queues `writes` and waits until they are committed.
    private func commit(_ writes: [JobWrite]) async throws {
        try await engine.writer.commit(writes, for: job, lease: lease)
    }

    /// An attempt in flight.
    struct Attempt: Sendable {
        var unit: StepUnit
        var stage: String
        var number: Int
        var policyAttempt: Int
        var startedAt: ContinuousClock.Instant
        var records: AttemptRecords
    }

    /// What a task of the run's group ends with.
    enum Finished: Sendable {
        case attempt(Attempt, Result<JSON, StepError>)
        /// The attempt's start could not be written (its lease was lost, its writes refused).
        case startFailed(Attempt, any Error)
        /// A waiting unit may be due.
        case wake
    }

    /// How the run ends the job when it stops early.
    enum Ending {
        case failed(StepUnit?, attempt: Int?, StepError, reason: String)
        case stopped(Engine.StopReason)
    }

    /// The state of the run's loop: what is in flight, what a re-ask feeds back, how it ends.
    struct Loop {
        var feedback: [String: JSON] = [:]
        var inFlight: [StepUnit: Attempt] = [:]
        /// Attempts the job's stop ended, recorded with the others it stops.
        var interrupted: [Attempt] = []
        /// When the wake task for a unit waiting on its retry fires.
        var wakeAt: ContinuousClock.Instant?
        var ending: Ending?
    }

    /// Runs the job in its trace (a `job.run` span under the job's root span).
    func run() async throws {
        try await Telemetry.jobRun(jobID: job.id, attributes: [
            "genflow.job_id": .string(job.id), "genflow.pipeline": .string(job.pipeline), "genflow.pipeline_version": .string(job.pipelineVersion),
            "genflow.daemon": .string(engine.owner), "genflow.rescued": .bool(wasRescued),
        ]) { try await runSteps() }
    }

    private func runSteps() async throws {
        guard try await resume() else { return }
        guard let pipeline = try await loadPipeline() else { return }
        let jobID = job.id
        // A job never attempted has no step runs to read.
        let runs = job.attempts == 0 ? [] : try await engine.store.read { try $0.stepRuns(jobID: jobID) }
        let progress = JobProgress(pipeline: pipeline, generation: job.generation, runs: runs, now: .now)
        // Starts what may start and handles what ends, until the job completes, waits for a
        // retry, or ends early.
        // The group's tasks are added, awaited and cancelled here; the steps between are methods.
        try await withThrowingTaskGroup(of: Finished.self) { group in
            var loop = Loop()
            while loop.ending == nil {
                if let reason = engine.stopReason(Claim(job)) {
                    loop.ending = .stopped(reason)
                    break
                }
                loop.ending = try await prepareItems(progress)
                if loop.ending != nil { break }
                if progress.hasItems && !progress.gatherable.isEmpty { continue }
                let (inline, spawned) = try await start(progress, &loop)
                let writer = engine.writer, lease = lease
                for (prepared, job) in spawned {
                    group.addTask { await Self.perform(prepared, writer: writer, job: job, lease: lease) }
                }
                if loop.ending != nil { break }
                if loop.inFlight.isEmpty {
                    group.cancelAll()
                    guard try await settle(progress, &loop) else { return }
                    break
                }
                if let retryAt = wakeDue(progress, &loop) {
                    group.addTask {
                        try? await Task.sleep(until: retryAt, clock: .continuous)
                        return .wake
                    }
                }
                let finished: Finished
                if let (prepared, job) = inline {
                    finished = await Self.perform(prepared, writer: writer, job: job, lease: lease)
                } else if let next = try await group.next() {
                    finished = next
                } else {
                    continue
                }
                try await take(finished, progress, &loop)
            }
            // The job ends early: stop the other branches, then record how their attempts ended.
            group.cancelAll()
            var ended: [Finished] = []
            while let finished = try? await group.next() { ended.append(finished) }
            try await end(progress, loop, ended)
        }
    }

    /// A job taken over from a daemon that stopped: its stale attempts are interrupted, or it fails
    /// as poisoned once taken over too often. False when the run is over.
    private func resume() async throws -> Bool {
        guard wasRescued else { return true }
        if job.rescues > engine.configuration.maxRescues {
            let error = StepError(.internal, "poisoned: the job was taken over \(job.rescues) times after its daemon stopped responding")
            try await commit([.interruptStaleRuns, .failJob(step: job.currentStep, attempt: nil, error: error, reason: "poisoned")])
            traceEnd("failed", error)
            logger.error("job failed as poisoned", metadata: ["genflow.rescues": "\(job.rescues)"])
            return false
        }
        try await submit(.interruptStaleRuns)
        logger.notice("resuming a job whose daemon stopped", metadata: ["genflow.rescues": "\(job.rescues)"])
        return true
    }

    /// The pipeline version the job was submitted on; nil (the job failed) when it cannot be had.
    private func loadPipeline() async throws -> Pipeline? {
        do {
            return try await engine.catalog.pipeline(named: job.pipeline, version: job.pipelineVersion, store: engine.store)
        } catch let error as StepError {
            try await fail(nil, attempt: nil, error, reason: "pipeline", running: [])
            return nil
        } catch let error as DiagnosticsError {
            // Written by a newer release during a rolling upgrade, as a rule: the job is left to its
            // lease, for another daemon to take over (and fails as poisoned if none can).
            logger.error("cannot load the job's pipeline version; another daemon will take the job over after its lease", metadata: [
                "genflow.pipeline": "\(job.pipeline)", "genflow.version": "\(job.pipelineVersion.prefix(12))", "genflow.error": "\(error)",
            ])
            throw error
        }
    }

    /// Gathers the for_each steps whose items all completed, and renders the items of those newly
    /// ready. An ending when items cannot be had (and the step does not continue on error).
    private func prepareItems(_ progress: JobProgress) async throws -> Ending? {
        guard progress.hasItems else { return nil }
        for (step, outputs) in progress.gatherable {
            try await submit(.gatherItems(step: step.id, stage: step.stage, attempt: progress.takeAttempt(of: step.id), outputs: outputs))
            progress.gathered(step.id, outputs: outputs)
        }
        for step in progress.readySteps where progress.items[step.id] == nil {
            guard let forEach = step.forEach else { continue }
            switch ForEach.items(of: forEach.items.render(scope(progress.outputs))) {
            case .success(let items): progress.setItems(items, of: step.id)
            case .failure(let error):
                guard step.continueOnError else {
                    return .failed(StepUnit(step: step.id), attempt: nil, StepError(error.errorClass, "step '\(step.id)': \(error.message)"), reason: "for_each")
                }
                try await submit(.gatherItems(step: step.id, stage: step.stage, attempt: progress.takeAttempt(of: step.id), outputs: []))
                progress.gathered(step.id, outputs: [])
            }
        }
        return nil
    }

    /// Starts every unit that may start: returns those to run in tasks of their own, each with the
    /// job as it was when it started. One unit and nothing else in flight or waiting (a chain of
    /// steps) is returned as `inline`, to run in this task.
    private func start(_ progress: JobProgress, _ loop: inout Loop) async throws -> (inline: (Prepared, Job)?, spawned: [(Prepared, Job)]) {
        let now = ContinuousClock.now
        let units = progress.startable(at: now)
        var inline: (Prepared, Job)?
        var spawned: [(Prepared, Job)] = []
        for unit in units {
            var prepared: Prepared
            do throws(StepError) {
                prepared = try prepare(unit, progress, feedback: loop.feedback[unit.step])
            } catch {
                loop.ending = .failed(unit, attempt: nil, error, reason: "config")
                return (nil, spawned)
            }
            progress.started(unit, at: now)
            loop.inFlight[unit] = prepared.attempt
            if !prepared.isOutside {
                try await submit(prepared.start, deferred: true)
            } else if prepared.runsWhileStartCommits && now < leaseHolds {
                prepared.committing = try await engine.writer.queue([prepared.start], for: job, lease: lease)
            }
            if units.count == 1 && loop.inFlight.count == 1 && progress.nextRetry == nil {
                inline = (prepared, job)
            } else {
                spawned.append((prepared, job))
            }
            // Later writes carry the count (the first start is the job's `job.started`).
            self.job.attempts += 1
        }
        return (inline, spawned)
    }

    /// Nothing in flight: the job completes, or waits in the database for its next retry. False
    /// when the run is over; true with `loop.ending` set when the graph is stuck.
    private func settle(_ progress: JobProgress, _ loop: inout Loop) async throws -> Bool {
        if progress.isComplete {
            // The run is over once its end is queued: the worker takes the next job while the
            // flush commits this one. A flush that fails leaves the job to be resumed from its
            // checkpoints, as a crash would.
            try await submit(.completeJob)
            traceEnd("completed", nil)
            return false
        }
        guard let retryAt = progress.nextRetry else {
            loop.ending = .failed(nil, attempt: nil, StepError(.internal, "no step of the job can run: the graph is stuck"), reason: "graph")
            return true
        }
        let delay = max(.zero, retryAt - .now)
        try await commit([.waitForRetry(delay: delay)])
        logger.info("job waits for a retry", metadata: ["genflow.delay_ms": "\(delay.milliseconds)"])
        return false
    }

    /// When a unit waiting for its retry while others run is due, if no wake task is set for then.
    private func wakeDue(_ progress: JobProgress, _ loop: inout Loop) -> ContinuousClock.Instant? {
        guard let retryAt = progress.nextRetry, loop.wakeAt.map({ retryAt < $0 }) ?? true else { return nil }
        loop.wakeAt = retryAt
        return retryAt
    }

    /// Takes what a task (or the inline attempt) ended with.
    private func take(_ finished: Finished, _ progress: JobProgress, _ loop: inout Loop) async throws {
        switch finished {
        case .wake:
            if let due = loop.wakeAt, due <= .now { loop.wakeAt = nil }
        case .startFailed(let attempt, let error):
            loop.inFlight[attempt.unit] = nil
            progress.stopped(attempt.unit)
            throw error
        case .attempt(let attempt, let result):
            loop.inFlight[attempt.unit] = nil
            loop.ending = try await handle(attempt, result, progress, &loop.feedback)
            if case .stopped = loop.ending { loop.interrupted.append(attempt) }
        }
    }

    /// The job ends early: records how the other branches' attempts ended (one that succeeded
    /// meanwhile is checkpointed), and ends the job.
    private func end(_ progress: JobProgress, _ loop: Loop, _ ended: [Finished]) async throws {
        var stopped = loop.interrupted
        for case .attempt(let attempt, let result) in ended {
            if case .success(let output) = result {
                try await checkpoint(attempt, output, progress)
            } else {
                stopped.append(attempt)
            }
        }
        switch loop.ending {
        case .failed(let unit, let attempt, let error, let reason)?:
            try await fail(unit, attempt: attempt, error, reason: reason, running: stopped)
        case .stopped(let reason)?:
            try await stop(reason: reason, running: stopped)
        case nil:
            break
        }
    }

    /// What became of an attempt: its checkpoint, or what its failure means for the job (nil: the
    /// run goes on).
    private func handle(_ attempt: Attempt, _ result: Result<JSON, StepError>, _ progress: JobProgress, _ feedback: inout [String: JSON]) async throws -> Ending? {
        let duration = ContinuousClock.now - attempt.startedAt
        StepMetrics.attempt(stage: attempt.stage, duration: duration, error: result.failure)
        let unit = attempt.unit
        guard let step = progress.pipeline.step(unit.step) else { return nil }
        let error: StepError
        switch result {
        case .success(let output):
            try await checkpoint(attempt, output, progress)
            return nil
        case .failure(let failure):
            error = failure
        }
        if let reason = engine.stopReason(Claim(job)) {
            progress.stopped(unit)
            return .stopped(reason)
        }
        if error.errorClass == .outputInvalid, let onInvalid = step.onInvalid, progress.history(of: unit).invalid < onInvalid.max {
            try await reask(onInvalid, after: attempt, of: step, error, progress, &feedback)
            return nil
        }
        let spent = ContinuousClock.now - (progress.history(of: unit).since ?? attempt.startedAt)
        switch step.retry.decide(after: error, attempt: attempt.policyAttempt, elapsed: spent, random: Double.random(in: 0..<1)) {
        case .retry(let delay):
            StepMetrics.retry(stage: attempt.stage, errorClass: error.errorClass)
            progress.failed(unit, error: error, retryAt: .now + (engine.configuration.waitsOutRetries ? delay : .zero))
            try await submit(.retryLater(step: step.id, attempt: attempt.number, policyAttempt: attempt.policyAttempt, error: error, delay: delay, item: unit.item))
            logger.info("step failed; retry scheduled", metadata: [
                "genflow.step": "\(unit)", "genflow.error_class": "\(error.errorClass)", "genflow.delay_ms": "\(delay.milliseconds)",
            ])
            return nil
        case .giveUp(let reason):
            guard step.continueOnError else {
                progress.failed(unit, error: error, retryAt: nil)
                return .failed(unit, attempt: attempt.number, error, reason: reason.rawValue)
            }
            let output: JSON = ["error": ["class": .string(error.errorClass.rawValue), "message": .string(error.message), "reason": .string(reason.rawValue)]]
            progress.completed(unit, output: output)
            try await submit(.completeStep(step: step.id, attempt: attempt.number, output: output, duration: duration, item: unit.item, error: error))
            logger.info("step failed; the job goes on without it (continue_on_error)", metadata: ["genflow.step": "\(unit)", "genflow.error_class": "\(error.errorClass)"])
            return nil
        }
    }

    /// `on_invalid`: asks the earlier step again, and every step between it and this one; then the
    /// unit that failed runs again (an item alone: the items that completed keep their outputs).
    private func reask(
        _ onInvalid: OnInvalid, after attempt: Attempt, of step: PipelineStep, _ error: StepError, _ progress: JobProgress, _ feedback: inout [String: JSON]
    ) async throws {
        let graph = progress.pipeline.graph
        let upstream = graph.upstream[step.id] ?? []
        let discard = graph.ids.filter { $0 == onInvalid.retryStep || (upstream.contains($0) && graph.upstream[$0]?.contains(onInvalid.retryStep) == true) }
        progress.failed(attempt.unit, error: error, retryAt: nil)
        try await commit([.reask(step: step.id, attempt: attempt.number, error: error, retryStep: onInvalid.retryStep, discard: discard, item: attempt.unit.item)])
        progress.discard(discard)
        feedback[onInvalid.retryStep] = ["from_step": .string(step.id), "error": .string(error.message)]
        logger.info("output invalid; asking an earlier step again", metadata: ["genflow.step": "\(step.id)", "genflow.retry_step": "\(onInvalid.retryStep)"])
    }

    /// Checkpoints a successful attempt.
    private func checkpoint(_ attempt: Attempt, _ output: JSON, _ progress: JobProgress) async throws {
        progress.completed(attempt.unit, output: output)
        if let cost = Money(output["cost"]) { job.cost = job.cost + cost }
        try await submit(.completeStep(
            step: attempt.unit.step, attempt: attempt.number, output: output, duration: .now - attempt.startedAt,
            records: attempt.records.checkpointRecords, item: attempt.unit.item))
    }

    /// An attempt ready to start.
    struct Prepared: Sendable {
        var attempt: Attempt
        var stage: any Stage
        var context: StageContext
        /// Its start must commit before it runs (`Stage.hasOutsideEffects`)…
        var isOutside: Bool
        /// …or, while the lease provably holds, before its result is taken.
        var runsWhileStartCommits: Bool
        /// The commit of its start, queued and not waited for: nil once committed, or why not.
        var committing: FirstResult<(any Error)?>?

        var start: JobWrite {
            .startStep(step: attempt.unit.step, stage: attempt.stage, attempt: attempt.number, policyAttempt: attempt.policyAttempt, item: attempt.unit.item)
        }
    }

    /// Renders a unit's settings and makes its attempt; a failure is the job's (bad settings).
    private func prepare(_ unit: StepUnit, _ progress: JobProgress, feedback: JSON?) throws(StepError) -> Prepared {
        guard let step = progress.pipeline.step(unit.step) else { throw StepError(.internal, "step '\(unit.step)' is not in the pipeline") }
        guard let stage = engine.registry.stage(named: step.stage) else {
            throw StepError(.internal, "stage '\(step.stage)' is not registered in this daemon")
        }
        var scope = scope(progress.outputs)
        if let item = unit.item, case .object(var members) = scope {
            members["item"] = progress.items[unit.step]?[item] ?? .null
            members["index"] = .int(item)
            scope = .object(members)
        }
        // An option whose template renders to null (an optional input left out) is not set: its
        // default applies, as if the pipeline had not named it.
        var rendered = step.template.render(scope)
        if case .object(let members) = rendered { rendered = .object(members.filter { $0.value != .null }) }
        let config = stage.descriptor.config.applyingDefaults(to: rendered)
        let violations = stage.descriptor.config.violations(of: config)
        guard violations.isEmpty else {
            throw StepError(.invalidRequest, "'with' of step '\(unit)' after rendering: " + violations.map(\.description).joined(separator: "; "))
        }
        let history = progress.history(of: unit)
        let now = ContinuousClock.now
        let elapsed = history.since.map { now - $0 } ?? .zero
        let records = AttemptRecords(
            writer: engine.writer, balances: engine.balances, store: engine.store, job: job, lease: lease, step: step.id, item: unit.item)
        let attempt = Attempt(
            unit: unit, stage: stage.name, number: progress.takeAttempt(of: step.id), policyAttempt: history.failures + 1, startedAt: now, records: records)
        let upstream = progress.pipeline.graph.position[step.id].map { progress.pipeline.graph.upstreamPositions[$0] } ?? []
        let context = StageContext(
            config: config, input: job.input, jobID: job.id, userID: job.userID, stepID: step.id, item: unit.item,
            attempt: attempt.policyAttempt, timeout: step.retry.attemptTimeout(elapsed: elapsed), feedback: feedback,
            previous: upstream.compactMap { position in
                let earlier = progress.pipeline.steps[position]
                return progress.outputs[earlier.id].map { StageContext.PreviousStep(id: earlier.id, stage: earlier.stage, output: $0) }
            },
            records: records
        )
        return Prepared(
            attempt: attempt, stage: stage, context: context, isOutside: stage.hasOutsideEffects(config),
            runsWhileStartCommits: stage.runsWhileStartCommits(config))
    }

    /// What templates see: the input, the completed steps' outputs, the job.
    private func scope(_ outputs: [String: JSON]) -> JSON {
        [
            "input": job.input,
            "steps": .object(outputs.mapValues { ["output": $0] }),
            "job": ["id": .string(job.id), "user_id": .string(job.userID), "pipeline": .string(job.pipeline)],
        ]
    }

    /// Writes that end the attempts stopped around the job's end with `status`.
    private static func ending(_ attempts: [Attempt], status: StepStatus) -> [JobWrite] {
        attempts.map { .stopAttempt(step: $0.unit.step, attempt: $0.number, status: status) }
    }

    private func fail(_ unit: StepUnit?, attempt: Int?, _ error: StepError, reason: String, running: [Attempt]) async throws {
        try await commit(Self.ending(running, status: .cancelled) + [.failJob(step: unit?.step, attempt: attempt, error: error, reason: reason)])
        traceEnd("failed", error)
        logger.info("job failed", metadata: ["genflow.step": "\(unit?.description ?? "-")", "genflow.error_class": "\(error.errorClass)", "genflow.reason": "\(reason)"])
    }

    private func stop(reason: Engine.StopReason, running: [Attempt]) async throws {
        let first = running.first
        switch reason {
        case .cancelRequested:
            let error = StepError(.cancelled, "cancelled while running")
            try await commit(Self.ending(Array(running.dropFirst()), status: .cancelled) + [.failJob(step: first?.unit.step, attempt: first?.number, error: error, reason: "cancel")])
            traceEnd("cancelled", error)
            logger.info("job cancelled while running")
        case .shutdown:
            try await commit(Self.ending(Array(running.dropFirst()), status: .interrupted) + [.release(step: first?.unit.step, attempt: first?.number)])
            logger.info("job released at shutdown", metadata: ["genflow.step": "\(first?.unit.description ?? "-")"])
        case .leaseLost:
            throw LeaseLost(jobID: job.id)
        case .writesStopped(let error):
            throw error
        }
    }

    /// Runs a prepared attempt. A step with outside effects first commits its start, unless it was
    /// queued while the lease provably held (`committing`): the step then runs at once, and its
    /// result is taken only once its start is committed. A start that fails stops the run (the
    /// writer stops the job's task, which cancels the attempt).
    private static func perform(_ prepared: Prepared, writer: JobWriter, job: Job, lease: Lease) async -> Finished {
        if prepared.isOutside && prepared.committing == nil {
            do {
                try await writer.commit([prepared.start], for: job, lease: lease)
            } catch {
                return .startFailed(prepared.attempt, error)
            }
        }
        let result = await invoke(prepared.stage, prepared.context)
        if let committing = prepared.committing, let error = await committing.value() { return .startFailed(prepared.attempt, error) }
        return .attempt(prepared.attempt, result)
    }

    /// The job's root span, once the job has ended here.
    private func traceEnd(_ status: String, _ error: StepError?) {
        Telemetry.jobEnded(jobID: job.id, pipeline: job.pipeline, version: job.pipelineVersion, createdAt: job.createdAt, status: status, error: error)
    }

    /// Runs one attempt in a `step <id>` span of the job's trace.
    static func invoke(_ stage: any Stage, _ context: StageContext) async -> Result<JSON, StepError> {
        do throws(StepError) {
            return .success(try await Telemetry.span("step \(context.stepID)", attributes: stepAttributes(stage, context)) { _ throws(StepError) in
                try await attempt(stage, context).get()
            })
        } catch {
            return .failure(error)
        }
    }

    private static func stepAttributes(_ stage: any Stage, _ context: StageContext) -> SpanAttributes {
        var attributes: SpanAttributes = [
            "genflow.step": .string(context.stepID), "genflow.stage": .string(stage.name), "genflow.attempt": .int64(Int64(context.attempt)),
        ]
        if let item = context.item { attributes["genflow.item"] = item }
        return attributes
    }

    /// Runs one attempt, bounded by its timeout and stopped when the job's task is cancelled.
    /// A stage that ignores cancellation is left to finish on its own; its result is discarded.
    private static func attempt(_ stage: any Stage, _ context: StageContext) async -> Result<JSON, StepError> {
        let outcome = FirstResult<Result<JSON, StepError>>()
        let work = Task {
            do throws(StepError) {
                outcome.finish(.success(try await stage.run(context)))
            } catch {
                outcome.finish(.failure(error))
            }
        }
        let timer = Deadlines.shared.schedule(after: context.timeout) {
            outcome.finish(.failure(StepError(.timeout, "the attempt ran past its timeout of \(DurationText.format(context.timeout))")))
        }
        let result = await withTaskCancellationHandler {
            await outcome.value()
        } onCancel: {
            outcome.finish(.failure(StepError(.cancelled, "the step was stopped")))
        }
        work.cancel()
        Deadlines.shared.cancel(timer)
        return result
    }
}
