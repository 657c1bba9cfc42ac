public import GenflowCore

/// A loaded, validated pipeline: what a job runs. Immutable; a reload makes a new one with a new version.
public struct Pipeline: Sendable {
    public var name: String
    public var description: String
    /// The file it was loaded from.
    public var file: String
    /// Where `name:` is written.
    public var nameLocation: SourceLocation
    /// The schema job input is checked against (defaults filled in at submission).
    public var input: JSONSchema
    public var steps: [PipelineStep]
    /// The order the steps run in (`needs`).
    public var graph: StepGraph
    /// SHA-256 of the canonical form (hex): equal content gives an equal version, whatever the formatting.
    public var version: String
    /// The pipeline as canonical JSON, stored with the version so a job can run on it after a reload.
    public var canonical: JSON

    /// The step called `id`.
    public func step(_ id: String) -> PipelineStep? {
        graph.position[id].map { steps[$0] }
    }

    /// The first 12 hex digits of the version, for display.
    public var shortVersion: String { String(version.prefix(12)) }
}

/// One step of a pipeline.
public struct PipelineStep: Sendable {
    public var id: String
    /// The registered stage name.
    public var stage: String
    /// The `with:` block as written.
    public var config: JSON
    /// `with:` compiled for rendering.
    public var template: ValueTemplate
    /// The merged policy: step, then pipeline defaults, then the stage's defaults.
    public var retry: RetryPolicy
    public var onInvalid: OnInvalid?
    /// The steps that must complete before this one runs: `needs:` as written, or else the step
    /// written above it (none for the first).
    public var needs: [String]
    /// `for_each:` — the step runs once per item of the list (or number) this renders to.
    public var forEach: ForEach?
    /// `continue_on_error:` — when the step fails for good, its output carries the error and the
    /// steps that need it still run; the job does not fail.
    public var continueOnError: Bool
    /// Where the step is declared.
    public var location: SourceLocation
}

/// `for_each:` of a step: what it renders to gives the items (a list, or a number n for 0..<n),
/// each run as an item of its own (`{{item}}`, `{{index}}`), at most `maxParallel` at once.
public struct ForEach: Sendable {
    public var items: ValueTemplate
    public var maxParallel: Int

    public init(items: ValueTemplate, maxParallel: Int) {
        self.items = items
        self.maxParallel = maxParallel
    }

    /// Accepted values of `max_parallel`, and its default.
    public static let maxParallelRange = 1...1_000
    public static let defaultMaxParallel = 10
    /// Most items one step may run over.
    public static let maxItems = 10_000

    /// The items `rendered` stands for, or why it stands for none.
    public static func items(of rendered: JSON) -> Result<[JSON], StepError> {
        switch rendered {
        case .array(let elements) where elements.count <= maxItems:
            return .success(elements)
        case .int(let count) where (0...maxItems).contains(count):
            return .success((0..<count).map { .int($0) })
        case .double(let count) where count.rounded() == count && (0...Double(maxItems)).contains(count):
            return .success((0..<Int(count)).map { .int($0) })
        case .array(let elements):
            return .failure(StepError(.invalidRequest, "for_each gave \(elements.count) items; at most \(maxItems) are allowed"))
        case .int, .double:
            return .failure(StepError(.invalidRequest, "for_each gave \(rendered); a number of items must be between 0 and \(maxItems)"))
        default:
            return .failure(StepError(.invalidRequest, "for_each gave a value of type \(rendered.typeName), not a list or a number of items"))
        }
    }
}

/// `on_invalid:` — when this step fails with `output_invalid`, run `retryStep` again (at most `max`
/// times), passing it the validation errors.
public struct OnInvalid: Sendable, Hashable {
    public var retryStep: String
    public var max: Int

    public init(retryStep: String, max: Int) {
        self.retryStep = retryStep
        self.max = max
    }

    /// Accepted values of `max`.
    public static let maxRange = 1...10
}
