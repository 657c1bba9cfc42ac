public import GenflowCore
public import GenflowEngine
public import GenflowHTTPServer
public import GenflowPipeline
public import GenflowQueue
internal import GenflowPostgres
internal import Foundation
public import Logging

/// SPEC §9's REST API over the store: routes, auth, ownership, pagination and errors. Every
/// handler is async and does its database work on the store's threads, never on the listener's.
public struct API: Sendable {
    public struct Configuration: Sendable {
        public var authenticator: Authenticator
        public var submitPerMinute: Int
        /// Where generated image files are kept (`images/…` paths are relative to it).
        public var stateDirectory: String
        /// `Access-Control-Allow-Origin` values allowed; `*` allows any.
        public var corsOrigins: [String]
        /// The plugins' status documents (`GET /v1/plugins`), read when asked.
        public var plugins: @Sendable () -> [JSON]
        /// The providers with their targets' health (`GET /v1/providers`), read when asked.
        public var providers: @Sendable () -> [JSON]

        public init(
            authenticator: Authenticator, submitPerMinute: Int, stateDirectory: String, corsOrigins: [String] = ["*"],
            plugins: @escaping @Sendable () -> [JSON] = { [] }, providers: @escaping @Sendable () -> [JSON] = { [] }
        ) {
            self.providers = providers
            self.authenticator = authenticator
            self.submitPerMinute = submitPerMinute
            self.stateDirectory = stateDirectory
            self.corsOrigins = corsOrigins
            self.plugins = plugins
        }
    }

    let store: JobStore
    let catalog: PipelineCatalog
    let registry: StageRegistry
    let configuration: Configuration
    let limiter: RateLimiter
    let metrics: MetricsPage
    let logger: Logger
    let routes: [Route]

    public init(store: JobStore, catalog: PipelineCatalog, registry: StageRegistry, configuration: Configuration, metrics: MetricsPage, logger: Logger) {
        self.logger = logger
        self.store = store
        self.catalog = catalog
        self.registry = registry
        self.configuration = configuration
        self.metrics = metrics
        limiter = RateLimiter(perMinute: configuration.submitPerMinute)
        routes = Self.makeRoutes(RouteContext(
            store: store, catalog: catalog, registry: registry, configuration: configuration, limiter: limiter, metrics: metrics,
            submitter: JobSubmitter(catalog: catalog, store: store)
        ))
    }

    /// Answers one request: CORS preflight, routing, auth, the route, errors as JSON.
    public func handle(_ request: ServerRequest) async -> ServerResponse {
        let started = ContinuousClock.now
        var response: ServerResponse
        var routeName = "unmatched"
        if request.method == "OPTIONS" {
            response = ServerResponse(status: 204, headers: [
                ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", "Authorization, Content-Type"), ("Access-Control-Max-Age", "600"),
            ])
        } else {
            do {
                let (route, parameters) = try match(request)
                routeName = "\(route.method) \(route.pattern)"
                var principal: Principal?
                if route.access != .anyone {
                    principal = try await configuration.authenticator.principal(
                        token: Authenticator.token(headers: request.headers, query: request.query), client: request.clientAddress)
                    if route.access == .operator, principal != .operator {
                        throw APIError(403, "forbidden", "this endpoint is for operators (the admin token)")
                    }
                }
                response = Self.encode(try await route.handler(Call(request: request, principal: principal, parameters: parameters)))
            } catch let error as APIError {
                response = Self.encode(Reply(status: error.status, body: error.body, headers: error.headers))
            } catch let error as SubmissionError {
                let status = error.code == "unknown_pipeline" ? 404 : 422
                let details: JSON? = error.details.isEmpty ? JSON?.none : .array(error.details.map { ["path": .string($0.path.joined(separator: ".")), "message": .string($0.message)] })
                response = Self.encode(Reply(status: status, body: APIError(status, error.code, error.message, details: details).body))
            } catch let error as PostgresError where error.isConnectionFailure {
                // The database is restarting or unreachable: a client may try again shortly.
                logger.warning("request failed: database unavailable", metadata: [
                    "genflow.route": "\(routeName)", "genflow.client": "\(request.clientAddress)", "genflow.error": "\(error)",
                ])
                response = Self.encode(Reply(status: 503, body: APIError(503, "unavailable", "the database is unavailable; try again shortly").body,
                                             headers: [("Retry-After", "1")]))
            } catch {
                // The cause stays in the log: database errors are not for clients.
                logger.error("request failed", metadata: ["genflow.route": "\(routeName)", "genflow.client": "\(request.clientAddress)", "genflow.error": "\(error)"])
                response = Self.encode(Reply(status: 500, body: APIError(500, "internal", "the request failed; the daemon's log says why").body))
            }
        }
        if let origin = request.headers["origin"] {
            if configuration.corsOrigins.contains("*") {
                response.headers += [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", "Retry-After")]
            } else if configuration.corsOrigins.contains(origin) {
                response.headers += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"), ("Access-Control-Expose-Headers", "Retry-After")]
            }
        }
        metrics.observeRequest(route: routeName, status: response.status, seconds: (ContinuousClock.now - started).seconds)
        return response
    }

    private func match(_ request: ServerRequest) throws(APIError) -> (Route, [String: String]) {
        var allowed: [String] = []
        for route in routes {
            guard let parameters = route.match(request.path) else { continue }
            if route.method == request.method { return (route, parameters) }
            allowed.append(route.method)
        }
        if !allowed.isEmpty {
            var error = APIError(405, "method_not_allowed", "\(request.method) is not allowed on \(request.path.prefix(200)) (allowed: \(allowed.joined(separator: ", ")))")
            error.headers = [("Allow", allowed.joined(separator: ", "))]
            throw error
        }
        throw APIError(404, "not_found", "no endpoint \(request.path.prefix(200))")
    }

    static func encode(_ reply: Reply) -> ServerResponse {
        if let raw = reply.raw { return ServerResponse(status: reply.status, contentType: raw.contentType, headers: reply.headers, body: raw.bytes) }
        let body = reply.body.map { Array($0.description.utf8) } ?? []
        return ServerResponse(status: reply.status, headers: reply.headers, body: body)
    }

    /// The routes, in matching order (a literal segment before a `{parameter}` at the same place).
    var openAPIRoutes: [Route] { routes }
}
