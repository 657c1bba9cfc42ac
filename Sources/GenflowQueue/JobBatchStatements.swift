public import GenflowCore
public import GenflowPostgres

extension StoreSession {
    /// Applies the queue's part of `batch` in this transaction: jobs, attempts and events. Returns
    /// the entries whose lease held (their records are the caller's: GenflowRecords' flush).
    ///
    /// The first statement locks the batch's jobs in id order (so flushes of several daemons
    /// cannot deadlock), keeps those still held under the batch's lease (owner and claim token)
    /// and updates them; every later statement writes only for those.
    public func apply(_ batch: JobBatch) throws -> [JobBatch.Entry] {
        let now = ContinuousClock.now
        let held = try updateJobs(batch.entries)
        let entries = batch.entries.filter { held.contains($0.claim) }
        guard !entries.isEmpty else { return [] }

        let stale = entries.filter(\.interruptStaleRuns).map(\.jobID)
        if !stale.isEmpty {
            try connection.query("""
                UPDATE genflow.step_runs SET status = 'interrupted', finished_at = now() WHERE job_id = ANY($1::uuid[]) AND status = 'running'
                """, [PostgresArray(stale)])
        }
        try endAttempts(entries.flatMap { entry in entry.ended.map { (entry.jobID, $0) } }, now: now)
        let superseded = entries.flatMap { entry in entry.superseded.map { (entry.jobID, $0) } }
        if !superseded.isEmpty {
            try connection.query("""
                UPDATE genflow.step_runs s SET status = 'superseded'
                FROM unnest($1::uuid[], $2::text[]) AS u(job_id, step_id)
                WHERE s.job_id = u.job_id AND s.step_id = u.step_id AND s.status = 'completed'
                """, [PostgresArray(superseded.map(\.0)), PostgresArray(superseded.map(\.1))])
        }
        try insertAttempts(entries.flatMap { entry in entry.inserted.map { (entry.jobID, entry.job.generation, $0) } }, now: now)
        try append(entries.flatMap(\.events))
        if entries.contains(where: \.wakesWorkers) { wakeWorkers() }
        if entries.contains(where: \.schedulesLater) { announceScheduled() }
        return entries
    }

    /// Locks the jobs in id order, keeps those held under their entry's lease and records the
    /// step they are on, attempts made and, for a run that ends, the job's new state.
    ///
    /// The plan is fixed by the statement's shape, not by statistics: the input (sorted by id
    /// here: ids are PostgreSQL's lowercase text, so their order is the uuids') drives a nested
    /// loop whose inner side, a locking subquery, is one primary-key lookup per row, so jobs are
    /// locked in id order and the update joins the few rows kept. A join the planner could reorder
    /// read, on a fresh database under a burst (statistics still saying "few running jobs"), every
    /// running job for every input row: 166 ms for 95 jobs among 2,000.
    private func updateJobs(_ unsorted: [JobBatch.Entry]) throws -> Set<Claim> {
        // Sorted by index: an entry is a job and its rows, and a copy retains each of their fields.
        let order = unsorted.indices.sorted { unsorted[$0].jobID < unsorted[$1].jobID }
        var status: [String?] = [], error: [String?] = [], delay: [String?] = []
        for index in order {
            switch unsorted[index].outcome {
            case nil:
                status.append(nil); error.append(nil); delay.append(nil)
            case .completed?:
                status.append(JobStatus.completed.rawValue); error.append(nil); delay.append(nil)
            case .failed(let ended, let value)?:
                status.append(ended.rawValue); error.append(value.description); delay.append(nil)
            case .waitingRetry(let wait)?:
                status.append(JobStatus.waitingRetry.rawValue); error.append(nil); delay.append(String(wait.milliseconds))
            case .released?:
                status.append(JobStatus.queued.rawValue); error.append(nil); delay.append(nil)
            }
        }
        let owners = Set(unsorted.map(\.lease.owner))
        guard owners.count == 1, let owner = owners.first else { throw PostgresError(message: "a batch holds the writes of one daemon") }
        let rows = try connection.query(Self.fenceStatement, [
            owner, PostgresArray(order.map { unsorted[$0].jobID }), PostgresArray(order.map { unsorted[$0].lease.token }),
            PostgresArray(order.map { unsorted[$0].currentStep }), PostgresArray(order.map { unsorted[$0].addedAttempts }),
            PostgresArray(status), PostgresArray(error), PostgresArray(delay),
            PostgresArray(order.map { unsorted[$0].addedCost == .zero ? nil : unsorted[$0].addedCost.description }),
        ]).rows
        return Set(rows.compactMap { row in
            row["id"].map { Claim(jobID: $0, token: row.decode("token") ?? -1) }
        })
    }

    /// The fence: `$1` the owner, `$2…$9` arrays of each claim's job id, token, step, attempts
    /// added, new status, error, retry delay and cost, sorted by job id (`updateJobs`).
    package static let fenceStatement = """
        WITH held AS MATERIALIZED (
            SELECT i.* FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::int[], $6::text[], $7::jsonb[], $8::bigint[], $9::numeric[])
                AS i(id, token, step, added, status, error, delay_ms, cost)
            CROSS JOIN LATERAL (
                SELECT FROM genflow.jobs j
                WHERE j.id = i.id AND j.lease_owner = $1 AND j.lease_token = i.token AND j.status = 'running'
                FOR UPDATE
            ) locked
        )
        UPDATE genflow.jobs j SET
            status = coalesce(i.status, j.status),
            current_step = CASE WHEN i.status = 'completed' THEN NULL ELSE coalesce(i.step, j.current_step) END,
            attempts = j.attempts + i.added,
            cost = CASE WHEN i.cost IS NULL THEN j.cost ELSE j.cost + i.cost END,
            error = CASE WHEN i.status IN ('failed', 'cancelled') THEN i.error ELSE j.error END,
            run_at = CASE i.status WHEN 'waiting_retry' THEN now() + i.delay_ms * interval '1 millisecond'
                WHEN 'queued' THEN least(j.run_at, now()) ELSE j.run_at END,
            finished_at = CASE WHEN i.status IN ('completed', 'failed', 'cancelled') THEN now() ELSE j.finished_at END,
            lease_owner = CASE WHEN i.status IS NULL THEN j.lease_owner END,
            lease_expires_at = CASE WHEN i.status IS NULL THEN j.lease_expires_at END,
            updated_at = now()
        FROM held i WHERE j.id = i.id
        RETURNING j.id::text AS id, i.token
        """

    /// Microseconds from `instant` to `now` (0 when unknown): where the database's clock places it.
    private static func microsecondsAgo(_ instant: ContinuousClock.Instant?, now: ContinuousClock.Instant) -> String {
        guard let instant else { return "0" }
        let (seconds, attoseconds) = (now - instant).components
        return String(max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
    }

    /// Ends attempts whose rows earlier batches wrote.
    private func endAttempts(_ rows: [(job: String, row: JobBatch.AttemptRow)], now: ContinuousClock.Instant) throws {
        guard !rows.isEmpty else { return }
        try connection.query("""
            UPDATE genflow.step_runs s SET status = u.status, output = u.output, error_class = u.error_class,
                error_message = u.error_message, retry_delay_ms = u.delay_ms, finished_at = now() - u.finished_us * interval '1 microsecond',
                retry_at = now() - u.finished_us * interval '1 microsecond' + u.delay_ms * interval '1 millisecond'
            FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::jsonb[], $6::text[], $7::text[], $8::bigint[], $9::bigint[])
                AS u(job_id, step_id, attempt, status, output, error_class, error_message, delay_ms, finished_us)
            WHERE s.job_id = u.job_id AND s.step_id = u.step_id AND s.attempt = u.attempt
            """, Self.attemptColumns(rows.map(\.row), jobs: rows.map(\.job)) + [
                PostgresArray(rows.map { Self.microsecondsAgo($0.row.finishedAt, now: now) }),
            ])
    }

    /// Writes attempts started in this batch (ended too, when they also ended in it).
    private func insertAttempts(_ rows: [(job: String, generation: Int, row: JobBatch.AttemptRow)], now: ContinuousClock.Instant) throws {
        guard !rows.isEmpty else { return }
        try connection.query("""
            INSERT INTO genflow.step_runs (job_id, step_id, attempt, status, output, error_class, error_message, retry_delay_ms,
                generation, stage, started_at, finished_at, item, retry_at)
            SELECT job_id, step_id, attempt, status, output, error_class, error_message, delay_ms, generation, stage,
                now() - started_us * interval '1 microsecond', CASE WHEN status = 'running' THEN NULL ELSE now() - finished_us * interval '1 microsecond' END,
                item, now() - finished_us * interval '1 microsecond' + delay_ms * interval '1 millisecond'
            FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::jsonb[], $6::text[], $7::text[], $8::bigint[], $9::int[], $10::text[],
                $11::bigint[], $12::bigint[], $13::int[])
                AS u(job_id, step_id, attempt, status, output, error_class, error_message, delay_ms, generation, stage, started_us, finished_us, item)
            """, Self.attemptColumns(rows.map(\.row), jobs: rows.map(\.job)) + [
                PostgresArray(rows.map(\.generation)), PostgresArray(rows.map(\.row.stage)),
                PostgresArray(rows.map { Self.microsecondsAgo($0.row.startedAt, now: now) }),
                PostgresArray(rows.map { Self.microsecondsAgo($0.row.finishedAt, now: now) }),
                PostgresArray(rows.map(\.row.item)),
            ])
    }

    /// `$1…$8` of both attempt statements: job, step, attempt, status, output, error class and message, retry delay.
    private static func attemptColumns(_ rows: [JobBatch.AttemptRow], jobs: [String]) -> [(any PostgresEncodable)?] {
        [
            PostgresArray(jobs), PostgresArray(rows.map(\.step)), PostgresArray(rows.map(\.attempt)), PostgresArray(rows.map(\.status.rawValue)),
            PostgresArray(rows.map { $0.output?.jsonbText }), PostgresArray(rows.map { $0.error?.errorClass.rawValue }),
            PostgresArray(rows.map { $0.error?.message }), PostgresArray(rows.map { $0.retryDelay.map { String($0.milliseconds) } }),
        ]
    }
}
