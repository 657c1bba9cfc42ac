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
    /// SHA-256 of the canonical form (hex): equal content gives an equal version, whatever the formatting.
    public var version: String
    /// The pipeline as canonical JSON, stored with the version so a job can run on it after a reload.
    public var canonical: JSON

    /// The step called `id`.
    public func step(_ id: String) -> PipelineStep? {
        steps.first(where: { $0.id == id })
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
    /// Where the step is declared.
    public var location: SourceLocation
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
