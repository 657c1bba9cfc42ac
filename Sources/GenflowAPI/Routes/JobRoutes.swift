internal import GenflowQueue
internal import GenflowRecords

/// Jobs: submit, list, read, result, cancel, retry.
enum JobRoutes {
    static func routes(_ context: RouteContext) -> [Route] {
        [
            Route(method: "POST", pattern: "/v1/jobs", access: .user, summary: "Submit a job: {pipeline, input, priority?, idempotency_key?, run_at?}.", status: 202) { call in
                let body = try call.body(allowed: ["pipeline", "input", "priority", "idempotency_key", "run_at", "user_id"])
                guard let pipeline = body["pipeline"]?.stringValue, !pipeline.isEmpty else {
                    throw APIError(422, "invalid_request", "'pipeline' (a pipeline name) is required")
                }
                let input = body["input"] ?? [:]
                guard case .object = input else { throw APIError(422, "invalid_request", "'input' must be an object, not \(input.typeName)") }
                let priority = body["priority"] ?? 0
                guard let priorityValue = priority.intValue, (-1_000...1_000).contains(priorityValue) else {
                    throw APIError(422, "invalid_request", "'priority' must be an integer from -1000 to 1000")
                }
                let key = body["idempotency_key"]?.stringValue
                if let raw = body["idempotency_key"], key == nil || key!.isEmpty || key!.count > 200 {
                    throw APIError(422, "invalid_request", "'idempotency_key' must be a string of 1 to 200 characters, not \(raw.typeName)")
                }
                if let raw = body["run_at"], raw.stringValue == nil { throw APIError(422, "invalid_request", "'run_at' must be an ISO 8601 string") }
                let user: String
                switch call.principal {
                case .user(let id)?:
                    if body["user_id"] != nil { throw APIError(422, "invalid_request", "'user_id' is for operators; users submit as themselves") }
                    user = id
                default:
                    guard let id = body["user_id"]?.stringValue, !id.isEmpty else {
                        throw APIError(422, "invalid_request", "operators must give 'user_id', the user the job runs for")
                    }
                    user = id
                }
                if let wait = context.limiter.take(user) {
                    var error = APIError(429, "rate_limited", "more than \(context.limiter.perMinute) submissions a minute; retry in \(wait) s")
                    error.headers = [("Retry-After", String(wait))]
                    throw error
                }
                let (job, created) = try await context.submitter.submit(
                    pipeline: pipeline, input: input, userID: user, priority: priorityValue, idempotencyKey: key, runAt: body["run_at"]?.stringValue
                )
                return .json(["job": job.json(), "created": .bool(created)], status: 202)
            },
            Route(method: "GET", pattern: "/v1/jobs", access: .user, summary: "List jobs, newest first.", query: ["status", "pipeline", "user_id", "limit", "cursor"]) { call in
                let (limit, text) = try call.page()
                let after = try context.cursor(text)
                let status = try call.request.query["status"].map { value in
                    guard let known = JobStatus(rawValue: value) else {
                        throw APIError(400, "invalid_status", "unknown status '\(value.prefix(40))' (statuses: \(JobStatus.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    return known
                }
                let (user, pipeline) = (call.scope, call.request.query["pipeline"])
                let jobs = try await context.read { try $0.jobs(userID: user, status: status, pipeline: pipeline, before: after, limit: limit) }
                return .page(jobs.map { $0.json() }, next: jobs.count == limit ? jobs.last.map { PageCursor(after: $0).text } : nil)
            },
            Route(method: "GET", pattern: "/v1/jobs/{id}", access: .user, summary: "A job with its steps, attempts, errors and timings.") { call in
                let (id, user) = (call.parameter("id"), call.scope)
                guard let detail = try await context.read({ try $0.jobDetail(id: id, userID: user) }) else { throw APIError.notFound("job") }
                return .json(detail.json)
            },
            Route(method: "GET", pattern: "/v1/jobs/{id}/result", access: .user, summary: "A completed job's result (409 until it completes).") { call in
                let (id, user) = (call.parameter("id"), call.scope)
                guard let job = try await context.read({ try $0.job(id: id, userID: user) }) else { throw APIError.notFound("job") }
                guard job.status == .completed else {
                    throw APIError(409, job.status.isTerminal ? "job_not_completed" : "job_not_finished",
                                   "job \(job.id) is \(job.status.rawValue)", details: ["status": .string(job.status.rawValue), "error": job.error ?? .null])
                }
                return .json(["job_id": .string(job.id), "status": .string(job.status.rawValue), "result": job.result ?? .null])
            },
            Route(method: "POST", pattern: "/v1/jobs/{id}/cancel", access: .user, summary: "Cancel a queued, waiting or running job (409 once finished).", status: 202) { call in
                let (id, user) = (call.parameter("id"), call.scope)
                switch try await context.write({ try $0.cancelJob(id: id, userID: user) }) {
                case .notFound: throw APIError.notFound("job")
                case .notAllowed(let status): throw APIError(409, "not_cancellable", "job is \(status.rawValue); only queued, waiting or running jobs can be cancelled")
                case .requested(let job): return .json(["job": job.json(), "cancel_requested": true], status: 202)
                case .cancelled(let job): return .json(["job": job.json()])
                }
            },
            Route(method: "POST", pattern: "/v1/jobs/{id}/retry", access: .user, summary: "Queue a failed or cancelled job again from its failed step (409 otherwise).", status: 202) { call in
                let (id, user) = (call.parameter("id"), call.scope)
                let (job, status) = try await context.write { try $0.retryJob(id: id, userID: user) }
                guard let job else {
                    guard let status else { throw APIError.notFound("job") }
                    throw APIError(409, "not_retryable", "job is \(status.rawValue); only failed or cancelled jobs can be retried")
                }
                return .json(["job": job.json()], status: 202)
            },

        ]
    }
}
