public import GenflowCore
internal import GenflowYAML
internal import Foundation

/// The daemon configuration (`etc/genflow.yaml`), after `${VAR}` expansion and environment overrides.
/// Precedence: command-line flags (applied by the caller) > environment > file > defaults.
public struct DaemonConfig: Sendable {
    /// `host:port` of the HTTP/WebSocket listener.
    public var listen = "127.0.0.1:8080"
    /// A libpq connection string or URL; nil means the embedded PostgreSQL under `stateDir`.
    public var databaseURL: Secret?
    /// Connections the daemon keeps open (each on a thread of its own).
    public var databasePoolSize = 16
    public var stateDir = ".genflow"
    public var pipelinesDir = "pipelines"
    public var pluginsDir = "plugins"
    /// Jobs run at once by this daemon.
    public var workers = 64
    /// HS256 key for user tokens; nil = generated and printed once in development.
    public var jwtSecret: Secret?
    /// Bearer token for operator endpoints; nil = generated and printed once in development.
    public var adminToken: Secret?
    /// Model providers by name; always has `default`.
    public var providers: [String: ProviderConfig] = [:]
    /// Jobs one user may have running at once (nil = no cap).
    public var runningPerUser: Int?
    /// Job submissions one user may make per minute.
    public var submitPerMinute = 600
    /// Bad tokens one client address may send per minute before its requests get 429.
    public var authFailuresPerMinute = 60
    /// Clock skew allowed around a token's `exp` and `nbf`.
    public var clockSkew: Duration = .seconds(30)
    /// An identity provider's tokens (RS256, ES256, EdDSA): where its keys are, and what is checked.
    public var identity = IdentityProvider()

    public struct IdentityProvider: Sendable {
        /// The provider's JWKS, fetched and cached (`auth.jwks_url`).
        public var jwksURL: String?
        /// A JWKS document on disk, read at start (`auth.jwks_file`).
        public var jwksFile: String?
        /// How long fetched keys are used before they are fetched again.
        public var jwksRefresh: Duration = .seconds(600)
        /// A token with an unknown `kid` fetches the keys again at most once per this interval.
        public var jwksRefetchInterval: Duration = .seconds(30)
        /// `iss` a token must carry, when set.
        public var issuer: String?
        /// `aud` values of which a token must carry one, when set.
        public var audiences: [String] = []
        /// The claim that names the user.
        public var userClaim = "sub"
        /// The claim, and the value of it, that make the caller an operator.
        public var operatorClaim: String?
        public var operatorValue: String?

        public init() {}

        public var isConfigured: Bool { jwksURL != nil || jwksFile != nil }
    }
    /// Largest accepted HTTP request body.
    public var maxBodyBytes = 1 << 20
    /// Caps on each user's spend on priced model calls (`limits.budget`).
    public var budget = SpendLimits()
    /// Browser origins the API answers with CORS headers; `*` is any.
    public var corsOrigins = ["*"]
    /// How long finished jobs and their events are kept.
    public var retention: Duration = .seconds(7 * 86_400)
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`.
    public var logLevel = "info"
    /// OTLP/HTTP collector (`http://host:4318`); traces are off when unset.
    public var otlpEndpoint: String?
    /// `service.name` of the exported traces.
    public var serviceName = "genflow"
    /// How long a claimed job stays a daemon's without a heartbeat.
    public var lease: Duration = .seconds(30)
    /// Longest wait for work when no notification arrives.
    public var pollInterval: Duration = .seconds(1)
    /// Takeovers after which a job fails as poisoned.
    public var maxRescues = 5
    /// On SIGTERM, how long running steps may go on before their jobs are released.
    public var shutdownGrace: Duration = .seconds(30)
    /// What the listener allows each client (the `listener` section).
    public var listener = ListenerLimits()
    /// The file this was read from, if any.
    public var file: String?

    public init() {}

    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// The environment variables that override file values, by config key.
    public static let environmentKeys: [(key: String, variable: String)] = [
        ("listen", "GENFLOW_LISTEN"), ("database.url", "DATABASE_URL"), ("state_dir", "GENFLOW_STATE_DIR"),
        ("pipelines_dir", "GENFLOW_PIPELINES_DIR"), ("plugins_dir", "GENFLOW_PLUGINS_DIR"), ("workers", "GENFLOW_WORKERS"),
        ("auth.jwt_secret", "GENFLOW_JWT_SECRET"), ("auth.admin_token", "GENFLOW_ADMIN_TOKEN"),
        ("telemetry.otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"), ("telemetry.service_name", "OTEL_SERVICE_NAME"),
    ]

    /// Reads `file` (when it exists, or always when `required`), then applies `environment`.
    public static func load(
        file: String, required: Bool = false, environment: [String: String]? = nil
    ) throws(DiagnosticsError) -> DaemonConfig {
        let environment = environment ?? ProcessInfo.processInfo.environment
        var config = DaemonConfig()
        var reader = NodeReader()
        if FileManager.default.fileExists(atPath: file) {
            config.file = file
            guard let data = FileManager.default.contents(atPath: file) else {
                throw DiagnosticsError([Diagnostic(at: SourceLocation(file: file, line: 1, column: 1), "cannot read config file")])
            }
            let root: YAMLNode
            do {
                root = try EnvironmentExpansion.expand(try YAMLParser.parse(bytes: Array(data), file: file), environment: environment)
            } catch let error as Diagnostic {
                throw DiagnosticsError([error])
            } catch let error as DiagnosticsError {
                throw error
            } catch {
                throw DiagnosticsError([Diagnostic(at: SourceLocation(file: file, line: 1, column: 1), "\(error)")])
            }
            if !root.isNull { config.read(root, reader: &reader) }
            reader.sortByLocation()
        } else if required {
            throw DiagnosticsError([Diagnostic(at: SourceLocation(file: file, line: 1, column: 1), "config file not found")])
        }
        config.applyEnvironment(environment, reader: &reader)
        config.addDefaultProvider(environment: environment)
        if (config.identity.operatorClaim == nil) != (config.identity.operatorValue == nil) {
            reader.error(at: SourceLocation(file: file, line: 1, column: 1), "auth.operator_claim and auth.operator_value go together: set both, or neither")
        }
        if !reader.diagnostics.isEmpty { throw DiagnosticsError(reader.diagnostics) }
        return config
    }

    private mutating func read(_ root: YAMLNode, reader: inout NodeReader) {
        read(root, at: [], keys: Self.keys, reader: &reader)
        func node(at path: [String]) -> YAMLNode? {
            path.reduce(Optional(root)) { node, key in node?.mapping?.first { $0.key.keyText == key }?.value }
        }
        for (keys, message) in listener.problems {
            let at = keys.lazy.compactMap { node(at: ["listener", $0]) }.first
            reader.error(at: at?.location ?? root.location, message)
        }
    }

    private mutating func applyEnvironment(_ environment: [String: String], reader: inout NodeReader) {
        func value(_ variable: String) -> String? {
            guard let value = environment[variable], !value.isEmpty else { return nil }
            return value
        }
        func fail(_ variable: String, _ message: String) {
            reader.error(at: SourceLocation(file: "$\(variable)", line: 1, column: 1), message)
        }
        if let text = value("GENFLOW_LISTEN") {
            if Self.isListenAddress(text) { listen = text } else { fail("GENFLOW_LISTEN", "must be host:port, not '\(text)'") }
        }
        if let url = value("DATABASE_URL") { databaseURL = Secret(url) }
        if let dir = value("GENFLOW_STATE_DIR") { stateDir = dir }
        if let dir = value("GENFLOW_PIPELINES_DIR") { pipelinesDir = dir }
        if let dir = value("GENFLOW_PLUGINS_DIR") { pluginsDir = dir }
        if let text = value("GENFLOW_WORKERS") {
            if let count = Int(text), (1...100_000).contains(count) { workers = count } else {
                fail("GENFLOW_WORKERS", "must be an integer between 1 and 100000, not '\(text)'")
            }
        }
        if let secret = value("GENFLOW_JWT_SECRET") {
            if secret.utf8.count < 32 { fail("GENFLOW_JWT_SECRET", "must be at least 32 bytes long") }
            jwtSecret = Secret(secret)
        }
        if let token = value("GENFLOW_ADMIN_TOKEN") { adminToken = Secret(token) }
    }

    /// Without a configured `default`: OpenAI when `OPENAI_API_KEY` is set, else the offline provider.
    private mutating func addDefaultProvider(environment: [String: String]) {
        guard providers["default"] == nil else { return }
        if let key = environment["OPENAI_API_KEY"], !key.isEmpty {
            providers["default"] = .openai(apiKey: Secret(key))
        } else {
            providers["default"] = .offline()
        }
    }

    /// `listen` as (host, port).
    public var listenAddress: (host: String, port: Int) {
        let colon = listen.lastIndex(of: ":") ?? listen.endIndex
        let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return (host.isEmpty ? "127.0.0.1" : host, Int(listen[listen.index(after: colon)...]) ?? 8080)
    }

    /// `host:port` with an IPv4 address, a host name or an interface name (the listener has no IPv6).
    static func isListenAddress(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return false }
        let host = text[..<colon]
        return (0...65_535).contains(port) && !host.isEmpty && !host.contains(":") && !host.contains("[")
    }
}
