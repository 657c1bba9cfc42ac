public import GenflowCore
public import GenflowPostgres
internal import Foundation

extension StoreSession {
    /// Upserts the prompts of jobs by job id, one statement: a new one under its row's id; an
    /// existing one keeps its id, merges its metadata and stays completed once completed.
    func writePrompts(_ rows: [JobBatch.PromptRow]) throws {
        guard !rows.isEmpty else { return }
        let records = rows.map(\.record)
        try connection.query("""
            INSERT INTO genflow.prompts (id, user_id, job_id, instructions, style, color_scheme, status, request_metadata)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[])
            ON CONFLICT (job_id) DO UPDATE SET
                status = CASE WHEN prompts.status = 'completed' THEN 'completed' ELSE excluded.status END,
                request_metadata = prompts.request_metadata || excluded.request_metadata, error = NULL, updated_at = now()
            """, [
                PostgresArray(rows.map(\.id)), PostgresArray(records.map(\.userID)), PostgresArray(records.map(\.jobID)),
                PostgresArray(records.map(\.instructions)), PostgresArray(records.map(\.style)), PostgresArray(records.map(\.colorScheme)),
                PostgresArray(rows.map(\.status.rawValue)), PostgresArray(records.map(\.metadata.description)),
            ])
    }

    /// Writes canvas objects: each job's own canvas (a child of its prompt, created under the row's
    /// id when the job has none) or the user's canvas it names. The job's earlier objects on that
    /// canvas are replaced. Three statements for any number of canvases.
    func writeCanvases(_ rows: [JobBatch.CanvasRow]) throws {
        guard !rows.isEmpty else { return }
        var canvasOfJob: [String: String] = [:]
        let own = rows.filter(\.isJobCanvas)
        if !own.isEmpty {
            for row in try connection.query("""
                INSERT INTO genflow.canvases (id, user_id, prompt_id, job_id)
                SELECT c.id, c.user_id, p.id, c.job_id FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS c(id, user_id, job_id)
                LEFT JOIN genflow.prompts p ON p.job_id = c.job_id
                ON CONFLICT (job_id) WHERE job_id IS NOT NULL DO UPDATE SET updated_at = now()
                RETURNING id::text, job_id::text
                """, [PostgresArray(own.map(\.id)), PostgresArray(own.map(\.record.userID)), PostgresArray(own.map(\.record.jobID))]).rows {
                if let job = row["job_id"], let id = row["id"] { canvasOfJob[job] = id }
            }
        }
        let targets = rows.map { ($0.record.canvasID ?? canvasOfJob[$0.record.jobID] ?? $0.id, $0.record.jobID) }
        try connection.query("""
            DELETE FROM genflow.canvas_objects o USING unnest($1::uuid[], $2::uuid[]) AS d(canvas_id, job_id)
            WHERE o.canvas_id = d.canvas_id AND o.job_id = d.job_id
            """, [PostgresArray(targets.map(\.0)), PostgresArray(targets.map(\.1))])
        var canvas: [String] = [], position: [Int] = [], data: [String] = [], job: [String] = []
        for (row, target) in zip(rows, targets) {
            for (index, object) in row.record.objects.enumerated() {
                canvas.append(target.0)
                position.append(index + 1)
                data.append(object.description)
                job.append(target.1)
            }
        }
        guard !canvas.isEmpty else { return }
        try connection.query("""
            INSERT INTO genflow.canvas_objects (canvas_id, object_id, position, type, data, job_id)
            SELECT canvas_id, data->>'id', position, data->>'type', data, job_id
            FROM unnest($1::uuid[], $2::int[], $3::jsonb[], $4::uuid[]) AS o(canvas_id, position, data, job_id)
            ON CONFLICT (canvas_id, object_id) DO UPDATE SET position = excluded.position, type = excluded.type, data = excluded.data, job_id = excluded.job_id
            """, [PostgresArray(canvas), PostgresArray(position), PostgresArray(data), PostgresArray(job)])
    }

    /// Whether `canvasID` is one of the user's canvases (any text: a malformed id is simply not one).
    public func userOwnsCanvas(_ canvasID: String, userID: String) throws -> Bool {
        try !connection.query("SELECT 1 FROM genflow.canvases WHERE id::text = $1 AND user_id = $2", [canvasID, userID]).rows.isEmpty
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
