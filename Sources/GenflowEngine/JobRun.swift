internal import GenflowCore
internal import GenflowPipeline
internal import GenflowStore
internal import Logging

/// One daemon's run of one claimed job: its steps in order from the first without a checkpoint,
/// each attempt recorded, each completion checkpointed. A retryable failure reschedules the job in
/// the database and ends the run; nothing sleeps here.
///
/// Every write goes through the daemon's `JobWriter`, which commits the writes of many jobs
/// together. A step with outside effects (`Stage.hasOutsideEffects`) waits until its start is
/// committed (its lease checked) before it runs; its checkpoint is queued as soon as it returns and
/// so is in the next flush, before any later write of the job. A step without outside effects
/// waits for nothing: its start and checkpoint ride with whatever the job writes next, often as one
/// row. A daemon killed before they commit runs such a step again on resume, which changes nothing
/// outside. The run waits for the writer only before an outside step, and at its end.
struct JobRun {
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
    private func submit(_ job: Job, _ writes: JobWrite...) async throws {
        try await engine.writer.submit(writes, for: job, lease: lease)
    }

    /// Queues `writes` and waits until they are committed.
    private func commit(_ job: Job, _ writes: JobWrite...) async throws {
        try await engine.writer.commit(writes, for: job, lease: lease)
    }

    func run() async throws {
        var job = job
        let store = engine.store
        if wasRescued {
            if job.rescues > engine.configuration.maxRescues {
                let error = StepError(.internal, "poisoned: the job was taken over \(job.rescues) times after its daemon stopped responding")
                try await commit(job, .interruptStaleRuns, .failJob(step: job.currentStep, attempt: nil, error: error, reason: "poisoned"))
                logger.error("job failed as poisoned", metadata: ["genflow.rescues": "\(job.rescues)"])
                return
            }
            try await submit(job, .interruptStaleRuns)
            logger.notice("resuming a job whose daemon stopped", metadata: ["genflow.rescues": "\(job.rescues)"])
        }

        let pipeline: Pipeline
        do {
            pipeline = try await engine.catalog.pipeline(named: job.pipeline, version: job.pipelineVersion, store: store)
        } catch let error as StepError {
            try await fail(job, step: nil, attempt: nil, error, reason: "pipeline")
            return
        }

        let jobID = job.id
        // A job never attempted has no step runs to read.
        var runs = job.attempts == 0 ? [] : try await store.read { try $0.stepRuns(jobID: jobID) }
        var outputs: [String: JSON] = [:]
        for run in runs where run.status == "completed" { outputs[run.stepID] = run.output ?? .null }
        var feedback: [String: JSON] = [:]
        var index = 0

        while index < pipeline.steps.count {
            let step = pipeline.steps[index]
            if outputs[step.id] != nil {
                index += 1
                continue
            }
            if let reason = engine.stopReason(Claim(job)) {
                try await stop(job, reason: reason, step: nil, attempt: nil)
                return
            }
            guard let stage = engine.registry.stage(named: step.stage) else {
                try await fail(job, step: step.id, attempt: nil, StepError(.internal, "stage '\(step.stage)' is not registered in this daemon"), reason: "stage")
                return
            }

            let previous = runs.filter { $0.stepID == step.id }
            let attempt = (previous.map(\.attempt).max() ?? 0) + 1
            let counted = previous.filter { $0.generation == job.generation && $0.status == "failed" }
            let policyAttempt = counted.count + 1
            let elapsed = Duration.milliseconds(previous.filter { $0.generation == job.generation }.map(\.ageMilliseconds).max() ?? 0)

            let scope: JSON = [
                "input": job.input,
                "steps": .object(outputs.mapValues { ["output": $0] }),
                "job": ["id": .string(job.id), "user_id": .string(job.userID), "pipeline": .string(job.pipeline)],
            ]
            // An option whose template renders to null (an optional input left out) is not set:
            // its default applies, as if the pipeline had not named it.
            var rendered = step.template.render(scope)
            if case .object(let members) = rendered { rendered = .object(members.filter { $0.value != .null }) }
            let config = stage.descriptor.config.applyingDefaults(to: rendered)
            let violations = stage.descriptor.config.violations(of: config)
            guard violations.isEmpty else {
                let message = "'with' of step '\(step.id)' after rendering: " + violations.map(\.description).joined(separator: "; ")
                try await fail(job, step: step.id, attempt: nil, StepError(.invalidRequest, message), reason: "config")
                return
            }

            let start = JobWrite.startStep(step: step.id, stage: stage.name, attempt: attempt, policyAttempt: policyAttempt)
            if stage.hasOutsideEffects(config) {
                try await commit(job, start)
            } else {
                try await submit(job, start)
            }
            job.attempts += 1
            let attemptStart = ContinuousClock.now
            let records = AttemptRecords(writer: engine.writer, balances: engine.balances, store: store, job: job, lease: lease, step: step.id)
            let context = StageContext(
                config: config, input: job.input, jobID: job.id, userID: job.userID, stepID: step.id,
                attempt: policyAttempt, timeout: step.retry.attemptTimeout(elapsed: elapsed), feedback: feedback[step.id],
                previous: pipeline.steps[..<index].compactMap { earlier in
                    outputs[earlier.id].map { StageContext.PreviousStep(id: earlier.id, stage: earlier.stage, output: $0) }
                },
                records: records
            )
            let result = await Self.invoke(stage, context)
            let duration = ContinuousClock.now - attemptStart
            StepMetrics.attempt(stage: stage.name, duration: duration, error: result.failure)

            switch result {
            case .success(let output):
                outputs[step.id] = output
                if let cost = Money(output["cost"]) { job.cost = job.cost + cost }
                try await submit(job, .completeStep(step: step.id, attempt: attempt, output: output, duration: duration, records: records.checkpointRecords))
                index += 1

            case .failure(let error):
                if let reason = engine.stopReason(Claim(job)) {
                    try await stop(job, reason: reason, step: step.id, attempt: attempt)
                    return
                }
                if error.errorClass == .outputInvalid, let onInvalid = step.onInvalid,
                   let target = pipeline.steps.firstIndex(where: { $0.id == onInvalid.retryStep }), target < index {
                    let reasks = runs.filter { $0.stepID == step.id && $0.generation == job.generation && $0.errorClass == ErrorClass.outputInvalid.rawValue }.count
                    if reasks < onInvalid.max {
                        let discard = pipeline.steps[target..<index].map(\.id)
                        try await commit(job, .reask(step: step.id, attempt: attempt, error: error, retryStep: onInvalid.retryStep, discard: discard))
                        discard.forEach { outputs[$0] = nil }
                        feedback[onInvalid.retryStep] = ["from_step": .string(step.id), "error": .string(error.message)]
                        runs = try await store.read { try $0.stepRuns(jobID: jobID) }
                        index = target
                        logger.info("output invalid; asking an earlier step again", metadata: ["genflow.step": "\(step.id)", "genflow.retry_step": "\(onInvalid.retryStep)"])
                        continue
                    }
                }
                let spent = elapsed + (ContinuousClock.now - attemptStart)
                switch step.retry.decide(after: error, attempt: policyAttempt, elapsed: spent, random: Double.random(in: 0..<1)) {
                case .retry(let delay):
                    StepMetrics.retry(stage: stage.name, errorClass: error.errorClass)
                    try await commit(job, .scheduleRetry(step: step.id, attempt: attempt, policyAttempt: policyAttempt, error: error, delay: delay))
                    logger.info("step failed; retry scheduled", metadata: [
                        "genflow.step": "\(step.id)", "genflow.error_class": "\(error.errorClass)", "genflow.delay_ms": "\(delay.milliseconds)",
                    ])
                case .giveUp(let reason):
                    try await fail(job, step: step.id, attempt: attempt, error, reason: reason.rawValue)
                }
                return
            }
        }
        // The run is over once its end is queued: the worker takes the next job while the flush
        // commits this one (waiting here kept the daemon's CPU and the database's taking turns).
        // A flush that fails leaves the job to be resumed from its checkpoints, as a crash would.
        try await submit(job, .completeJob)
    }

    private func fail(_ job: Job, step: String?, attempt: Int?, _ error: StepError, reason: String) async throws {
        try await commit(job, .failJob(step: step, attempt: attempt, error: error, reason: reason))
        logger.info("job failed", metadata: ["genflow.step": "\(step ?? "-")", "genflow.error_class": "\(error.errorClass)", "genflow.reason": "\(reason)"])
    }

    private func stop(_ job: Job, reason: Engine.StopReason, step: String?, attempt: Int?) async throws {
        switch reason {
        case .cancelRequested:
            try await commit(job, .failJob(step: step, attempt: attempt, error: StepError(.cancelled, "cancelled while running"), reason: "cancel"))
            logger.info("job cancelled while running")
        case .shutdown:
            try await commit(job, .release(step: step, attempt: attempt))
            logger.info("job released at shutdown", metadata: ["genflow.step": "\(step ?? "-")"])
        case .leaseLost:
            throw LeaseLost(jobID: job.id)
        case .writesStopped(let error):
            throw error
        }
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
