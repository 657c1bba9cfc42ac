public import GenflowCore

/// What a stage declares about itself: enough for `genflow validate` and `genflow stages` without
/// running it.
public struct StageDescriptor: Sendable {
    /// The name steps use in `stage:` (`call_model`, `acme.generate_image`).
    public var name: String
    /// One line for `genflow stages`.
    public var summary: String
    /// The schema of the step's `with:` block.
    public var config: JSONSchema
    /// Retry settings under the pipeline's and the step's own (e.g. `tokens.debit` retries more).
    public var retryDefaults: RetrySettings
    /// Where the stage comes from: `built-in` or `plugin <name>`.
    public var origin: String

    /// `{name, origin, summary, config}`: what `genflow stages --json` and `GET /v1/stages` list.
    public var json: JSON {
        ["name": .string(name), "origin": .string(origin), "summary": .string(summary), "config": config.json]
    }

    public init(name: String, summary: String, config: JSONSchema, retryDefaults: RetrySettings = RetrySettings(), origin: String = "built-in") {
        self.name = name
        self.summary = summary
        self.config = config
        self.retryDefaults = retryDefaults
        self.origin = origin
    }
}

/// What a stage gets for one attempt of one step.
public struct StageContext: Sendable {
    /// The step's `with:` rendered against the job's input and earlier outputs.
    public var config: JSON
    /// The job's validated input, defaults applied.
    public var input: JSON
    public var jobID: String
    public var userID: String
    public var stepID: String
    /// The index of the `for_each` item this attempt runs for (nil: the step itself).
    public var item: Int?
    /// 1-based attempt number.
    public var attempt: Int
    /// The most this attempt may take (timeout, shortened by the step's deadline).
    public var timeout: Duration
    /// When a later step's `on_invalid` asked for this step again: `{from_step, error}` with the
    /// validation errors to pass on (e.g. to the model).
    public var feedback: JSON?
    /// The outputs of the steps that ran before this one, in pipeline order.
    public var previous: [PreviousStep]
    /// The job's records (events, prompts, canvases, images, tokens, the response cache), through
    /// the engine.
    public var records: any StageRecords

    /// A completed earlier step.
    public struct PreviousStep: Sendable {
        public var id: String
        public var stage: String
        public var output: JSON

        public init(id: String, stage: String, output: JSON) {
            self.id = id
            self.stage = stage
            self.output = output
        }
    }

    /// The output of the latest earlier step of `stage`, for stages whose input defaults to it.
    public func latestOutput(ofStage stage: String) -> JSON? {
        previous.last(where: { $0.stage == stage })?.output
    }

    public init(
        config: JSON, input: JSON, jobID: String, userID: String, stepID: String, item: Int? = nil, attempt: Int, timeout: Duration,
        feedback: JSON? = nil, previous: [PreviousStep] = [], records: any StageRecords = NoRecords()
    ) {
        self.item = item
        self.feedback = feedback
        self.previous = previous
        self.records = records
        self.config = config
        self.input = input
        self.jobID = jobID
        self.userID = userID
        self.stepID = stepID
        self.attempt = attempt
        self.timeout = timeout
    }
}

/// A unit of pipeline work, registered by name in a `StageRegistry`. Adding a stage is one type
/// conforming to this protocol plus one registration line.
public protocol Stage: Sendable {
    /// Name, config schema and retry defaults.
    var descriptor: StageDescriptor { get }

    /// Runs one attempt. Throws `StepError` with a class the retry policy understands.
    func run(_ context: StageContext) async throws(StepError) -> JSON

    /// Whether an attempt with this (rendered) config acts outside the job's own state: calls a
    /// model or a service, writes records, emits events, touches files. Such a step starts only
    /// once its start is committed (its lease checked), and its checkpoint is in the first flush
    /// after it returns. A step without outside effects neither waits for its start nor for its
    /// checkpoint: a crash before they commit runs it again, which changes nothing outside.
    /// Default: true.
    func hasOutsideEffects(_ config: JSON) -> Bool

    /// Whether a step with outside effects may run while its start commits, when its job's lease
    /// provably holds (early in the claim, and the job never taken over): for a stage whose effect
    /// is a call that takes long against the commit (a model's reply), so that the call is not
    /// held back by it. The step's result is taken only once its start is committed, so its
    /// checkpoint and its outputs are as safe as ever. The price: a daemon killed in the few
    /// milliseconds between the call and its start's commit leaves no interrupted attempt of that
    /// call behind (the step runs again on resume all the same). Default: false.
    func runsWhileStartCommits(_ config: JSON) -> Bool
}

extension Stage {
    public var name: String { descriptor.name }

    public func hasOutsideEffects(_ config: JSON) -> Bool { true }

    public func runsWhileStartCommits(_ config: JSON) -> Bool { false }
}

/// The stages known to this daemon, by name.
public struct StageRegistry: Sendable {
    private var stages: [String: any Stage] = [:]

    public init() {}

    /// A registry holding `stages`.
    public init(_ stages: [any Stage]) throws(RegistrationError) {
        for stage in stages { try register(stage) }
    }

    /// Two stages with one name.
    public struct RegistrationError: Error, Sendable, CustomStringConvertible {
        public var name: String
        public var description: String { "stage '\(name)' is registered twice" }
    }

    /// Adds `stage`; a name may be registered once.
    public mutating func register(_ stage: any Stage) throws(RegistrationError) {
        guard stages[stage.name] == nil else { throw RegistrationError(name: stage.name) }
        stages[stage.name] = stage
    }

    /// The stage called `name`.
    public func stage(named name: String) -> (any Stage)? {
        stages[name]
    }

    /// All registered names, sorted.
    public var names: [String] { stages.keys.sorted() }

    /// All descriptors, sorted by name.
    public var descriptors: [StageDescriptor] { names.map { stages[$0]!.descriptor } }
}
