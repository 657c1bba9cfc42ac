public import GenflowCore
public import GenflowPostgres

/// A running job whose lease this transaction has checked (`StoreSession.leased`): its step
/// attempts, checkpoints and end, each recorded with its event.
public struct LeasedJob {
    let session: StoreSession
    public let job: Job
    let owner: String

    private var connection: PostgresConnection { session.connection }

    private func append(_ type: String, step: String? = nil, _ data: JSON) throws {
        try session.append(NewEvent(userID: job.userID, jobID: job.id, type: type, step: step, data: data))
    }

    /// Records the start of an attempt: its row and `step.started` (preceded by `job.started` for
    /// the job's very first attempt). Take the lease with the step and `addAttempt`.
    public func startStep(_ step: String, stage: String, attempt: Int, policyAttempt: Int) throws {
        try connection.query("""
            INSERT INTO genflow.step_runs (job_id, step_id, attempt, generation, stage, status) VALUES ($1::uuid, $2, $3, $4, $5, 'running');
            """, [job.id, step, attempt, job.generation, stage])
        if job.attempts == 0 {
            try append("job.started", ["pipeline": .string(job.pipeline), "version": .string(job.pipelineVersion)])
        }
        try append("step.started", step: step, ["attempt": .int(policyAttempt), "stage": .string(stage), "daemon": .string(owner)])
    }

    /// Checkpoints a completed attempt's output: the step is never run again.
    public func completeStep(_ step: String, attempt: Int, output: JSON) throws {
        let updated = try connection.query("""
            UPDATE genflow.step_runs SET status = 'completed', output = $4::jsonb, finished_at = now()
            WHERE job_id = $1::uuid AND step_id = $2 AND attempt = $3 AND status = 'running'
            RETURNING (extract(epoch FROM finished_at - started_at) * 1000)::bigint AS ms
            """, [job.id, step, attempt, output])
        guard let row = updated.rows.first else { throw LeaseLost(jobID: job.id) }
        try append("step.completed", step: step, ["duration_ms": .int(row.decode("ms") ?? 0)])
    }

    /// Ends an attempt with a failure (`status`: failed or cancelled).
    private func endAttempt(_ step: String, attempt: Int, status: String, error: StepError, retryDelay: Duration? = nil) throws {
        try connection.query("""
            UPDATE genflow.step_runs SET status = $4, error_class = $5, error_message = $6, retry_delay_ms = $7, finished_at = now()
            WHERE job_id = $1::uuid AND step_id = $2 AND attempt = $3
            """, [job.id, step, attempt, status, error.errorClass.rawValue, error.message, retryDelay.map { Int($0.milliseconds) }])
    }

    /// A retryable failure: the attempt is recorded and the job waits in the database until `run_at`.
    public func scheduleRetry(_ step: String, attempt: Int, policyAttempt: Int, error: StepError, delay: Duration) throws {
        try endAttempt(step, attempt: attempt, status: "failed", error: error, retryDelay: delay)
        try connection.query("""
            UPDATE genflow.jobs SET status = 'waiting_retry', run_at = now() + $2 * interval '1 millisecond',
                lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
            WHERE id = $1::uuid
            """, [job.id, Int(delay.milliseconds)])
        try append("step.retrying", step: step, [
            "attempt": .int(policyAttempt), "delay_ms": .int(Int(delay.milliseconds)),
            "error": ["class": .string(error.errorClass.rawValue), "message": .string(error.message)],
        ])
        session.wakeWorkers()
    }

    /// Finishes the job: completed with `result`.
    public func completeJob(result: JSON) throws {
        try connection.query("""
            UPDATE genflow.jobs SET status = 'completed', result = $2::jsonb, finished_at = now(), current_step = NULL,
                lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
            WHERE id = $1::uuid
            """, [job.id, result])
        try append("job.completed", ["pipeline": .string(job.pipeline)])
    }

    /// Finishes the job as failed (or cancelled, for `.cancelled` errors), recording the failed attempt.
    public func failJob(step: String?, attempt: Int?, error: StepError, reason: String) throws {
        let isCancel = error.errorClass == .cancelled
        if let step, let attempt {
            try endAttempt(step, attempt: attempt, status: isCancel ? "cancelled" : "failed", error: error)
        }
        let errorJSON: JSON = ["class": .string(error.errorClass.rawValue), "message": .string(error.message), "step": step.map(JSON.string) ?? .null, "reason": .string(reason)]
        try connection.query("""
            UPDATE genflow.jobs SET status = $2, error = $3::jsonb, finished_at = now(), lease_owner = NULL,
                lease_expires_at = NULL, updated_at = now()
            WHERE id = $1::uuid
            """, [job.id, isCancel ? "cancelled" : "failed", errorJSON])
        try session.failPrompt(jobID: job.id, error: isCancel ? "cancelled" : "\(error.errorClass.rawValue): \(error.message)")
        try append(isCancel ? "job.cancelled" : "job.failed", step: step, ["error": errorJSON])
    }

    /// Gives a running job back to the queue (shutdown past its grace period): the attempt is
    /// marked interrupted and the job is runnable again at once, by any daemon.
    public func release(step: String?, attempt: Int?) throws {
        if let step, let attempt {
            try connection.query("UPDATE genflow.step_runs SET status = 'interrupted', finished_at = now() WHERE job_id = $1::uuid AND step_id = $2 AND attempt = $3", [job.id, step, attempt])
        }
        try connection.query("""
            UPDATE genflow.jobs SET status = 'queued', run_at = least(run_at, now()), lease_owner = NULL, lease_expires_at = NULL,
                updated_at = now()
            WHERE id = $1::uuid
            """, [job.id])
        try append("job.queued", step: step, ["released": true])
        session.wakeWorkers()
    }

    /// `on_invalid: retry_step`: records the failed attempt and discards the checkpoints of
    /// `discard` (the retried step and those after it), so they run again.
    public func reask(_ step: String, attempt: Int, error: StepError, retryStep: String, discard: [String]) throws {
        try endAttempt(step, attempt: attempt, status: "failed", error: error)
        try connection.query("""
            UPDATE genflow.step_runs SET status = 'superseded' WHERE job_id = $1::uuid AND step_id = ANY($2::text[]) AND status = 'completed'
            """, [job.id, "{\(discard.joined(separator: ","))}"])
        try append("step.retrying", step: step, [
            "reason": "on_invalid", "retry_step": .string(retryStep),
            "error": ["class": .string(error.errorClass.rawValue), "message": .string(error.message)],
        ])
    }
}
