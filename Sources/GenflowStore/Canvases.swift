public import GenflowCore
public import GenflowPostgres
internal import Foundation

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

extension StoreSession {
    /// Upserts the job's prompt (completed), its canvas (a child of the prompt, or the user's
    /// existing canvas) and the objects, keyed by job id: running it again for the same job
    /// replaces what it wrote instead of adding rows. Nil canvas id when `canvasID` is not the user's.
    public func persistCanvas(_ record: CanvasRecord) throws -> (promptID: String, canvasID: String)? {
        let promptID = try recordPrompt(record, status: .completed)
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

    /// Upserts the job's prompt with `status` (keyed by job id) and returns its id. A prompt
    /// already completed stays completed.
    @discardableResult
    public func recordPrompt(_ record: CanvasRecord, status: PromptStatus) throws -> String {
        try connection.query("""
            INSERT INTO genflow.prompts (id, user_id, job_id, instructions, style, color_scheme, status, request_metadata)
            VALUES (gen_random_uuid(), $1, $2::uuid, $3, $4, $5, $6, $7::jsonb)
            ON CONFLICT (job_id) DO UPDATE SET
                status = CASE WHEN prompts.status = 'completed' THEN 'completed' ELSE excluded.status END,
                request_metadata = prompts.request_metadata || excluded.request_metadata, error = NULL, updated_at = now()
            RETURNING id::text
            """, [record.userID, record.jobID, record.instructions, record.style, record.colorScheme, status.rawValue, record.metadata]
        ).rows.first?["id"] ?? ""
    }

    /// Marks the prompt of a job that failed or was cancelled, unless it completed.
    func failPrompt(jobID: String, error: String) throws {
        try connection.query("""
            UPDATE genflow.prompts SET status = 'failed', error = $2, updated_at = now()
            WHERE job_id = $1::uuid AND status <> 'completed'
            """, [jobID, error])
    }

    /// A failed job queued again: its prompt is processing again.
    func reopenPrompt(jobID: String) throws {
        try connection.query("""
            UPDATE genflow.prompts SET status = 'processing', error = NULL, updated_at = now() WHERE job_id = $1::uuid AND status = 'failed'
            """, [jobID])
    }

    // MARK: History

    /// A user's prompts, newest first, each with its canvases and their objects (SPEC §9's shape).
    public func prompts(userID: String, before cursor: PageCursor? = nil, limit: Int = 50) throws -> [JSON] {
        try promptRows("""
            p.user_id = $1 AND ($2::timestamptz IS NULL OR (p.created_at, p.id) < ($2::timestamptz, $3::uuid))
            ORDER BY p.created_at DESC, p.id DESC LIMIT $4
            """, [userID, cursor?.createdAt, cursor?.id, limit])
    }

    /// One of the user's prompts; nil when there is none with that id for this user.
    public func prompt(id: String, userID: String) throws -> JSON? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try promptRows("p.user_id = $1 AND p.id = $2::uuid", [userID, id]).first
    }

    /// Deletes one of the user's prompts with its canvases and their objects; false when not found.
    public func deletePrompt(id: String, userID: String) throws -> Bool {
        guard UUID(uuidString: id) != nil else { return false }
        return try connection.query("DELETE FROM genflow.prompts WHERE id = $1::uuid AND user_id = $2", [id, userID]).affectedRows == 1
    }

    /// Counts of a user's prompts by status, the success rate of those finished, the last day's
    /// count and the objects drawn.
    public func promptStats(userID: String) throws -> JSON {
        let text = try connection.query("""
            SELECT json_build_object(
                'total', count(*),
                'by_status', json_build_object('pending', count(*) FILTER (WHERE status = 'pending'),
                    'processing', count(*) FILTER (WHERE status = 'processing'), 'completed', count(*) FILTER (WHERE status = 'completed'),
                    'failed', count(*) FILTER (WHERE status = 'failed')),
                'success_rate', round(count(*) FILTER (WHERE status = 'completed')::numeric
                    / nullif(count(*) FILTER (WHERE status IN ('completed', 'failed')), 0), 4),
                'last_24h', count(*) FILTER (WHERE created_at > now() - interval '1 day'),
                'objects', (SELECT count(*) FROM genflow.canvas_objects o JOIN genflow.canvases c ON c.id = o.canvas_id WHERE c.user_id = $1)
            )::text AS stats FROM genflow.prompts WHERE user_id = $1
            """, [userID]).rows.first?["stats"] ?? "{}"
        return try JSON(parsing: text)
    }

    /// Prompts matching `condition` (over `p`), as JSON. The canvases of a prompt are its own, and
    /// a canvas its job added objects to (then only those objects).
    private func promptRows(_ condition: String, _ parameters: [(any PostgresEncodable)?]) throws -> [JSON] {
        try connection.query("""
            SELECT json_build_object('id', p.id, 'job_id', p.job_id, 'instructions', p.instructions, 'style', p.style,
                'color_scheme', p.color_scheme, 'status', p.status, 'error', p.error, 'request_metadata', p.request_metadata,
                'created_at', genflow.iso(p.created_at), 'updated_at', genflow.iso(p.updated_at),
                'canvases', COALESCE((
                    SELECT json_agg(json_build_object('id', c.id, 'objects', COALESCE((
                        SELECT json_agg(o.data ORDER BY o.position) FROM genflow.canvas_objects o
                        WHERE o.canvas_id = c.id AND (c.prompt_id = p.id OR o.job_id = p.job_id)), '[]'::json)) ORDER BY c.created_at)
                    FROM genflow.canvases c
                    WHERE c.prompt_id = p.id OR c.id IN (SELECT canvas_id FROM genflow.canvas_objects WHERE job_id = p.job_id)
                ), '[]'::json))::text AS prompt
            FROM genflow.prompts p WHERE \(condition)
            """, parameters).rows.compactMap { $0["prompt"] }.map { try JSON(parsing: $0) }
    }

    /// The canvas objects a job saved, in order (`genflow test`).
    public func canvasObjects(jobID: String) throws -> [JSON] {
        try connection.query("SELECT data::text FROM genflow.canvas_objects WHERE job_id = $1::uuid ORDER BY canvas_id, position", [jobID])
            .rows.compactMap { $0["data"] }.map { try JSON(parsing: $0) }
    }

    /// A canvas's objects in order.
    public func canvasObjects(canvasID: String) throws -> [JSON] {
        try connection.query("SELECT data::text FROM genflow.canvas_objects WHERE canvas_id = $1::uuid ORDER BY position", [canvasID])
            .rows.compactMap { $0["data"] }.map { try JSON(parsing: $0) }
    }
}
