internal import GenflowCore
internal import GenflowPipeline
internal import GenflowQueue
internal import Logging

/// One daemon's run of one claimed job: every step (or `for_each` item) whose needs have completed
/// runs at once, each attempt in a task of its own, each recorded, each completion checkpointed.
/// A retryable failure makes its unit wait; the others go on, and when nothing is left to run but
/// waiting units, the job waits in the database (`waitForRetry`) and the run ends: nothing sleeps
/// here. A failure that gives up fails the job and cancels the running branches, unless the step
/// says `continue_on_error` (its output then carries the error).
///
/// Every write goes through the daemon's `JobWriter`, which commits the writes of many jobs
/// together. A step with outside effects (`Stage.hasOutsideEffects`) waits until its start is
/// committed (its lease checked) before it runs; its checkpoint is queued as soon as it returns and
/// so is in the next flush, before any later write of the job. A step without outside effects
/// waits for nothing: its start and checkpoint ride with whatever the job writes next, often as one
/// row. A daemon killed before they commit runs such a step again on resume, which changes nothing
/// outside. The run waits for the writer only before an outside step, and at its end.
final class JobRun {
    let engine: Engine
    var job: Job
    let wasRescued: Bool
    let logger: Logger

    init(engine: Engine, job: Job, wasRescued: Bool, logger: Logger) {
        self.engine = engine
        self.job = job
        self.wasRescued = wasRescued
        self.logger = logger
    }

    /// The lease this run writes under: this daemon, and the token of its claim.
    var lease: Lease { Lease(owner: engine.owner, token: job.leaseToken) }

    /// Queues `writes` for the next flush.
    private func submit(_ writes: JobWrite...) async throws {
        try await engine.writer.submit(writes, for: job, lease: lease)
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

    func run() async throws {
        if wasRescued {
            if job.rescues > engine.configuration.maxRescues {
                let error = StepError(.internal, "poisoned: the job was taken over \(job.rescues) times after its daemon stopped responding")
                try await commit([.interruptStaleRuns, .failJob(step: job.currentStep, attempt: nil, error: error, reason: "poisoned")])
                logger.error("job failed as poisoned", metadata: ["genflow.rescues": "\(job.rescues)"])
                return
            }
            try await submit(.interruptStaleRuns)
            logger.notice("resuming a job whose daemon stopped", metadata: ["genflow.rescues": "\(job.rescues)"])
        }

        let pipeline: Pipeline
        do {
            pipeline = try await engine.catalog.pipeline(named: job.pipeline, version: job.pipelineVersion, store: engine.store)
        } catch let error as StepError {
            try await fail(nil, attempt: nil, error, reason: "pipeline", running: [])
            return
        }
        let jobID = job.id
        // A job never attempted has no step runs to read.
        let runs = job.attempts == 0 ? [] : try await engine.store.read { try $0.stepRuns(jobID: jobID) }
        let progress = JobProgress(pipeline: pipeline, generation: job.generation, runs: runs, now: .now)
        // Starts what may start and handles what ends, until the job completes, waits for a
        // retry, or ends early.
        try await withThrowingTaskGroup(of: Finished.self) { group in
            var feedback: [String: JSON] = [:]
            var inFlight: [StepUnit: Attempt] = [:]
            var interrupted: [Attempt] = []
            var wakeAt: ContinuousClock.Instant?
            var ending: Ending?

            while ending == nil {
                if let reason = engine.stopReason(Claim(job)) {
                    ending = .stopped(reason)
                    break
                }
                // Gather finished for_each steps, render the items of newly ready ones, start units.
                for (step, outputs) in progress.hasItems ? progress.gatherable : [] {
                    try await submit(.gatherItems(step: step.id, stage: step.stage, attempt: progress.takeAttempt(of: step.id), outputs: outputs))
                    progress.gathered(step.id, outputs: outputs)
                }
                for step in progress.hasItems ? progress.readySteps : [] where progress.items[step.id] == nil {
                    guard let forEach = step.forEach else { continue }
                    switch ForEach.items(of: forEach.items.render(scope(progress.outputs))) {
                    case .success(let items): progress.setItems(items, of: step.id)
                    case .failure(let error):
                        if step.continueOnError {
                            try await submit(.gatherItems(step: step.id, stage: step.stage, attempt: progress.takeAttempt(of: step.id), outputs: []))
                            progress.gathered(step.id, outputs: [])
                        } else {
                            ending = .failed(StepUnit(step: step.id), attempt: nil, StepError(error.errorClass, "step '\(step.id)': \(error.message)"), reason: "for_each")
                        }
                    }
                }
                if ending != nil { break }
                if progress.hasItems && !progress.gatherable.isEmpty { continue }
                let now = ContinuousClock.now
                let units = progress.startable(at: now)
                // One unit and nothing else in flight or waiting (a chain of steps): it runs in this
                // task, without a child task of its own.
                var inline: Prepared?
                for unit in units {
                    let prepared: Prepared
                    do throws(StepError) {
                        prepared = try prepare(unit, progress, feedback: feedback[unit.step])
                    } catch {
                        ending = .failed(unit, attempt: nil, error, reason: "config")
                        break
                    }
                    progress.started(unit, at: now)
                    inFlight[unit] = prepared.attempt
                    if !prepared.isOutside { try await submit(prepared.start) }
                    if units.count == 1 && inFlight.count == 1 && progress.nextRetry == nil {
                        if prepared.isOutside { try await commit([prepared.start]) }
                        inline = prepared
                    } else {
                        let writer = engine.writer, job = job, lease = lease
                        group.addTask { await Self.perform(prepared, writer: writer, job: job, lease: lease) }
                    }
                    // Later writes carry the count (the first start is the job's `job.started`).
                    self.job.attempts += 1
                }
                if ending != nil { break }

                if inFlight.isEmpty {
                    if progress.isComplete {
                        // The run is over once its end is queued: the worker takes the next job while
                        // the flush commits this one. A flush that fails leaves the job to be resumed
                        // from its checkpoints, as a crash would.
                        group.cancelAll()
                        try await submit(.completeJob)
                        return
                    }
                    guard let retryAt = progress.nextRetry else {
                        ending = .failed(nil, attempt: nil, StepError(.internal, "no step of the job can run: the graph is stuck"), reason: "graph")
                        break
                    }
                    group.cancelAll()
                    let delay = max(.zero, retryAt - .now)
                    try await commit([.waitForRetry(delay: delay)])
                    logger.info("job waits for a retry", metadata: ["genflow.delay_ms": "\(delay.milliseconds)"])
                    return
                }
                // A unit waiting for its retry while others run: wake when it is due.
                if let retryAt = progress.nextRetry, wakeAt.map({ retryAt < $0 }) ?? true {
                    wakeAt = retryAt
                    group.addTask {
                        try? await Task.sleep(until: retryAt, clock: .continuous)
                        return .wake
                    }
                }

                let finished: Finished
                if let inline {
                    finished = .attempt(inline.attempt, await Self.invoke(inline.stage, inline.context))
                } else if let next = try await group.next() {
                    finished = next
                } else {
                    continue
                }
                switch finished {
                case .wake:
                    if let due = wakeAt, due <= .now { wakeAt = nil }
                case .startFailed(let attempt, let error):
                    inFlight[attempt.unit] = nil
                    progress.stopped(attempt.unit)
                    throw error
                case .attempt(let attempt, let result):
                    inFlight[attempt.unit] = nil
                    ending = try await handle(attempt, result, progress, &feedback)
                    // An attempt the job's stop ended is recorded with the others it stopped.
                    if case .stopped = ending { interrupted.append(attempt) }
                }
            }

            // The job ends early: stop the other branches, record how their attempts ended, end the job.
            group.cancelAll()
            var stopped = interrupted
            while let finished = try? await group.next() {
                guard case .attempt(let attempt, let result) = finished else { continue }
                inFlight[attempt.unit] = nil
                if case .success(let output) = result {
                    try await checkpoint(attempt, output, progress)
                } else {
                    stopped.append(attempt)
                }
            }
            switch ending {
            case .failed(let unit, let attempt, let error, let reason)?:
                try await fail(unit, attempt: attempt, error, reason: reason, running: stopped)
            case .stopped(let reason)?:
                try await stop(reason: reason, running: stopped)
            case nil:
                break
            }
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
            // Ask the earlier step again, and every step between it and this one; then the unit
            // that failed runs again (an item alone: the items that completed keep their outputs).
            let graph = progress.pipeline.graph
            let upstream = graph.upstream[step.id] ?? []
            let discard = graph.ids.filter { $0 == onInvalid.retryStep || (upstream.contains($0) && graph.upstream[$0]?.contains(onInvalid.retryStep) == true) }
            progress.failed(unit, error: error, retryAt: nil)
            try await commit([.reask(step: step.id, attempt: attempt.number, error: error, retryStep: onInvalid.retryStep, discard: discard, item: unit.item)])
            progress.discard(discard)
            feedback[onInvalid.retryStep] = ["from_step": .string(step.id), "error": .string(error.message)]
            logger.info("output invalid; asking an earlier step again", metadata: ["genflow.step": "\(step.id)", "genflow.retry_step": "\(onInvalid.retryStep)"])
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
        /// Its start must commit before it runs (`Stage.hasOutsideEffects`).
        var isOutside: Bool

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
        return Prepared(attempt: attempt, stage: stage, context: context, isOutside: stage.hasOutsideEffects(config))
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
        logger.info("job failed", metadata: ["genflow.step": "\(unit?.description ?? "-")", "genflow.error_class": "\(error.errorClass)", "genflow.reason": "\(reason)"])
    }

    private func stop(reason: Engine.StopReason, running: [Attempt]) async throws {
        let first = running.first
        switch reason {
        case .cancelRequested:
            let error = StepError(.cancelled, "cancelled while running")
            try await commit(Self.ending(Array(running.dropFirst()), status: .cancelled) + [.failJob(step: first?.unit.step, attempt: first?.number, error: error, reason: "cancel")])
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

    /// Runs a prepared attempt; first, for a step with outside effects, commits its start.
    private static func perform(_ prepared: Prepared, writer: JobWriter, job: Job, lease: Lease) async -> Finished {
        if prepared.isOutside {
            do {
                try await writer.commit([prepared.start], for: job, lease: lease)
            } catch {
                return .startFailed(prepared.attempt, error)
            }
        }
        return .attempt(prepared.attempt, await invoke(prepared.stage, prepared.context))
    }

    /// Runs one attempt, bounded by its timeout and stopped when the job's task is cancelled.
    /// A stage that ignores cancellation is left to finish on its own; its result is discarded.
    static func invoke(_ stage: any Stage, _ context: StageContext) async -> Result<JSON, StepError> {
        let outcome = FirstResult<Result<JSON, StepError>>()
        let work = Task {
            do throws(StepError) {
                outcome.finish(.success(try await stage.run(context)))
            } catch {
                outcome.finish(.failure(error))
            }
        }
        let timer = Alarm(after: context.timeout) {
            outcome.finish(.failure(StepError(.timeout, "the attempt ran past its timeout of \(DurationText.format(context.timeout))")))
        }
        let result = await withTaskCancellationHandler {
            await outcome.value()
        } onCancel: {
            outcome.finish(.failure(StepError(.cancelled, "the step was stopped")))
        }
        work.cancel()
        timer.cancel()
        return result
    }
}
