/// The product's records that stages write (prompts, canvases, images): plain values, shared by
/// the stages that make them and the store that keeps them.

/// Where a prompt is in its life.
public enum PromptStatus: String, Sendable, CaseIterable {
    case pending, processing, completed, failed
}

/// What `persist.canvas` records for one job.
public struct CanvasRecord: Sendable {
    public var jobID: String
    public var userID: String
    public var instructions: String
    public var style: String?
    public var colorScheme: String?
    /// An existing canvas of the user's to add the objects to; nil = the job's own canvas.
    public var canvasID: String?
    public var objects: [JSON]
    public var metadata: JSON

    public init(jobID: String, userID: String, instructions: String, style: String?, colorScheme: String?, canvasID: String?, objects: [JSON], metadata: JSON) {
        self.jobID = jobID
        self.userID = userID
        self.instructions = instructions
        self.style = style
        self.colorScheme = colorScheme
        self.canvasID = canvasID
        self.objects = objects
        self.metadata = metadata
    }
}

/// Metadata of one generated image, as `persist.image` records it (SPEC §6 and §9's fields).
public struct ImageRecord: Sendable {
    public var prompt: String
    public var fullPrompt: String?
    public var imageURL: String?
    public var datasetID: String?
    public var style: String?
    public var aspectRatio: String?
    public var quality: String?
    public var format: String?
    public var resolution: String?
    public var referenceImagesCount: Int
    /// Where the image's bytes are, relative to the state directory, when the provider sent bytes.
    public var filePath: String?
    public var byteCount: Int?

    public init(
        prompt: String, fullPrompt: String?, imageURL: String?, datasetID: String?, style: String?, aspectRatio: String?,
        quality: String?, format: String?, resolution: String?, referenceImagesCount: Int, filePath: String? = nil, byteCount: Int? = nil
    ) {
        self.prompt = prompt
        self.fullPrompt = fullPrompt
        self.imageURL = imageURL
        self.datasetID = datasetID
        self.style = style
        self.aspectRatio = aspectRatio
        self.quality = quality
        self.format = format
        self.resolution = resolution
        self.referenceImagesCount = referenceImagesCount
        self.filePath = filePath
        self.byteCount = byteCount
    }
}

/// An event a stage emits to the job's user (and the job's channel); the engine adds the job,
/// the user and the step.
public struct StageEvent: Sendable {
    public var type: String
    public var data: JSON

    public init(type: String, data: JSON = [:]) {
        self.type = type
        self.data = data
    }

    public init(type: EventType, data: JSON = [:]) {
        self.init(type: type.rawValue, data: data)
    }
}

/// A record a stage writes with its step's checkpoint (`StageRecords.withCheckpoint`).
public enum RecordWrite: Sendable {
    /// An event, sent once the step is checkpointed.
    case event(StageEvent)
    /// The job's prompt (upserted by job: a completed prompt stays completed), under `promptID`
    /// when the job has none yet.
    case prompt(CanvasRecord, status: PromptStatus, promptID: String)
    /// The job's prompt, completed, and its canvas objects: on the user's canvas `record.canvasID`,
    /// or on the job's own canvas (`canvasID` when it has none yet).
    case canvas(CanvasRecord, promptID: String, canvasID: String)
    /// Images of the step, by position (upserted by job, step and position), under `ids` when new.
    case images([ImageRecord], ids: [String])
    /// Ends a budget hold (`StageRecords.holdSpend`): the call's cost is the step's `cost` now.
    case releaseSpendHold(Int64)
}
