
/// Operators' figures and the process: stats, plugins, providers, dashboard, health, metrics.
enum OperatorRoutes {
    static func routes(_ context: RouteContext) -> [Route] {
        [
            Route(method: "GET", pattern: "/v1/stats", access: .operator, summary: "Jobs by status, success rate, p50/p95 duration, queue depth, per pipeline.") { _ in
                .json(try await context.read { try $0.jobStats() }.json)
            },
            Route(method: "GET", pattern: "/v1/plugins", access: .operator, summary: "Plugins with their state, processes, restarts; manifests that did not load.") { _ in
                .json(["items": .array(context.configuration.plugins())])
            },
            Route(method: "GET", pattern: "/v1/providers", access: .operator, summary: "Providers with their kind, cooldown policy and each model's health: calls, failures, cooling down until when.") { _ in
                .json(["items": .array(context.configuration.providers())])
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
                    _ = try await context.read { try $0.balance(userID: "") }
                    return .json(["status": "ready"])
                } catch {
                    return .json(["status": "unavailable", "error": .string("database: \(error)")], status: 503)
                }
            },
            Route(method: "GET", pattern: "/metrics", access: .anyone, summary: "Prometheus metrics.") { _ in
                Reply(status: 200, raw: ("text/plain; version=0.0.4", try await context.metrics.render(store: context.store)))
            },
        ]
    }
}
