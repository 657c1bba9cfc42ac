public import GenflowCore

/// Where one step of a job (or one item of a `for_each` step) stands, from its attempts. Pure.
public struct StepState: Sendable, Hashable {
    /// The attempt that failed last, with its error.
    public struct Failure: Sendable, Hashable {
        public var errorClass: ErrorClass
        public var message: String
        public var attempt: Int
    }

    public var id: String
    public var stage: String
    public var needs: [String]
    /// For an item's state: its index.
    public var item: Int?
    /// The last attempt's status, or `pending` before the first.
    public var status: StepStatus
    /// Attempts of the job's current generation, interrupted ones not counted.
    public var attempts: Int
    public var startedAt: String?
    public var finishedAt: String?
    public var failure: Failure?
    /// A `for_each` step's items so far (nil for any other step).
    public var items: [StepState]?

    public var itemsCompleted: Int { items?.filter { $0.status == .completed }.count ?? 0 }

    /// Each step of `steps` (the pipeline version's, in order) from `runs`, the job's attempts.
    public static func of(_ job: Job, steps: [StepOutline], runs: [StepRun]) -> [StepState] {
        steps.map { step in
            let mine = runs.filter { $0.stepID == step.id && $0.status != .superseded }
            var state = StepState(step, item: nil, runs: mine.filter { $0.item == nil }, generation: job.generation)
            guard step.perItem else { return state }
            // A for_each step runs while its items do and completes with their gathered output.
            let byItem = Dictionary(grouping: mine.filter { $0.item != nil }, by: { $0.item ?? 0 })
            let items = byItem.keys.sorted().map { StepState(step, item: $0, runs: byItem[$0] ?? [], generation: job.generation) }
            state.items = items
            if state.status == .pending, !items.isEmpty {
                state.status = items.contains { $0.status == .running } ? .running : items.last?.status ?? .pending
                state.startedAt = items.compactMap(\.startedAt).min()
            }
            return state
        }
    }

    private init(_ step: StepOutline, item: Int?, runs: [StepRun], generation: Int) {
        id = step.id
        stage = step.stage
        needs = step.needs
        self.item = item
        let last = runs.last
        status = last?.status ?? .pending
        attempts = runs.filter { $0.status != .interrupted && $0.generation == generation }.count
        startedAt = runs.first?.startedAt
        finishedAt = last?.finishedAt
        failure = runs.last { $0.errorClass != nil }.map { Failure(errorClass: $0.errorClass ?? .internal, message: $0.errorMessage ?? "", attempt: $0.attempt) }
    }
}

/// A job with where each of its steps stands and every attempt (`StoreSession.jobDetail`).
public struct JobDetail: Sendable {
    public var job: Job
    public var steps: [StepState]
    public var runs: [StepRun]
}
