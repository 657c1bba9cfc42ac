internal import GenflowCore
internal import GenflowPipeline
internal import GenflowQueue

/// One thing a run starts: a step, or one item of a `for_each` step.
struct StepUnit: Hashable, Sendable, CustomStringConvertible {
    var step: String
    var item: Int?

    var description: String { item.map { "\(step)[\($0)]" } ?? step }
}

/// Where a job's steps stand during one run: which are done (their outputs), running, or waiting
/// for a retry, and what each unit's attempts so far count for. Pure bookkeeping: the run asks it
/// what may start and tells it what happened; it reads and writes nothing. A class: one run owns
/// it, and passing it around must not copy its tables.
final class JobProgress {
    /// What a unit's earlier attempts of this generation count for.
    struct History {
        /// Failed attempts (the retry policy's count).
        var failures = 0
        /// Failures with `output_invalid` (the `on_invalid` count).
        var invalid = 0
        /// When its first attempt of this generation started.
        var since: ContinuousClock.Instant?
    }

    let pipeline: Pipeline
    /// Whether any step has `for_each` (else there are no items to render or gather).
    let hasItems: Bool
    /// Outputs of completed steps (a `for_each` step's: its items' outputs in order).
    private(set) var outputs: [String: JSON] = [:]
    /// The completed steps (the keys of `outputs`), by position.
    private(set) var done: [Bool]
    private var doneCount = 0
    /// Outputs of completed items of `for_each` steps not yet gathered.
    private(set) var itemOutputs: [String: [Int: JSON]] = [:]
    /// The items of each `for_each` step whose needs are met (rendered once).
    private(set) var items: [String: [JSON]] = [:]
    private(set) var running: Set<StepUnit> = []
    /// Units that failed and may run again from this instant.
    private(set) var waiting: [StepUnit: ContinuousClock.Instant] = [:]
    private var history: [StepUnit: History] = [:]
    private var nextAttempt: [String: Int] = [:]

    /// Progress as the stored attempts of a job `runs` leave it, read at `now`.
    init(pipeline: Pipeline, generation: Int, runs: [StepRun], now: ContinuousClock.Instant) {
        self.pipeline = pipeline
        hasItems = pipeline.steps.contains { $0.forEach != nil }
        done = Array(repeating: false, count: pipeline.steps.count)
        var last: [StepUnit: StepRun] = [:]
        for run in runs {
            nextAttempt[run.stepID] = max(nextAttempt[run.stepID] ?? 1, run.attempt + 1)
            let unit = StepUnit(step: run.stepID, item: run.item)
            if run.status == .completed {
                if let item = run.item { itemOutputs[run.stepID, default: [:]][item] = run.output ?? .null } else { outputs[run.stepID] = run.output ?? .null }
            }
            guard run.generation == generation else { continue }
            last[unit] = run
            var counted = history[unit] ?? History()
            if run.status == .failed { counted.failures += 1 }
            if run.errorClass == .outputInvalid { counted.invalid += 1 }
            let started = now - .milliseconds(run.ageMilliseconds)
            counted.since = min(counted.since ?? started, started)
            history[unit] = counted
        }
        for (step, _) in outputs { itemOutputs[step] = nil }
        for step in outputs.keys { markDone(step, true) }
        for (unit, run) in last where run.status == .failed {
            if let wait = run.retryInMilliseconds, wait > 0 { waiting[unit] = now + .milliseconds(wait) }
        }
    }

    private func markDone(_ step: String, _ isDone: Bool) {
        guard let position = pipeline.graph.position[step], done[position] != isDone else { return }
        done[position] = isDone
        doneCount += isDone ? 1 : -1
    }

    /// Whether every step completed.
    var isComplete: Bool { doneCount == pipeline.steps.count }

    /// Steps whose needs are met and that have not completed, in file order.
    var readySteps: [PipelineStep] {
        pipeline.graph.readyPositions(done: done).map { pipeline.steps[$0] }
    }

    /// Records the items of a `for_each` step.
    func setItems(_ items: [JSON], of step: String) {
        self.items[step] = items
    }

    /// The units that may start at `now`: ready steps not running or waiting; for `for_each`
    /// steps (whose items are set), their items not done, running or waiting, up to `max_parallel`
    /// running at once.
    func startable(at now: ContinuousClock.Instant) -> [StepUnit] {
        var units: [StepUnit] = []
        func free(_ unit: StepUnit) -> Bool {
            !running.contains(unit) && (waiting[unit].map { $0 <= now } ?? true)
        }
        for position in pipeline.graph.readyPositions(done: done) {
            let step = pipeline.graph.ids[position]
            guard hasItems, let maxParallel = pipeline.steps[position].forEach?.maxParallel else {
                if free(StepUnit(step: step)) { units.append(StepUnit(step: step)) }
                continue
            }
            guard let items = items[step] else { continue }
            var active = running.filter { $0.step == step }.count
            let done = itemOutputs[step] ?? [:]
            for index in items.indices where active < maxParallel && done[index] == nil {
                let unit = StepUnit(step: step, item: index)
                if free(unit) {
                    units.append(unit)
                    active += 1
                }
            }
        }
        return units
    }

    /// `for_each` steps whose items all completed (or that have none): ready to be gathered.
    var gatherable: [(step: PipelineStep, outputs: [JSON])] {
        readySteps.compactMap { step in
            guard step.forEach != nil, let items = items[step.id] else { return nil }
            let done = itemOutputs[step.id] ?? [:]
            guard done.count == items.count else { return nil }
            return (step, items.indices.map { done[$0] ?? .null })
        }
    }

    /// The earliest instant a waiting unit may run again.
    var nextRetry: ContinuousClock.Instant? { waiting.values.min() }

    func history(of unit: StepUnit) -> History { history[unit] ?? History() }

    /// A new attempt number for `step` (unique across its items).
    func takeAttempt(of step: String) -> Int {
        let attempt = nextAttempt[step] ?? 1
        nextAttempt[step] = attempt + 1
        return attempt
    }

    func started(_ unit: StepUnit, at now: ContinuousClock.Instant) {
        running.insert(unit)
        waiting[unit] = nil
        if history[unit]?.since == nil { history[unit, default: History()].since = now }
    }

    /// The unit completed with `output` (for a step: the step; for an item: that item).
    func completed(_ unit: StepUnit, output: JSON) {
        running.remove(unit)
        if let item = unit.item {
            itemOutputs[unit.step, default: [:]][item] = output
        } else {
            outputs[unit.step] = output
            markDone(unit.step, true)
        }
    }

    /// The `for_each` step's items were gathered into its output.
    func gathered(_ step: String, outputs: [JSON]) {
        self.outputs[step] = .array(outputs)
        markDone(step, true)
        itemOutputs[step] = nil
    }

    /// The unit's attempt failed; with `retryAt` it may run again from then.
    func failed(_ unit: StepUnit, error: StepError, retryAt: ContinuousClock.Instant?) {
        running.remove(unit)
        history[unit, default: History()].failures += 1
        if error.errorClass == .outputInvalid { history[unit, default: History()].invalid += 1 }
        if let retryAt { waiting[unit] = retryAt }
    }

    /// The attempt ended without counting (the job is stopping around it).
    func stopped(_ unit: StepUnit) {
        running.remove(unit)
    }

    /// `on_invalid`: the outputs of `steps` are dropped (their checkpoints superseded), to run again.
    func discard(_ steps: [String]) {
        for step in steps {
            outputs[step] = nil
            markDone(step, false)
            itemOutputs[step] = nil
            items[step] = nil
        }
    }
}
