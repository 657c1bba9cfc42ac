public import GenflowCore
public import GenflowPostgres

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

extension StoreSession {
    /// Upserts the job's prompt (completed), its canvas (a child of the prompt, or the user's
    /// existing canvas) and the objects, keyed by job id: running it again for the same job
    /// replaces what it wrote instead of adding rows. Nil canvas id when `canvasID` is not the user's.
    public func persistCanvas(_ record: CanvasRecord) throws -> (promptID: String, canvasID: String)? {
        let promptID = try connection.query("""
            INSERT INTO genflow.prompts (id, user_id, job_id, instructions, style, color_scheme, status, request_metadata)
            VALUES (gen_random_uuid(), $1, $2::uuid, $3, $4, $5, 'completed', $6::jsonb)
            ON CONFLICT (job_id) DO UPDATE SET status = 'completed', request_metadata = excluded.request_metadata, error = NULL, updated_at = now()
            RETURNING id::text
            """, [record.userID, record.jobID, record.instructions, record.style, record.colorScheme, record.metadata]).rows.first?["id"] ?? ""
        let canvasID: String
        if let existing = record.canvasID {
            guard let owned = try connection.query(
                "SELECT id::text FROM genflow.canvases WHERE id::text = $1 AND user_id = $2", [existing, record.userID]
            ).rows.first?["id"] else { return nil }
            canvasID = owned
        } else {
            canvasID = try connection.query("""
                INSERT INTO genflow.canvases (id, user_id, prompt_id, job_id) VALUES (gen_random_uuid(), $1, $2::uuid, $3::uuid)
                ON CONFLICT (job_id) WHERE job_id IS NOT NULL DO UPDATE SET updated_at = now()
                RETURNING id::text
                """, [record.userID, promptID, record.jobID]).rows.first?["id"] ?? ""
        }
        try connection.query("DELETE FROM genflow.canvas_objects WHERE canvas_id = $1::uuid AND job_id = $2::uuid", [canvasID, record.jobID])
        try connection.query("""
            INSERT INTO genflow.canvas_objects (canvas_id, object_id, position, type, data, job_id)
            SELECT $1::uuid, o->>'id', n, o->>'type', o, $3::uuid FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(o, n)
            ON CONFLICT (canvas_id, object_id) DO UPDATE SET position = excluded.position, type = excluded.type, data = excluded.data, job_id = excluded.job_id
            """, [canvasID, JSON.array(record.objects), record.jobID])
        return (promptID, canvasID)
    }

    /// A canvas's objects in order.
    public func canvasObjects(canvasID: String) throws -> [JSON] {
        try connection.query("SELECT data::text FROM genflow.canvas_objects WHERE canvas_id = $1::uuid ORDER BY position", [canvasID])
            .rows.compactMap { $0["data"] }.map { try JSON(parsing: $0) }
    }
}
