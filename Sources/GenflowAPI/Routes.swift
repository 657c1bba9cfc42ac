internal import Foundation
internal import GenflowCore
internal import GenflowEngine
internal import GenflowPipeline
internal import GenflowQueue
internal import GenflowRecords

extension API {
    /// Every endpoint of SPEC §9 but the WebSocket (`/v1/events`, upgraded before routing).
    static func makeRoutes(
        store: JobStore, catalog: PipelineCatalog, registry: StageRegistry, configuration: Configuration, limiter: RateLimiter, metrics: MetricsPage
    ) -> [Route] {
        let submitter = JobSubmitter(catalog: catalog, store: store)
        @Sendable func read<T: Sendable>(_ body: @escaping @Sendable (StoreSession) throws -> T) async throws -> T { try await store.read(body) }
        @Sendable func write<T: Sendable>(_ body: @escaping @Sendable (StoreSession) throws -> T) async throws -> T { try await store.write(body) }
        @Sendable func cursor(_ text: String?) throws -> PageCursor? {
            guard let text else { return nil }
            guard let cursor = PageCursor(text: text) else { throw APIError(400, "invalid_cursor", "cursor is not one a previous page gave") }
            return cursor
        }

        let routes: [Route] = [
            // MARK: Jobs
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
                if let wait = limiter.take(user) {
                    var error = APIError(429, "rate_limited", "more than \(limiter.perMinute) submissions a minute; retry in \(wait) s")
                    error.headers = [("Retry-After", String(wait))]
                    throw error
                }
                let (job, created) = try await submitter.submit(
                    pipeline: pipeline, input: input, userID: user, priority: priorityValue, idempotencyKey: key, runAt: body["run_at"]?.stringValue
                )
                return .json(["job": job.json(), "created": .bool(created)], status: 202)
            },
            Route(method: "GET", pattern: "/v1/jobs", access: .user, summary: "List jobs, newest first.", query: ["status", "pipeline", "user_id", "limit", "cursor"]) { call in
                let (limit, text) = try call.page()
                let after = try cursor(text)
                let status = try call.request.query["status"].map { value in
                    guard let known = JobStatus(rawValue: value) else {
                        throw APIError(400, "invalid_status", "unknown status '\(value.prefix(40))' (statuses: \(JobStatus.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    return known
                }
                let (user, pipeline) = (call.scope, call.request.query["pipeline"])
                let jobs = try await read { try $0.jobs(userID: user, status: status, pipeline: pipeline, before: after, limit: limit) }
                return .page(jobs.map { $0.json() }, next: jobs.count == limit ? jobs.last.map { PageCursor(after: $0).text } : nil)
            },
            Route(method: "GET", pattern: "/v1/jobs/{id}", access: .user, summary: "A job with its steps, attempts, errors and timings.") { call in
                let (id, user) = (call.parameter("id"), call.scope)
                guard let detail = try await read({ try $0.jobDetail(id: id, userID: user) }) else { throw APIError.notFound("job") }
                return .json(detail.json)
            },
            Route(method: "GET", pattern: "/v1/jobs/{id}/result", access: .user, summary: "A completed job's result (409 until it completes).") { call in
                let (id, user) = (call.parameter("id"), call.scope)
                guard let job = try await read({ try $0.job(id: id, userID: user) }) else { throw APIError.notFound("job") }
                guard job.status == .completed else {
                    throw APIError(409, job.status.isTerminal ? "job_not_completed" : "job_not_finished",
                                   "job \(job.id) is \(job.status.rawValue)", details: ["status": .string(job.status.rawValue), "error": job.error ?? .null])
                }
                return .json(["job_id": .string(job.id), "status": .string(job.status.rawValue), "result": job.result ?? .null])
            },
            Route(method: "POST", pattern: "/v1/jobs/{id}/cancel", access: .user, summary: "Cancel a queued, waiting or running job (409 once finished).", status: 202) { call in
                let (id, user) = (call.parameter("id"), call.scope)
                switch try await write({ try $0.cancelJob(id: id, userID: user) }) {
                case .notFound: throw APIError.notFound("job")
                case .notAllowed(let status): throw APIError(409, "not_cancellable", "job is \(status.rawValue); only queued, waiting or running jobs can be cancelled")
                case .requested(let job): return .json(["job": job.json(), "cancel_requested": true], status: 202)
                case .cancelled(let job): return .json(["job": job.json()])
                }
            },
            Route(method: "POST", pattern: "/v1/jobs/{id}/retry", access: .user, summary: "Queue a failed or cancelled job again from its failed step (409 otherwise).", status: 202) { call in
                let (id, user) = (call.parameter("id"), call.scope)
                let (job, status) = try await write { try $0.retryJob(id: id, userID: user) }
                guard let job else {
                    guard let status else { throw APIError.notFound("job") }
                    throw APIError(409, "not_retryable", "job is \(status.rawValue); only failed or cancelled jobs can be retried")
                }
                return .json(["job": job.json()], status: 202)
            },

            // MARK: Prompts and images
            Route(method: "GET", pattern: "/v1/prompts", access: .user, summary: "Prompt history, newest first, with canvases and objects.", query: ["user_id", "limit", "cursor"]) { call in
                let (user, (limit, text)) = (try call.owner(), try call.page())
                let after = try cursor(text)
                let prompts = try await read { try $0.prompts(userID: user, before: after, limit: limit) }.map(\.json)
                return .page(prompts, next: PageCursor.next(after: prompts, limit: limit)?.text)
            },
            Route(method: "GET", pattern: "/v1/prompts/stats", access: .user, summary: "Prompt counts by status, success rate, last day, objects drawn.", query: ["user_id"]) { call in
                let user = try call.owner()
                return .json(try await read { try $0.promptStats(userID: user) }.json)
            },
            Route(method: "GET", pattern: "/v1/prompts/{id}", access: .user, summary: "One prompt with its canvases and objects.") { call in
                let (id, user) = (call.parameter("id"), try call.owner())
                guard let prompt = try await read({ try $0.prompt(id: id, userID: user) }) else { throw APIError.notFound("prompt") }
                return .json(prompt.json)
            },
            Route(method: "DELETE", pattern: "/v1/prompts/{id}", access: .user, summary: "Delete a prompt with its canvases and objects.", status: 204) { call in
                let (id, user) = (call.parameter("id"), try call.owner())
                guard try await write({ try $0.deletePrompt(id: id, userID: user) }) else { throw APIError.notFound("prompt") }
                return Reply(status: 204)
            },
            Route(method: "GET", pattern: "/v1/images", access: .user, summary: "Generated images, newest first.", query: ["dataset_id", "user_id", "limit", "cursor"]) { call in
                let (user, (limit, text)) = (try call.owner(), try call.page())
                let (after, dataset) = (try cursor(text), call.request.query["dataset_id"])
                let images = try await read { try $0.images(userID: user, datasetID: dataset, before: after, limit: limit) }.map(\.json)
                return .page(images, next: PageCursor.next(after: images, limit: limit)?.text)
            },
            Route(method: "GET", pattern: "/v1/images/{id}", access: .user, summary: "One generated image's record.") { call in
                let (id, user) = (call.parameter("id"), try call.owner())
                guard let image = try await read({ try $0.image(id: id, userID: user) }) else { throw APIError.notFound("image") }
                return .json(image.json)
            },
            Route(method: "GET", pattern: "/v1/images/{id}/content", access: .user, summary: "The bytes of an image kept under the state directory.") { call in
                let (id, user) = (call.parameter("id"), try call.owner())
                guard let image = try await read({ try $0.image(id: id, userID: user) }), let path = image.filePath,
                      !path.contains(".."), let bytes = FileManager.default.contents(atPath: "\(configuration.stateDirectory)/\(path)") else {
                    throw APIError.notFound("image file")
                }
                let type = ["png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"][image.format ?? ""] ?? "application/octet-stream"
                return Reply(status: 200, raw: (type, [UInt8](bytes)))
            },

            // MARK: Tokens
            Route(method: "GET", pattern: "/v1/tokens/balance", access: .user, summary: "The user's token balance.", query: ["user_id"]) { call in
                let user = try call.owner()
                let balance = try await read { try $0.balance(userID: user) }
                return .json(["user_id": .string(user), "balance": .int(balance)])
            },
            Route(method: "GET", pattern: "/v1/tokens/ledger", access: .user, summary: "The user's ledger entries, newest first.", query: ["user_id", "limit", "cursor"]) { call in
                let (user, (limit, text)) = (try call.owner(), try call.page())
                var before: Int64?
                if let text {
                    guard let id = Int64(text), id > 0 else { throw APIError(400, "invalid_cursor", "cursor is not one a previous page gave") }
                    before = id
                }
                let start = before
                let entries = try await read { try $0.ledger(userID: user, before: start, limit: limit) }
                return .page(entries.map(\.json), next: entries.count == limit ? entries.last.map { String($0.id) } : nil)
            },
            Route(method: "POST", pattern: "/v1/tokens/credit", access: .operator, summary: "Add tokens to a user's balance: {user_id, amount, reason?, idempotency_key?}.", status: 201) { call in
                let body = try call.body(allowed: ["user_id", "amount", "reason", "idempotency_key"])
                guard let user = body["user_id"]?.stringValue, !user.isEmpty, user.count <= 200 else {
                    throw APIError(422, "invalid_request", "'user_id' is required")
                }
                guard let amount = body["amount"]?.intValue, (1...1_000_000_000).contains(amount) else {
                    throw APIError(422, "invalid_request", "'amount' must be an integer from 1 to 1000000000")
                }
                let reason = body["reason"]?.stringValue ?? "credit"
                // Namespaced by user: a client's key can never meet another user's credit or a debit's key.
                let key = "credit:\(user):" + (body["idempotency_key"]?.stringValue ?? UUID().uuidString)
                let (entry, created) = try await write { try $0.recordTokens(userID: user, change: amount, reason: reason, idempotencyKey: key) }
                return .json(["entry": entry.json, "balance": .int(entry.balanceAfter), "created": .bool(created)], status: created ? 201 : 200)
            },

            // MARK: Operators and introspection
            Route(method: "GET", pattern: "/v1/stats", access: .operator, summary: "Jobs by status, success rate, p50/p95 duration, queue depth, per pipeline.") { _ in
                .json(try await read { try $0.jobStats() })
            },
            Route(method: "GET", pattern: "/v1/pipelines", access: .user, summary: "Loaded pipeline versions and files that failed to load.") { _ in
                .json(["items": .array(pipelineDocuments(catalog))])
            },
            Route(method: "GET", pattern: "/v1/pipelines/{name}", access: .user, summary: "One pipeline: version, file, input schema, steps, definition.") { call in
                let name = call.parameter("name")
                guard let pipeline = catalog.pipeline(named: name) else { throw APIError.notFound("pipeline") }
                var document = pipelineDocument(pipeline, catalog: catalog)
                document["input"] = pipeline.input.json
                let levels = pipeline.graph.levels
                document["steps"] = .array(pipeline.steps.map { step in
                    var entry: [String: JSON] = [
                        "id": .string(step.id), "stage": .string(step.stage), "needs": .array(step.needs.map(JSON.string)),
                        "level": .int(levels.firstIndex { $0.contains(step.id) } ?? 0),
                    ]
                    if let forEach = step.forEach { entry["max_parallel"] = .int(forEach.maxParallel) }
                    if step.continueOnError { entry["continue_on_error"] = true }
                    return .object(entry)
                })
                document["definition"] = pipeline.canonical
                return .json(.object(document))
            },
            Route(method: "GET", pattern: "/v1/plugins", access: .operator, summary: "Plugins with their state, processes, restarts; manifests that did not load.") { _ in
                .json(["items": .array(configuration.plugins())])
            },
            Route(method: "GET", pattern: "/v1/providers", access: .operator, summary: "Providers with their kind, cooldown policy and each model's health: calls, failures, cooling down until when.") { _ in
                .json(["items": .array(configuration.providers())])
            },
            Route(method: "GET", pattern: "/v1/stages", access: .user, summary: "Every registered stage with its config schema.") { _ in
                .json(["items": .array(registry.descriptors.map(\.json))])
            },
            Route(method: "GET", pattern: "/", access: .anyone, summary: "The dashboard page (SPEC §10); it asks for a token or takes ?token=.") { _ in
                try Dashboard.reply("index.html")
            },
            Route(method: "GET", pattern: "/dashboard/{file}", access: .anyone, summary: "The dashboard's script and style sheet.") { call in
                try Dashboard.reply(call.parameter("file"))
            },
            Route(method: "GET", pattern: "/healthz", access: .anyone, summary: "Liveness: the process answers.") { _ in
                .json(["status": "ok"])
            },
            Route(method: "GET", pattern: "/readyz", access: .anyone, summary: "Readiness: the database answers.") { _ in
                do {
                    _ = try await read { try $0.balance(userID: "") }
                    return .json(["status": "ready"])
                } catch {
                    return .json(["status": "unavailable", "error": .string("database: \(error)")], status: 503)
                }
            },
            Route(method: "GET", pattern: "/metrics", access: .anyone, summary: "Prometheus metrics.") { _ in
                Reply(status: 200, raw: ("text/plain; version=0.0.4", try await metrics.render(store: store)))
            },
        ]
        return routes + [
            Route(method: "GET", pattern: "/openapi.json", access: .anyone, summary: "This document: OpenAPI 3.1, made from the route table.") { _ in
                .json(OpenAPI.document(routes: routes))
            },
        ]
    }

    /// A pipeline as `GET /v1/pipelines` lists it.
    static func pipelineDocument(_ pipeline: Pipeline, catalog: PipelineCatalog) -> [String: JSON] {
        var document: [String: JSON] = [
            "name": .string(pipeline.name), "version": .string(pipeline.version), "file": .string(pipeline.file),
            "description": .string(pipeline.description), "loaded_at": catalog.loadedAt(pipeline.name).map(JSON.string) ?? .null,
        ]
        if let failure = catalog.failures.first(where: { $0.diagnostics.first?.location.file == pipeline.file }) {
            document["error"] = .string(failure.description)
        }
        return document
    }

    static func pipelineDocuments(_ catalog: PipelineCatalog) -> [JSON] {
        let loaded = catalog.pipelines
        let files = Set(loaded.map(\.file))
        let broken: [JSON] = catalog.failures.compactMap { failure in
            guard let file = failure.diagnostics.first?.location.file, !files.contains(file) else { return nil }
            return ["name": .null, "version": .null, "file": .string(file), "loaded_at": .null, "error": .string(failure.description)]
        }
        return loaded.map { .object(pipelineDocument($0, catalog: catalog)) } + broken
    }
}
