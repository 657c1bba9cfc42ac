public import GenflowCore
public import GenflowPostgres
internal import Foundation

/// The job queue and event log in PostgreSQL. Every method is one transaction (or one read) on
/// a pool thread; writes that report a change record its event in the same transaction and wake
/// listeners with one NOTIFY per transaction.
public struct JobStore: Sendable {
    public let pool: DatabasePool

    /// NOTIFY channel: jobs became runnable (submitted, rescheduled, released).
    public static let jobsChannel = "genflow_jobs"
    /// NOTIFY channel: jobs were queued to run later (submitted with a future `run_at`, waiting for a
    /// retry): the next job due may be sooner than a daemon last read.
    public static let scheduledChannel = "genflow_scheduled"
    /// NOTIFY channel: events were committed.
    public static let eventsChannel = "genflow_events"
    /// NOTIFY channel: a running job was asked to cancel.
    public static let cancelChannel = "genflow_cancel"

    public init(pool: DatabasePool) {
        self.pool = pool
    }

    /// How the engine's transactions begin (the writer's flushes, claims). Their statements reach
    /// rows by key, but PostgreSQL prices a hundred index probes above one scan of a table of a
    /// few thousand rows: on a young database it updated a flush's jobs and attempts, and a
    /// claim's jobs, through a sequential scan and a hash join (2–40 ms a statement under the
    /// model bench, against 1–4 ms by key; `auto_explain`). Scans stay possible where no index
    /// serves; they only stop looking cheap.
    ///
    /// And each prepared statement runs on its generic plan, made once per connection. PostgreSQL
    /// prices `unnest` of an array it can read (a custom plan's parameters) by the array's length,
    /// and of a parameter as ten rows: with one or two jobs a flush, a custom plan always looked
    /// cheaper, and the attempts' UPDATE was planned again at every execution (0.16 ms, as long as
    /// the statement itself: 338 of 523 ms while submissions ran at once). The claim was planned
    /// again at each call too, and its planning read `jobs_ready`'s end to price `run_at <= now()`,
    /// through the entries of every job claimed since the last vacuum (0.3–2 ms a plan).
    public static let beginByKey = "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan"

    /// Runs `body` in one transaction, opened by `begin`; notifications it asked for go with the COMMIT.
    public func write<T: Sendable>(begin: String = "BEGIN", _ body: @escaping @Sendable (StoreSession) throws -> T) async throws -> T {
        try await pool.withConnection { connection in
            let session = StoreSession(connection)
            return try connection.transaction({ _ in
                let value = try body(session)
                try session.flushEvents()
                return value
            }, begin: begin, beforeCommit: { session.notifications })
        }
    }

    /// Enqueues jobs in one statement, outside any transaction (`StoreSession.submit`).
    public func submit(_ submissions: [JobSubmission]) async throws -> [(job: Job, created: Bool)] {
        try await pool.withConnection { try StoreSession($0).submit(submissions) }
    }

    /// Runs `body` outside a transaction (reads).
    public func read<T: Sendable>(_ body: @escaping @Sendable (StoreSession) throws -> T) async throws -> T {
        try await pool.withConnection { connection in try body(StoreSession(connection)) }
    }
}

/// A job claimed by a worker.
public struct ClaimedJob: Sendable {
    public var job: Job
    /// True when the job was taken over from a daemon whose lease expired.
    public var wasRescued: Bool
}

/// What a cancel request did.
public enum CancelOutcome: Sendable, Hashable {
    /// The job was queued or waiting: it is cancelled now.
    case cancelled(Job)
    /// The job is running: its daemon was told to stop the step.
    case requested(Job)
    /// The job's state does not allow it (it has finished).
    case notAllowed(JobStatus)
    case notFound
}

/// What a job submission carries.
public struct JobSubmission: Sendable {
    public var pipeline: String
    public var pipelineVersion: String
    public var userID: String
    public var input: JSON
    public var priority: Int
    public var idempotencyKey: String?
    /// ISO 8601 time before which the job does not run; nil = now.
    public var runAt: String?

    public init(pipeline: String, pipelineVersion: String, userID: String, input: JSON, priority: Int = 0, idempotencyKey: String? = nil, runAt: String? = nil) {
        self.pipeline = pipeline
        self.pipelineVersion = pipelineVersion
        self.userID = userID
        self.input = input
        self.priority = priority
        self.idempotencyKey = idempotencyKey
        self.runAt = runAt
    }
}

/// Thrown when a daemon writes for a job it no longer owns (its lease expired and another
/// daemon took the job): the write is refused and the local run must stop.
public struct LeaseLost: Error, Sendable {
    public var jobID: String

    public init(jobID: String) {
        self.jobID = jobID
    }
}

/// Queue and event operations on one connection, composable into one transaction.
public final class StoreSession {
    /// For the modules that keep their tables in this transaction (GenflowRecords).
    package let connection: PostgresConnection
    private var wroteEvents = false
    private var wokeWorkers = false
    private var scheduled = false
    private var askedCancel = false
    private var pendingEvents: [NewEvent] = []

    init(_ connection: PostgresConnection) {
        self.connection = connection
    }

    /// Asks for `NOTIFY genflow_jobs` at commit: jobs became runnable.
    func wakeWorkers() {
        wokeWorkers = true
    }

    /// Asks for `NOTIFY genflow_scheduled` at commit: jobs were queued for later.
    func announceScheduled() {
        scheduled = true
    }

    /// The NOTIFY statements this transaction asked for, sent with its COMMIT.
    var notifications: String {
        [(wroteEvents, JobStore.eventsChannel), (wokeWorkers, JobStore.jobsChannel), (scheduled, JobStore.scheduledChannel), (askedCancel, JobStore.cancelChannel)]
            .filter(\.0).map { "NOTIFY \($0.1);" }.joined()
    }

    // MARK: Events

    /// Inserts the event rows of array parameters `$1…$6` (`NewEvent.columns`), ids in array order.
    static let insertEvents = """
        INSERT INTO genflow.events (user_id, job_id, type, step, data, more)
        SELECT user_id, job_id, type, step, data, more
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::json[])
            WITH ORDINALITY AS e(user_id, job_id, type, step, data, more, n) ORDER BY n
        """

    /// Records events in this transaction. They are inserted together, in order, by one
    /// statement when the transaction's work is done (`JobStore.write`), or by `flushEvents`.
    public func append(_ events: [NewEvent]) throws {
        pendingEvents += events
    }

    /// Records an event in this transaction.
    public func append(_ event: NewEvent) throws {
        pendingEvents.append(event)
    }

    /// Inserts the events appended so far.
    public func flushEvents() throws {
        guard !pendingEvents.isEmpty else { return }
        try connection.query(Self.insertEvents, NewEvent.columns(pendingEvents))
        pendingEvents = []
        wroteEvents = true
    }

    /// Events after `cursor` (a `(tx, id)` pair) that every earlier transaction has made visible,
    /// in delivery order, at most `limit`. A bigserial id alone is not commit order: this never
    /// returns an event while an older transaction that might still add one before it is open.
    /// With `through`, only events up to that position (a replay that joins a live stream there).
    ///
    /// A row holds up to `NewEvent.perRow` events with consecutive ids from the row's: the row of
    /// the event at `cursor` starts at most that far before it, and its events up to `cursor` are
    /// left out here.
    public func events(
        after cursor: EventCursor, through end: EventCursor? = nil, userID: String? = nil, jobID: String? = nil, limit: Int = 500
    ) throws -> [Event] {
        var events: [Event] = []
        // Rows are read after this row position: first the row that may hold `cursor`'s event.
        var row = EventCursor(tx: cursor.tx, id: cursor.id - Int64(NewEvent.perRow - 1))
        while events.count < limit {
            let wanted = limit - events.count
            let rows = try connection.query("""
                SELECT \(Event.columns) FROM genflow.events
                WHERE (tx, id) > ($1::xid8, $2::bigint) AND tx < pg_snapshot_xmin(pg_current_snapshot())
                  AND ($3::text IS NULL OR user_id = $3) AND ($4::uuid IS NULL OR job_id = $4::uuid)
                  AND ($6::xid8 IS NULL OR (tx, id) <= ($6::xid8, $7::bigint))
                ORDER BY events.tx, events.id LIMIT $5
                """, [row.tx, row.id, userID, jobID, wanted, end?.tx, end?.id]).rows
            for stored in rows {
                let held = try Event.events(row: stored)
                row = EventCursor(after: held[0])
                for event in held where events.count < limit {
                    let position = EventCursor(after: event)
                    if cursor < position && end.map({ position <= $0 }) ?? true { events.append(event) }
                }
            }
            if rows.count < wanted { break }
        }
        return events
    }

    /// The position of the last event every reader can see now: where a live stream starts.
    public func latestEventCursor() throws -> EventCursor {
        try connection.query("""
            SELECT tx::text AS position, id + coalesce(json_array_length(more), 0) AS id FROM genflow.events
            WHERE tx < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY events.tx DESC, events.id DESC LIMIT 1
            """).rows.first.map { EventCursor(tx: $0["position"] ?? "0", id: $0.decode("id") ?? 0) } ?? .start
    }

    /// The cursor just after event `id`, or nil when no such event is stored: the row that holds
    /// it is the last one starting at most `NewEvent.perRow - 1` before it.
    public func cursor(afterEvent id: Int64) throws -> EventCursor? {
        try connection.query("""
            SELECT tx::text FROM (
                SELECT tx, id + coalesce(json_array_length(more), 0) AS last FROM genflow.events
                WHERE id BETWEEN $1::bigint - $2::bigint AND $1::bigint ORDER BY id DESC LIMIT 1
            ) AS row WHERE last >= $1::bigint
            """, [id, NewEvent.perRow - 1]).rows.first.map {
            EventCursor(tx: $0["tx"] ?? "0", id: id)
        }
    }

    // MARK: Pipelines

    /// Stores a pipeline version so jobs can run on it after any reload.
    public func recordPipelineVersion(name: String, version: String, definition: JSON, file: String) throws {
        try connection.query("""
            INSERT INTO genflow.pipeline_versions (name, version, definition, file) VALUES ($1, $2, $3::jsonb, $4)
            ON CONFLICT (name, version) DO NOTHING
            """, [name, version, definition, file])
    }

    /// The stored definition of a pipeline version.
    public func pipelineDefinition(name: String, version: String) throws -> JSON? {
        try connection.query("SELECT definition::text FROM genflow.pipeline_versions WHERE name = $1 AND version = $2", [name, version])
            .rows.first.flatMap { $0["definition"] }.map { try JSON(parsing: $0) }
    }

    // MARK: Submitting and controlling jobs

    /// Enqueues a job; with an idempotency key already used by this user, returns that job instead.
    public func submit(_ submission: JobSubmission) throws -> (job: Job, created: Bool) {
        try submit([submission])[0]
    }

    /// Enqueues jobs, in order; a submission whose user already used its idempotency key (before,
    /// or earlier in this list) gets that job instead. One statement inserts the jobs, their
    /// `job.queued` events and the NOTIFYs, so outside a transaction (`JobStore.submit`) a batch is
    /// one round trip and one commit; a second one reads the jobs of keys already used, if any.
    public func submit(_ submissions: [JobSubmission]) throws -> [(job: Job, created: Bool)] {
        guard !submissions.isEmpty else { return [] }
        let ids = submissions.map { _ in UUID().uuidString.lowercased() }
        let inserted = try connection.query("""
            WITH job AS (
                INSERT INTO genflow.jobs (id, pipeline, pipeline_version, user_id, input, status, priority, run_at, idempotency_key)
                SELECT id, pipeline, version, user_id, input, 'queued', priority, coalesce(run_at, now()), key
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::int[], $7::timestamptz[], $8::text[])
                    WITH ORDINALITY AS s(id, pipeline, version, user_id, input, priority, run_at, key, n)
                ORDER BY n
                ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING \(Job.columns())
            ), queued AS (
                INSERT INTO genflow.events (user_id, job_id, type, data)
                SELECT user_id, id::uuid, 'job.queued', jsonb_build_object('pipeline', pipeline, 'priority', priority) FROM job
            ), notified AS (
                SELECT pg_notify('\(JobStore.jobsChannel)', ''), pg_notify('\(JobStore.eventsChannel)', '') FROM (SELECT FROM job LIMIT 1) AS any_job
            ), later AS (
                SELECT pg_notify('\(JobStore.scheduledChannel)', '') FROM (SELECT FROM unnest($7::timestamptz[]) AS r(at) WHERE r.at > now() LIMIT 1) AS any_later
            )
            SELECT job.* FROM job, (SELECT count(*) FROM notified) AS sent, (SELECT count(*) FROM later) AS sent_later
            """, [
                PostgresArray(ids), PostgresArray(submissions.map(\.pipeline)), PostgresArray(submissions.map(\.pipelineVersion)),
                PostgresArray(submissions.map(\.userID)), PostgresArray(submissions.map(\.input.jsonbText)),
                PostgresArray(submissions.map(\.priority)), PostgresArray(submissions.map(\.runAt)), PostgresArray(submissions.map(\.idempotencyKey)),
            ])
        var created: [String: Job] = [:]
        for row in inserted.rows {
            let job = try Job(row: row)
            created[job.id] = job
        }
        let reused = zip(ids, submissions).filter { created[$0.0] == nil }.map(\.1)
        var existing: [String: Job] = [:]
        if !reused.isEmpty {
            for row in try connection.query("""
                SELECT \(Job.columns("j")) FROM genflow.jobs j
                JOIN unnest($1::text[], $2::text[]) AS k(user_id, key) ON j.user_id = k.user_id AND j.idempotency_key = k.key
                """, [PostgresArray(reused.map(\.userID)), PostgresArray(reused.map(\.idempotencyKey))]).rows {
                let job = try Job(row: row)
                existing["\(job.userID)\u{0}\(job.idempotencyKey ?? "")"] = job
            }
        }
        return try zip(ids, submissions).map { id, submission in
            if let job = created[id] { return (job, true) }
            guard let job = existing["\(submission.userID)\u{0}\(submission.idempotencyKey ?? "")"] else {
                throw PostgresError(message: "idempotency conflict on a job that no longer exists")
            }
            return (job, false)
        }
    }

    /// Cancels a queued or waiting job now, or asks the daemon running it to stop.
    public func cancel(jobID: String, userID: String? = nil) throws -> CancelOutcome {
        guard let current = try job(id: jobID, userID: userID) else { return .notFound }
        guard JobStatus.cancellable.contains(current.status) else { return .notAllowed(current.status) }
        if current.status == .running {
            let rows = try connection.query("""
                UPDATE genflow.jobs SET cancel_requested = true, updated_at = now()
                WHERE id = $1::uuid AND status = 'running' RETURNING \(Job.columns())
                """, [jobID]).rows
            guard let row = rows.first else { return try cancel(jobID: jobID, userID: userID) }
            askedCancel = true
            return .requested(try Job(row: row))
        }
        let rows = try connection.query("""
            UPDATE genflow.jobs SET status = 'cancelled', cancel_requested = true, finished_at = now(), updated_at = now(),
                error = jsonb_build_object('class', 'cancelled', 'message', 'cancelled before it ran', 'step', current_step)
            WHERE id = $1::uuid AND status IN ('queued', 'waiting_retry') RETURNING \(Job.columns())
            """, [jobID]).rows
        guard let row = rows.first else { return try cancel(jobID: jobID, userID: userID) }
        let job = try Job(row: row)
        try append(NewEvent(userID: job.userID, jobID: job.id, type: .jobCancelled, data: ["while": .string(current.status.rawValue), "error": job.error ?? .null]))
        return .cancelled(job)
    }

    /// Queues a failed or cancelled job again; it resumes from its first step without a checkpoint.
    /// Nil when the job is not found or its state does not allow a retry (`status` says which).
    public func retry(jobID: String, userID: String? = nil) throws -> (job: Job?, status: JobStatus?) {
        guard let current = try job(id: jobID, userID: userID) else { return (nil, nil) }
        guard JobStatus.retryable.contains(current.status) else { return (nil, current.status) }
        let rows = try connection.query("""
            UPDATE genflow.jobs SET status = 'queued', generation = generation + 1, run_at = now(), error = NULL,
                finished_at = NULL, cancel_requested = false, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
            WHERE id = $1::uuid AND status IN ('failed', 'cancelled') RETURNING \(Job.columns())
            """, [jobID]).rows
        guard let row = rows.first else { return (nil, current.status) }
        let job = try Job(row: row)
        try append(NewEvent(userID: job.userID, jobID: job.id, type: .jobQueued, data: ["retry": true, "generation": .int(job.generation)]))
        wokeWorkers = true
        return (job, nil)
    }

    // MARK: Reading jobs

    /// The job `id`; with `userID`, only if it is that user's.
    public func job(id: String, userID: String? = nil) throws -> Job? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try connection.query(
            "SELECT \(Job.columns()) FROM genflow.jobs WHERE id = $1::uuid AND ($2::text IS NULL OR user_id = $2)", [id, userID]
        ).rows.first.map(Job.init(row:))
    }

    /// Every attempt of every step of a job, oldest first.
    public func stepRuns(jobID: String) throws -> [StepRun] {
        try connection.query(
            "SELECT \(StepRun.columns) FROM genflow.step_runs WHERE job_id = $1::uuid ORDER BY seq NULLS FIRST, started_at, attempt", [jobID]
        ).rows.map(StepRun.init(row:))
    }

    /// The steps of the pipeline version a job runs on, in file order, with what each needs (as
    /// written, else the step above it) and whether it runs per item (`for_each`).
    public func pipelineSteps(name: String, version: String) throws -> [StepOutline] {
        var steps: [StepOutline] = []
        for row in try connection.query("""
            SELECT s.value->>'id' AS id, s.value->>'stage' AS stage, s.value->'needs' AS needs, s.value ? 'for_each' AS per_item
            FROM genflow.pipeline_versions v, jsonb_array_elements(v.definition->'steps') WITH ORDINALITY AS s(value, n)
            WHERE v.name = $1 AND v.version = $2 ORDER BY s.n
            """, [name, version]).rows {
            let written = try row["needs"].map { try JSON(parsing: $0) }
            let needs = written.map { $0.arrayValue?.compactMap(\.stringValue) ?? $0.stringValue.map { [$0] } ?? [] } ?? steps.last.map { [$0.id] } ?? []
            steps.append(StepOutline(id: row["id"] ?? "", stage: row["stage"] ?? "", needs: needs, perItem: row.decode("per_item") ?? false))
        }
        return steps
    }

    /// Jobs newest first, filtered; `before` is the cursor of the last job of the previous page.
    public func jobs(userID: String? = nil, status: JobStatus? = nil, pipeline: String? = nil, before cursor: PageCursor? = nil, limit: Int = 50) throws -> [Job] {
        try connection.query("""
            SELECT \(Job.columns()) FROM genflow.jobs
            WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR pipeline = $3)
              AND ($4::timestamptz IS NULL OR (created_at, id) < ($4::timestamptz, $5::uuid))
            ORDER BY created_at DESC, id DESC LIMIT $6
            """, [userID, status?.rawValue, pipeline, cursor?.createdAt, cursor?.id, limit]).rows.map(Job.init(row:))
    }

    /// A job with its pipeline's steps, each with attempts, errors and timings, and every attempt.
    /// Nil when not found (or not `userID`'s).
    public func jobDetail(id: String, userID: String? = nil) throws -> JobDetail? {
        guard let job = try job(id: id, userID: userID) else { return nil }
        let runs = try stepRuns(jobID: job.id)
        return JobDetail(job: job, steps: StepState.of(job, steps: try pipelineSteps(name: job.pipeline, version: job.pipelineVersion), runs: runs), runs: runs)
    }

    /// Jobs by status and the queue depth (runnable now): two cheap counts for `/metrics`.
    public func jobCounts() throws -> (byStatus: [String: Int], queueDepth: Int) {
        var byStatus: [String: Int] = [:]
        for row in try connection.query("SELECT status, count(*)::int AS n FROM genflow.jobs GROUP BY status").rows {
            if let status = row["status"] { byStatus[status] = row.decode("n") ?? 0 }
        }
        let depth: Int = try connection.query("""
            SELECT count(*)::int AS n FROM genflow.jobs WHERE status IN ('queued', 'waiting_retry') AND run_at <= now()
            """).rows.first?.decode("n") ?? 0
        return (byStatus, depth)
    }

    /// Operator figures: jobs by status, success rate and p50/p95 duration of finished jobs, and
    /// queue depth (runnable now), overall and per pipeline; what jobs cost in money, in all, by
    /// pipeline, by user (the 50 who spent most) and by provider and model.
    public func jobStats() throws -> JobStats {
        var stats = JobStats()
        for row in try connection.query("SELECT pipeline, status, count(*) AS n FROM genflow.jobs GROUP BY 1, 2").rows {
            guard let pipeline = row["pipeline"], let status = row["status"] else { continue }
            let count: Int = row.decode("n") ?? 0
            stats.overall.byStatus[status, default: 0] += count
            stats.pipelines[pipeline, default: JobStats.Figures()].byStatus[status] = count
        }
        for row in try connection.query("""
            SELECT pipeline,
                round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at) * 1000)::numeric, 1)::text AS p50,
                round(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at) * 1000)::numeric, 1)::text AS p95
            FROM genflow.jobs WHERE status = 'completed' AND started_at IS NOT NULL GROUP BY GROUPING SETS ((pipeline), ())
            """).rows {
            let duration = (p50: row["p50"].flatMap(Double.init), p95: row["p95"].flatMap(Double.init))
            if let pipeline = row["pipeline"] { stats.pipelines[pipeline, default: JobStats.Figures()].duration = duration } else { stats.overall.duration = duration }
        }
        for row in try connection.query("""
            SELECT pipeline, count(*) AS n FROM genflow.jobs WHERE status IN ('queued', 'waiting_retry') AND run_at <= now() GROUP BY pipeline
            """).rows {
            guard let pipeline = row["pipeline"] else { continue }
            let depth: Int = row.decode("n") ?? 0
            stats.pipelines[pipeline, default: JobStats.Figures()].queueDepth = depth
            stats.overall.queueDepth += depth
        }
        for row in try connection.query("""
            SELECT 'total' AS kind, '' AS key, trim_scale(COALESCE(sum(cost), 0))::text AS total FROM genflow.jobs
            UNION ALL SELECT 'pipeline', pipeline, trim_scale(sum(cost))::text FROM genflow.jobs GROUP BY 2 HAVING sum(cost) > 0
            UNION ALL (SELECT 'user', user_id, trim_scale(sum(cost))::text FROM genflow.jobs GROUP BY 2 HAVING sum(cost) > 0 ORDER BY sum(cost) DESC LIMIT 50)
            UNION ALL SELECT 'model', (output->>'provider') || ' ' || (output->>'model'), trim_scale(sum((output->>'cost')::numeric))::text
                FROM genflow.step_runs WHERE status IN ('completed', 'superseded') AND output ? 'cost' GROUP BY 2
            """).rows {
            guard let kind = row["kind"], let key = row["key"], let total = row["total"].flatMap(Money.init) else { continue }
            switch kind {
            case "total": stats.cost.total = total
            case "pipeline": stats.cost.byPipeline[key] = total
            case "user": stats.cost.byUser[key] = total
            default: stats.cost.byModel[key] = total
            }
        }
        return stats
    }

    // MARK: Workers

    /// Claims up to `limit` runnable jobs for `owner` in one statement: queued or waiting jobs whose
    /// `run_at` has come, highest priority first, then oldest; and running jobs whose lease expired
    /// (their daemon died). With `runningPerUser`, no user gets more than that many running jobs;
    /// claims are then serialised across daemons so the cap holds exactly. The jobs come back in
    /// that order (the engine starts them in it).
    ///
    /// Without a cap, ready jobs and expired leases are found by two index scans (`jobs_ready`,
    /// `jobs_leases`) merged afterwards: one condition with OR cannot use either index and scanned
    /// the table. With a cap, every claimable job is ranked per user (the claim is serialised anyway).
    ///
    /// Without a cap, each priority's walk starts after its floor in `floors` (`ClaimFloors`), and
    /// walks again from the start when that found no ready job.
    public func claim(owner: String, limit: Int, lease: Duration, runningPerUser: Int?, from floors: [ClaimFloors.Floor] = []) throws -> [ClaimedJob] {
        var parameters: [(any PostgresEncodable)?] = [owner, limit, Int(lease.milliseconds)]
        if let runningPerUser {
            try connection.query("SELECT pg_advisory_xact_lock($1)", [Self.claimLockKey])
            parameters.append(runningPerUser)
        } else {
            parameters += [PostgresArray(floors.map(\.priority)), PostgresArray(floors.map(\.runAt)), PostgresArray(floors.map(\.id))]
        }
        let claimed = try connection.query(Self.claimStatement(capped: runningPerUser != nil), parameters).rows.map {
            ClaimedJob(job: try Job(row: $0), wasRescued: $0["previous"] == "running")
        }
        guard runningPerUser == nil, !floors.isEmpty, claimed.count < limit, !claimed.contains(where: { !$0.wasRescued }) else { return claimed }
        return try claimed + claim(owner: owner, limit: limit - claimed.count, lease: lease, runningPerUser: nil)
    }

    /// The claim: `$1` owner, `$2` limit, `$3` lease in milliseconds; with `capped`, `$4` the
    /// running jobs a user may have, else `$4…$6` the floors' priorities, `run_at`s and ids.
    package static func claimStatement(capped: Bool) -> String {
        let claimable = "((j.status IN ('queued', 'waiting_retry') AND j.run_at <= now()) OR (j.status = 'running' AND j.lease_expires_at < now()))"
        let candidates: String
        if capped {
            candidates = """
                WITH running AS (
                    SELECT user_id, count(*) AS n FROM genflow.jobs
                    WHERE status = 'running' AND lease_expires_at >= now() GROUP BY user_id
                ), ranked AS (
                    SELECT j.id, j.priority, j.run_at,
                           row_number() OVER (PARTITION BY j.user_id ORDER BY j.priority DESC, j.run_at, j.id) + coalesce(r.n, 0) AS slot
                    FROM genflow.jobs j LEFT JOIN running r ON r.user_id = j.user_id
                    WHERE \(claimable)
                ), candidates AS (
                    SELECT j.id, j.status AS previous FROM genflow.jobs j JOIN ranked r ON r.id = j.id
                    WHERE r.slot <= $4 ORDER BY r.priority DESC, r.run_at, r.id LIMIT $2
                    FOR UPDATE OF j SKIP LOCKED
                )
                """
        } else {
            // `LIMIT (SELECT $2::int)`: a limit the planner cannot read, so it plans for few rows and
            // walks `jobs_ready` in its order. With the limit known (the first plans of each
            // connection) and the statistics of a table still thought small, it read every ready
            // row and sorted them: 12.8 ms against 0.4 for 10,000 queued jobs, each claim.
            //
            // Per priority: `jobs_ready` is ordered by priority, then `run_at`, so the due jobs of
            // one priority are where its range starts, and the walk stops at its first job not due.
            // One walk over the whole index with `run_at <= now()` as a filter read every job
            // scheduled for later whenever fewer than the limit were due (0.7 ms a claim with
            // 10,000 of them; a scheduled million would cost each claim a full index read).
            //
            // From the floor: `(run_at, id) >` the last job this daemon claimed there, a start key
            // of the walk (without a floor, the range's start).
            candidates = """
                WITH RECURSIVE \(queuedPriorities), ready AS (
                    SELECT r.* FROM priorities p
                    LEFT JOIN unnest($4::int[], $5::timestamptz[], $6::uuid[]) AS f(priority, run_at, id) ON f.priority = p.priority
                    CROSS JOIN LATERAL (
                        SELECT j.id, j.status AS previous, j.priority, j.run_at FROM genflow.jobs j
                        WHERE j.status IN ('queued', 'waiting_retry') AND j.priority = p.priority AND j.run_at <= now()
                            AND (j.run_at, j.id) > (coalesce(f.run_at, '-infinity'), coalesce(f.id, '00000000-0000-0000-0000-000000000000'))
                        ORDER BY j.run_at, j.id LIMIT (SELECT $2::int)
                        FOR UPDATE SKIP LOCKED
                    ) AS r
                ), expired AS (
                    SELECT j.id, j.status AS previous, j.priority, j.run_at FROM genflow.jobs j
                    WHERE j.status = 'running' AND j.lease_expires_at < now()
                    ORDER BY j.lease_expires_at LIMIT $2
                    FOR UPDATE SKIP LOCKED
                ), candidates AS (
                    SELECT id, previous FROM (SELECT * FROM ready UNION ALL SELECT * FROM expired) c
                    ORDER BY priority DESC, run_at, id LIMIT $2
                )
                """
        }
        return """
            \(candidates), claimed AS (
                UPDATE genflow.jobs t SET status = 'running', lease_owner = $1, lease_token = t.lease_token + 1,
                    lease_expires_at = now() + $3 * interval '1 millisecond', started_at = coalesce(t.started_at, now()),
                    rescues = t.rescues + (c.previous = 'running')::int, updated_at = now()
                FROM candidates c WHERE t.id = c.id
                RETURNING \(Job.columns("t")), c.previous, t.run_at AS claimed_run_at
            )
            SELECT * FROM claimed ORDER BY priority DESC, claimed_run_at, id
            """
    }

    static let claimLockKey = 0x67656e666c6f78

    /// `priorities`: the priorities of queued and waiting jobs, lowest first, one probe of
    /// `jobs_ready` each (the last priority, then the next one above it): for a `WITH RECURSIVE`.
    /// Within a priority the index is ordered by `run_at`, so a walk that starts at a priority's
    /// range stops at its first job not due, however many are scheduled for later.
    ///
    /// The probes read each range from its end (newest `run_at`): the entries of claimed jobs stay
    /// in the index until a vacuum, and they gather at the start of their range (the oldest jobs
    /// are claimed first), so a probe from the start walked through all of them (185 index pages
    /// after 30,000 claims; 4 after a `VACUUM`). The claim's walk of a priority's due jobs starts
    /// at its floor (`ClaimFloors`) for the same reason.
    private static let queuedPriorities = """
        priorities AS (
            (SELECT j.priority FROM genflow.jobs j WHERE j.status IN ('queued', 'waiting_retry') ORDER BY j.priority LIMIT 1)
            UNION ALL
            SELECT next.priority FROM priorities p, LATERAL (
                SELECT j.priority FROM genflow.jobs j WHERE j.status IN ('queued', 'waiting_retry') AND j.priority > p.priority
                ORDER BY j.priority LIMIT 1
            ) AS next
        )
        """

    /// When the next queued or waiting job becomes runnable, in milliseconds from now (≤ 0: now),
    /// rounded up: a claim that waits this long finds it due.
    ///
    /// The earliest `run_at` of each priority (`queuedPriorities`), each the first entry of its
    /// range in `jobs_ready`. A plain `min(run_at)` read every queued job: 3.4 ms a call with
    /// 10,000 jobs scheduled for later, asked after most claims (more than half of PostgreSQL's
    /// time while submissions ran at once); this takes ~0.15 ms.
    public func millisecondsUntilNextRunnable() throws -> Int? {
        try connection.query("""
            WITH RECURSIVE \(Self.queuedPriorities)
            SELECT ceil(extract(epoch FROM min(first.run_at) - now()) * 1000)::bigint AS ms FROM priorities p CROSS JOIN LATERAL (
                SELECT j.run_at FROM genflow.jobs j WHERE j.status IN ('queued', 'waiting_retry') AND j.priority = p.priority
                ORDER BY j.run_at LIMIT 1
            ) AS first
            """).rows.first?.decode("ms", as: Int.self)
    }

    /// Extends the leases of every job `owner` runs; returns them with their claim tokens and
    /// cancel flags. A job missing from the answer, or back with another token, is no longer this
    /// run's. Rows are locked in id order, as the writer's flushes lock them, so the two cannot deadlock.
    public func heartbeat(owner: String, lease: Duration) throws -> [(id: String, token: Int64, cancelRequested: Bool)] {
        try connection.query("""
            UPDATE genflow.jobs j SET lease_expires_at = now() + $2 * interval '1 millisecond'
            FROM (SELECT id FROM genflow.jobs WHERE lease_owner = $1 AND status = 'running' ORDER BY id FOR UPDATE) held
            WHERE j.id = held.id RETURNING j.id::text, j.lease_token, j.cancel_requested
            """, [owner, Int(lease.milliseconds)]).rows.map { ($0["id"] ?? "", $0.decode("lease_token") ?? 0, $0.decode("cancel_requested") ?? false) }
    }

    /// Makes a queued or retry-waiting job due now: `genflow test` shows the retry delays the
    /// policy computed without waiting them out. Returns whether the job was waiting.
    @discardableResult
    public func runNow(jobID: String) throws -> Bool {
        try connection.query("""
            WITH due AS (
                UPDATE genflow.step_runs SET retry_at = now() WHERE job_id = $1::uuid AND retry_at > now()
            )
            UPDATE genflow.jobs SET run_at = now(), updated_at = now() WHERE id = $1::uuid AND status IN ('queued', 'waiting_retry') AND run_at > now()
            RETURNING id
            """, [jobID]).rows.count == 1
    }

    // MARK: Housekeeping

    /// Deletes finished jobs (with their step runs) and events older than `retention`, if no other
    /// daemon is doing it now. Returns (jobs, events) deleted, or nil when another daemon holds the lock.
    /// Expired model-cache entries go too, whatever the retention.
    public func deleteExpired(retention: Duration) throws -> (jobs: Int, events: Int)? {
        let locked = try connection.query("SELECT pg_try_advisory_lock($1) AS locked", [Self.housekeepingLockKey]).rows.first?.decode("locked", as: Bool.self) ?? false
        guard locked else { return nil }
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [Self.housekeepingLockKey]) }
        try connection.query("DELETE FROM genflow.model_cache WHERE expires_at < now()")
        let milliseconds = Int(retention.milliseconds)
        return (try deleteInBatches(from: "genflow.jobs", olderThan: "finished_at", milliseconds),
                try deleteInBatches(from: "genflow.events", olderThan: "created_at", milliseconds))
    }

    /// Deletes rows whose `column` is older than `milliseconds` ago, 5,000 a statement so no
    /// transaction holds locks for long. `table` and `column` are constants of this file.
    private func deleteInBatches(from table: String, olderThan column: String, _ milliseconds: Int) throws -> Int {
        var total = 0
        while true {
            let deleted = try connection.query("""
                DELETE FROM \(table) WHERE id IN (
                    SELECT id FROM \(table) WHERE \(column) < now() - $1 * interval '1 millisecond' LIMIT 5000)
                """, [milliseconds]).affectedRows
            total += deleted
            if deleted < 5000 { return total }
        }
    }

    static let housekeepingLockKey = 0x67656e666c6f79
}

/// A position in the event log: events are delivered in `(tx, id)` order.
public struct EventCursor: Sendable, Hashable, Comparable {
    public var tx: String
    public var id: Int64

    /// Delivery order: by transaction, then id.
    public static func < (lhs: EventCursor, rhs: EventCursor) -> Bool {
        let (left, right) = (UInt64(lhs.tx) ?? 0, UInt64(rhs.tx) ?? 0)
        return left != right ? left < right : lhs.id < rhs.id
    }

    public init(tx: String, id: Int64) {
        self.tx = tx
        self.id = id
    }

    /// Before every event.
    public static let start = EventCursor(tx: "0", id: 0)

    public init(after event: Event) {
        self.init(tx: event.tx, id: event.id)
    }
}

/// A position in a listing ordered newest first by (created_at, id): jobs, prompts, images.
public struct PageCursor: Sendable, Hashable {
    public var createdAt: String
    public var id: String

    public init(createdAt: String, id: String) {
        self.createdAt = createdAt
        self.id = id
    }

    public init(after job: Job) {
        self.init(createdAt: job.createdAt, id: job.id)
    }

    /// Reads the text form (`<created_at>,<id>`) a previous page handed out; nil for anything else,
    /// so a made-up cursor is a client error, never a database error.
    public init?(text: String) {
        let parts = text.split(separator: ",", maxSplits: 1).map(String.init)
        let timestampCharacters = Set("0123456789-:T.Z+")
        guard parts.count == 2, UUID(uuidString: parts[1]) != nil, (20...40).contains(parts[0].count),
              parts[0].allSatisfy(timestampCharacters.contains) else { return nil }
        self.init(createdAt: parts[0], id: parts[1])
    }

    public var text: String { "\(createdAt),\(id)" }

    /// The cursor of the page after `items` when the page was full (items carry `created_at` and `id`).
    public static func next(after items: [JSON], limit: Int) -> PageCursor? {
        guard items.count == limit, let last = items.last, let createdAt = last["created_at"]?.stringValue,
              let id = last["id"]?.stringValue else { return nil }
        return PageCursor(createdAt: createdAt, id: id)
    }
}
