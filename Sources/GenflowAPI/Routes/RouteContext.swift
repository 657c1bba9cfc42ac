internal import GenflowEngine
internal import GenflowPipeline
internal import GenflowQueue

/// What the routes work with: the stores, the catalog and registry, the API's settings.
struct RouteContext: Sendable {
    let store: JobStore
    let catalog: PipelineCatalog
    let registry: StageRegistry
    let configuration: API.Configuration
    let limiter: RateLimiter
    let metrics: MetricsPage
    let submitter: JobSubmitter

    /// Runs `body` outside a transaction (reads).
    func read<T: Sendable>(_ body: @escaping @Sendable (StoreSession) throws -> T) async throws -> T { try await store.read(body) }

    /// Runs `body` in one transaction.
    func write<T: Sendable>(_ body: @escaping @Sendable (StoreSession) throws -> T) async throws -> T { try await store.write(body) }

    /// The page cursor a client sent back; a made-up one is a 400.
    func cursor(_ text: String?) throws -> PageCursor? {
        guard let text else { return nil }
        guard let cursor = PageCursor(text: text) else { throw APIError(400, "invalid_cursor", "cursor is not one a previous page gave") }
        return cursor
    }
}

extension API {
    /// Every endpoint of SPEC §9 but the WebSocket (`/v1/events`, upgraded before routing), one
    /// file per resource, and the OpenAPI document made from them.
    static func makeRoutes(_ context: RouteContext) -> [Route] {
        let routes = JobRoutes.routes(context) + PromptRoutes.routes(context) + ImageRoutes.routes(context) + TokenRoutes.routes(context)
            + PipelineRoutes.routes(context) + OperatorRoutes.routes(context)
        return routes + [
            Route(method: "GET", pattern: "/openapi.json", access: .anyone, summary: "This document: OpenAPI 3.1, made from the route table.") { _ in
                .json(OpenAPI.document(routes: routes))
            },
        ]
    }
}
