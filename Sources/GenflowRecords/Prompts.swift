public import GenflowCore
public import GenflowPostgres
public import GenflowQueue
internal import Foundation

/// A user's prompt with the canvases its job drew on (SPEC §9's history).
public struct Prompt: Sendable, Hashable {
    public var id: String
    public var jobID: String?
    public var instructions: String
    public var style: String?
    public var colorScheme: String?
    public var status: PromptStatus
    public var error: String?
    public var requestMetadata: JSON
    public var createdAt: String
    public var updatedAt: String
    /// The prompt's own canvas, and each canvas of the user's its job added objects to (then only
    /// those objects), oldest first.
    public var canvases: [Canvas]
}

/// A canvas and its objects, in order.
public struct Canvas: Sendable, Hashable {
    public var id: String
    public var objects: [JSON]
}

/// Counts of a user's prompts.
public struct PromptStats: Sendable, Hashable {
    public var total: Int
    public var byStatus: [PromptStatus: Int]
    /// Completed among those finished (completed or failed), to 4 places; nil before any finished.
    public var successRate: Double?
    public var lastDay: Int
    /// Objects on the user's canvases.
    public var objects: Int
}

extension StoreSession {
    /// Upserts the prompts of jobs by job id, one statement: a new one under its row's id; an
    /// existing one keeps its id, merges its metadata and stays completed once completed.
    func writePrompts(_ rows: [RecordBatch.PromptRow]) throws {
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
                PostgresArray(rows.map(\.status.rawValue)), PostgresArray(records.map(\.metadata.jsonbText)),
            ])
    }

    /// Writes canvas objects: each job's own canvas (a child of its prompt, created under the row's
    /// id when the job has none) or the user's canvas it names. The job's earlier objects on that
    /// canvas are replaced. Three statements for any number of canvases.
    func writeCanvases(_ rows: [RecordBatch.CanvasRow]) throws {
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
                data.append(object.jsonbText)
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

    /// Marks the prompts of jobs that failed or were cancelled (job id, error), unless completed.
    func failPrompts(_ failures: [(jobID: String, error: String)]) throws {
        guard !failures.isEmpty else { return }
        try connection.query("""
            UPDATE genflow.prompts p SET status = 'failed', error = u.error, updated_at = now()
            FROM unnest($1::uuid[], $2::text[]) AS u(job_id, error) WHERE p.job_id = u.job_id AND p.status <> 'completed'
            """, [PostgresArray(failures.map(\.jobID)), PostgresArray(failures.map(\.error))])
    }

    /// Cancels a job (`cancel(jobID:userID:)`); a job cancelled before it ran fails its prompt.
    public func cancelJob(id: String, userID: String? = nil) throws -> CancelOutcome {
        let outcome = try cancel(jobID: id, userID: userID)
        if case .cancelled(let job) = outcome { try failPrompts([(job.id, "cancelled")]) }
        return outcome
    }

    /// Queues a failed or cancelled job again (`retry(jobID:userID:)`): its prompt is processing again.
    public func retryJob(id: String, userID: String? = nil) throws -> (job: Job?, status: JobStatus?) {
        let outcome = try retry(jobID: id, userID: userID)
        if let job = outcome.job {
            try connection.query("""
                UPDATE genflow.prompts SET status = 'processing', error = NULL, updated_at = now() WHERE job_id = $1::uuid AND status = 'failed'
                """, [job.id])
        }
        return outcome
    }

    // MARK: History

    /// A user's prompts, newest first, each with its canvases and their objects.
    public func prompts(userID: String, before cursor: PageCursor? = nil, limit: Int = 50) throws -> [Prompt] {
        try prompts("""
            user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
            ORDER BY created_at DESC, id DESC LIMIT $4
            """, [userID, cursor?.createdAt, cursor?.id, limit])
    }

    /// One of the user's prompts; nil when there is none with that id for this user.
    public func prompt(id: String, userID: String) throws -> Prompt? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try prompts("user_id = $1 AND id = $2::uuid", [userID, id]).first
    }

    /// Deletes one of the user's prompts with its canvases and their objects; false when not found.
    public func deletePrompt(id: String, userID: String) throws -> Bool {
        guard UUID(uuidString: id) != nil else { return false }
        return try connection.query("DELETE FROM genflow.prompts WHERE id = $1::uuid AND user_id = $2", [id, userID]).affectedRows == 1
    }

    /// Counts of a user's prompts by status, the success rate of those finished, the last day's
    /// count and the objects drawn.
    public func promptStats(userID: String) throws -> PromptStats {
        let row = try connection.query("""
            SELECT count(*) AS total,
                count(*) FILTER (WHERE status = 'pending') AS pending, count(*) FILTER (WHERE status = 'processing') AS processing,
                count(*) FILTER (WHERE status = 'completed') AS completed, count(*) FILTER (WHERE status = 'failed') AS failed,
                round(count(*) FILTER (WHERE status = 'completed')::numeric
                    / nullif(count(*) FILTER (WHERE status IN ('completed', 'failed')), 0), 4)::text AS success_rate,
                count(*) FILTER (WHERE created_at > now() - interval '1 day') AS last_day,
                (SELECT count(*) FROM genflow.canvas_objects o JOIN genflow.canvases c ON c.id = o.canvas_id WHERE c.user_id = $1) AS objects
            FROM genflow.prompts WHERE user_id = $1
            """, [userID]).rows.first
        return PromptStats(
            total: row?.decode("total") ?? 0,
            byStatus: Dictionary(uniqueKeysWithValues: PromptStatus.allCases.map { ($0, row?.decode($0.rawValue) ?? 0) }),
            successRate: row?["success_rate"].flatMap(Double.init), lastDay: row?.decode("last_day") ?? 0, objects: row?.decode("objects") ?? 0
        )
    }

    /// Prompts matching `condition` (over `genflow.prompts`), then their canvases and objects in
    /// one statement. The canvases of a prompt are its own, and a canvas its job added objects to
    /// (then only those objects).
    private func prompts(_ condition: String, _ parameters: [(any PostgresEncodable)?]) throws -> [Prompt] {
        var prompts = try connection.query("""
            SELECT id::text, job_id::text, instructions, style, color_scheme, status, error, request_metadata::text,
                genflow.iso(created_at) AS created_at, genflow.iso(updated_at) AS updated_at
            FROM genflow.prompts WHERE \(condition)
            """, parameters).rows.map { row in
            Prompt(
                id: row["id"] ?? "", jobID: row["job_id"], instructions: row["instructions"] ?? "", style: row["style"],
                colorScheme: row["color_scheme"], status: row["status"].flatMap(PromptStatus.init(rawValue:)) ?? .pending, error: row["error"],
                requestMetadata: try JSON(parsing: row["request_metadata"] ?? "{}"), createdAt: row["created_at"] ?? "", updatedAt: row["updated_at"] ?? "",
                canvases: []
            )
        }
        guard !prompts.isEmpty else { return [] }
        var canvases: [String: [Canvas]] = [:]
        for row in try connection.query("""
            SELECT p.id::text AS prompt_id, c.id::text AS canvas_id, o.data::text AS data
            FROM unnest($1::uuid[], $2::uuid[]) AS p(id, job_id)
            JOIN genflow.canvases c ON c.prompt_id = p.id OR c.id IN (SELECT canvas_id FROM genflow.canvas_objects WHERE job_id = p.job_id)
            LEFT JOIN genflow.canvas_objects o ON o.canvas_id = c.id AND (c.prompt_id = p.id OR o.job_id = p.job_id)
            ORDER BY p.id, c.created_at, c.id, o.position
            """, [PostgresArray(prompts.map(\.id)), PostgresArray(prompts.map(\.jobID))]).rows {
            guard let prompt = row["prompt_id"], let canvas = row["canvas_id"] else { continue }
            canvases[prompt, default: []].add(try row["data"].map { try JSON(parsing: $0) }, to: canvas)
        }
        for index in prompts.indices { prompts[index].canvases = canvases[prompts[index].id] ?? [] }
        return prompts
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

extension [Canvas] {
    /// Adds `object` (nil: none, the canvas is empty) to canvas `id`, the last one or a new one after it.
    fileprivate mutating func add(_ object: JSON?, to id: String) {
        if last?.id != id { append(Canvas(id: id, objects: [])) }
        if let object { self[count - 1].objects.append(object) }
    }
}
