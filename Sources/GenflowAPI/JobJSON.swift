public import GenflowCore
public import GenflowQueue

/// The API's (and `--json`'s) shapes of jobs, their steps, attempts and events (SPEC §9).
extension Job {
    /// The job with where each pipeline step stands (none in listings).
    public func json(steps: [StepState] = []) -> JSON {
        .object(members(steps: steps))
    }

    fileprivate func members(steps: [StepState]) -> [String: JSON] {
        var members: [String: JSON] = [
            "id": .string(id), "pipeline": .string(pipeline), "pipeline_version": .string(pipelineVersion),
            "user_id": .string(userID), "status": .string(status.rawValue), "priority": .int(priority),
            "attempts": .int(attempts), "rescues": .int(rescues), "input": input, "steps": .array(steps.map(\.json)),
            "run_at": .string(runAt), "created_at": .string(createdAt),
            "started_at": startedAt.map(JSON.string) ?? .null, "finished_at": finishedAt.map(JSON.string) ?? .null,
            "cost": .string(cost.description),
        ]
        if let result { members["result"] = result }
        if let error { members["error"] = error }
        if let idempotencyKey { members["idempotency_key"] = .string(idempotencyKey) }
        if cancelRequested && !status.isTerminal { members["cancel_requested"] = true }
        return members
    }
}

extension JobDetail {
    /// The job document: the job, its steps, and every attempt under `runs`.
    public var json: JSON {
        var members = job.members(steps: steps)
        members["runs"] = .array(runs.map(\.json))
        return .object(members)
    }
}

extension StepState {
    /// A step: `{id, stage, needs, status, attempts, started_at, finished_at, error?, items?,
    /// items_completed?}`; an item: `{item, status, attempts, started_at, finished_at, error?}`.
    public var json: JSON {
        var members: [String: JSON] = [
            "status": .string(status.rawValue), "attempts": .int(attempts),
            "started_at": startedAt.map(JSON.string) ?? .null, "finished_at": finishedAt.map(JSON.string) ?? .null,
        ]
        if let failure {
            members["error"] = ["class": .string(failure.errorClass.rawValue), "message": .string(failure.message), "attempt": .int(failure.attempt)]
        }
        if let item {
            members["item"] = .int(item)
            return .object(members)
        }
        members["id"] = .string(id)
        members["stage"] = .string(stage)
        members["needs"] = .array(needs.map(JSON.string))
        if let items {
            members["items"] = .array(items.map(\.json))
            members["items_completed"] = .int(itemsCompleted)
        }
        return .object(members)
    }
}

extension StepRun {
    public var json: JSON {
        var members: [String: JSON] = [
            "step": .string(stepID), "attempt": .int(attempt), "stage": .string(stage), "status": .string(status.rawValue),
            "started_at": .string(startedAt), "finished_at": finishedAt.map(JSON.string) ?? .null,
        ]
        if let errorClass { members["error"] = ["class": .string(errorClass.rawValue), "message": .string(errorMessage ?? "")] }
        if let retryDelayMilliseconds { members["retry_delay_ms"] = .int(retryDelayMilliseconds) }
        if let item { members["item"] = .int(item) }
        return .object(members)
    }
}

extension Event {
    /// The WebSocket message form: `{op: event, id, type, job_id, step, at, data}`.
    public var json: JSON {
        [
            "op": "event", "id": .int(Int(id)), "type": .string(type), "job_id": jobID.map(JSON.string) ?? .null,
            "step": step.map(JSON.string) ?? .null, "at": .string(createdAt), "data": data,
        ]
    }
}

extension JobStats {
    /// `{by_status, success_rate, duration_ms: {p50, p95}, queue_depth, cost: {total, by_pipeline,
    /// by_user, by_model}, pipelines: {name: {by_status, success_rate, duration_ms, queue_depth}}}`.
    public var json: JSON {
        func money(_ values: [String: Money]) -> JSON { .object(values.mapValues { .string($0.description) }) }
        var members = Self.json(overall)
        members["cost"] = [
            "total": .string(cost.total.description), "by_pipeline": money(cost.byPipeline), "by_user": money(cost.byUser),
            "by_model": money(cost.byModel),
        ]
        members["pipelines"] = .object(pipelines.mapValues { .object(Self.json($0)) })
        return .object(members)
    }

    private static func json(_ figures: Figures) -> [String: JSON] {
        [
            "by_status": .object(figures.byStatus.mapValues(JSON.int)), "success_rate": figures.successRate.map(JSON.double) ?? .null,
            "duration_ms": ["p50": figures.duration.p50.map(JSON.double) ?? .null, "p95": figures.duration.p95.map(JSON.double) ?? .null],
            "queue_depth": .int(figures.queueDepth),
        ]
    }
}
