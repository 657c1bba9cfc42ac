/// Every event the daemon writes itself: the one catalogue the engine, the stages, the API, the
/// CLI, the docs (`docs/api.md`, checked by a test) and the tests name events from. Pipelines
/// (`notify`) and plugins name their own events; a name under a prefix of these would let them
/// forge a job's lifecycle, so it is refused (`isReserved`).
public enum EventType: String, Sendable, Hashable, CaseIterable {
    /// A job's first attempt started: `{pipeline, version}`.
    case jobStarted = "job.started"
    /// A job ended completed: `{pipeline, cost}`.
    case jobCompleted = "job.completed"
    /// A job ended failed: `{error: {class, message, step, reason}}`.
    case jobFailed = "job.failed"
    /// A job was cancelled: `{error}`, and `{while}` when it had not run.
    case jobCancelled = "job.cancelled"
    /// A job was queued: `{pipeline, priority}`, `{retry: true, generation}` (a retry) or `{released: true}` (shutdown).
    case jobQueued = "job.queued"
    /// An attempt of a step (or item) started: `{attempt, stage, daemon, item?}`.
    case stepStarted = "step.started"
    /// A step (or item) was checkpointed: `{duration_ms, cost?, error?, continued?, item?}`, or a
    /// for_each step gathered: `{items}`.
    case stepCompleted = "step.completed"
    /// A step (or item) will run again: `{attempt, delay_ms, error, item?}` or `{reason: on_invalid, retry_step, error}`.
    case stepRetrying = "step.retrying"
    /// A running step's progress: `{fraction?, text?, ...}` (coalesced per job and step on a slow socket).
    case stepProgress = "step.progress"
    /// Canvas objects complete so far in a streaming reply: `{objects}`.
    case canvasObjects = "canvas.objects"
    /// The user's balance changed: `{balance, change, reason, transaction_id}`.
    case tokenBalanceUpdated = "token_balance_updated"
    /// A pipeline version was loaded (operators' channel): `{name, version, file}`.
    case pipelineLoaded = "pipeline.loaded"
    /// A pipeline file was removed: `{name}`.
    case pipelineRemoved = "pipeline.removed"
    /// A pipeline file was rejected on reload: `{file, error}`.
    case pipelineRejected = "pipeline.rejected"

    /// The events that end a job.
    public static let jobEnds: Set<EventType> = [.jobCompleted, .jobFailed, .jobCancelled]

    public static let reservedPrefixes = ["job.", "step.", "canvas.", "pipeline.", "token_balance_updated"]

    /// Whether `name` is the daemon's own (a prefix of the catalogue's).
    public static func isReserved(_ name: String) -> Bool { reservedPrefixes.contains(where: name.hasPrefix) }
}
