public import GenflowConfig
public import Logging
internal import GenflowAPI
internal import GenflowCore
internal import GenflowEngine
internal import GenflowHTTPServer
internal import Metrics
internal import Prometheus
internal import GenflowPipeline
internal import GenflowPlugins
internal import GenflowPostgres
internal import GenflowStages
internal import GenflowProviders
internal import GenflowQueue
internal import GenflowSchema
internal import GenflowTracing
internal import Foundation
internal import ServiceLifecycle
internal import UnixSignals

/// `genflow serve`: one daemon — database (embedded or configured), migrations, pipelines, the
/// engine, notifications, housekeeping and reload — under one service group. SIGTERM or SIGINT
/// drains gracefully; SIGHUP reloads the pipelines.
public enum Daemon {
    /// Whether `test.step` is registered (`GENFLOW_TEST_STAGES=1`: tests and benchmarks).
    public static var testStagesEnabled: Bool {
        ProcessInfo.processInfo.environment["GENFLOW_TEST_STAGES"] == "1"
    }

    /// Runs until a shutdown signal, then returns after draining.
    public static func serve(config: DaemonConfig, logger: Logger) async throws {
        let started = ContinuousClock.now
        let database = try await DatabaseConnection.open(config: config, ownsEmbedded: true, logger: logger)
        let pool = DatabasePool(connectionString: database.url, size: config.databasePoolSize)
        // One cleanup path, whether the daemon stops or fails to start: an embedded PostgreSQL this
        // process started must not outlive it.
        let outcome: Result<Void, any Error>
        do {
            try await serve(config: config, database: database, pool: pool, started: started, logger: logger)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        pool.close()
        await database.close(logger: logger)
        try outcome.get()
        logger.notice("genflow stopped")
    }

    /// Development only (the secrets come from `<state_dir>/auth.json`, not the configuration): the
    /// user `dev` gets 10,000 tokens once, and the dashboard's address with a day's token for `dev`
    /// goes to standard output, so a new user can open it and draw. Never logged.
    private static func welcomeDeveloper(store: JobStore, secrets: AuthSecrets, file: String, address: String, logger: Logger) async throws {
        let (_, created) = try await store.write {
            try $0.recordTokens(userID: "dev", change: 10_000, reason: "development welcome", idempotencyKey: "credit:dev:welcome")
        }
        let balance = try await store.read { try $0.balance(userID: "dev") }
        if created { logger.notice("development: credited user dev with 10000 tokens (once per database)") }
        let token = JWT.sign(subject: "dev", lifetime: .seconds(86_400), secret: secrets.jwtSecret, now: Date())
        FileHandle.standardOutput.write(Data("""

            Dashboard (user dev, balance \(balance); the token is valid for 24 h):
              http://\(address)/?token=\(token)
            Operator view: the admin token in \(file).


            """.utf8))
    }

    private static func serve(config: DaemonConfig, database: DatabaseConnection, pool: DatabasePool, started: ContinuousClock.Instant, logger: Logger) async throws {
        let store = JobStore(pool: pool)
        let (applied, current) = try await pool.withConnection { connection in
            (try Migrations.migrate(connection), try Migrations.currentVersion(connection))
        }
        if !applied.isEmpty { logger.notice("applied database migrations", metadata: ["genflow.versions": "\(applied)"]) }
        if let known = Migrations.all.last?.version, current > known {
            // A newer daemon migrated the database during a rolling upgrade: this one runs on the
            // newer schema (migrations keep the previous release working), but should be replaced.
            logger.warning("the database schema is newer than this daemon: upgrade it", metadata: [
                "genflow.schema_version": "\(current)", "genflow.daemon_schema_version": "\(known)", "genflow.version": "\(GenflowVersion.version)",
            ])
        }

        let plugins = await PluginSet.load(directory: config.pluginsDir, start: true, reserved: BuiltinStages.names, logger: logger)
        for failure in plugins.failures { logger.error("plugin not loaded: \(failure)") }
        let health = ProviderHealth()
        let registry = config.makeStageRegistry(health: health, testStages: testStagesEnabled, plugins: plugins.stages)
        let catalog = PipelineCatalog(loader: PipelineLoader(registry: registry))
        try await reload(catalog: catalog, directory: config.pipelinesDir, store: store, logger: logger)

        let engine = Engine(store: store, catalog: catalog, registry: registry, configuration: engineConfiguration(config), logger: logger)
        let metrics = MetricsPage()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
        let secrets = try authSecrets(config, logger: logger)
        let authenticator = Authenticator(
            jwtSecret: secrets.jwtSecret, adminToken: secrets.adminToken, failuresPerMinute: config.authFailuresPerMinute, clockSkew: config.clockSkew,
            identity: try identityProvider(config, logger: logger)
        )
        let hub = EventHub(store: store, authenticator: authenticator, metrics: metrics, logger: logger)
        let api = API(
            store: store, catalog: catalog, registry: registry,
            configuration: API.Configuration(
                authenticator: authenticator, submitPerMinute: config.submitPerMinute, stateDirectory: config.stateDir, corsOrigins: config.corsOrigins,
                plugins: { plugins.statusDocuments }, providers: { BuiltinStages.providerStatus(config.providers, health: health) }
            ),
            metrics: metrics, logger: logger
        )
        let (host, port) = config.listenAddress
        let server = HTTPServer(host: host, port: port, options: listenerOptions(config), handler: api.handle, upgrader: hub.upgrade)
        try server.start()

        let listener = NotificationListener(
            connectionString: database.url, channels: [JobStore.jobsChannel, JobStore.scheduledChannel, JobStore.eventsChannel, JobStore.cancelChannel]
        ) { channel in
            engine.notify(channel: channel)
            if channel == JobStore.eventsChannel { hub.notified() }
        }

        var services: [any Service] = [
            APIService(server: server, hub: hub),
            engine,
            Housekeeper(store: store, retention: config.retention, logger: logger),
            Reloader(catalog: catalog, directory: config.pipelinesDir, store: store, logger: logger, plugins: plugins, pluginsDirectory: config.pluginsDir),
        ]
        // First in the group, so it stops last: it sends the spans the others ended with.
        if let endpoint = config.otlpEndpoint {
            services.insert(Telemetry.bootstrap(endpoint: endpoint, serviceName: config.serviceName, logger: logger), at: 0)
            logger.notice("exporting traces", metadata: ["genflow.otlp_endpoint": "\(endpoint)"])
        }
        if let manager = ServiceManagerSocket.fromEnvironment() {
            let status = "serving on \(host):\(server.port), \(catalog.pipelines.count) pipeline(s), \(config.workers) workers"
            services.append(ServiceManagerNotifier(socket: manager, status: status, watchdog: ServiceManagerSocket.watchdogInterval(), logger: logger))
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        let startup = ContinuousClock.now - started
        logger.notice("genflow ready", metadata: [
            "genflow.listen": "\(host):\(server.port)", "genflow.owner": "\(engine.owner)", "genflow.pipelines": "\(catalog.pipelines.map(\.name))",
            "genflow.startup_ms": "\(startup.milliseconds)", "genflow.database": "\(database.isEmbedded ? "embedded" : "configured")",
        ])
        if let file = secrets.file {
            try await welcomeDeveloper(store: store, secrets: secrets, file: file, address: "\(host == "0.0.0.0" ? "127.0.0.1" : host):\(server.port)", logger: logger)
        }
        defer {
            listener.stop()
            server.stop()
        }
        do {
            try await group.run()
        } catch {
            await plugins.stop(grace: .seconds(2))
            throw error
        }
        await plugins.stop(grace: .seconds(2))
    }

    /// The engine's settings from the config's `workers`, `queue` and `limits` sections.
    private static func engineConfiguration(_ config: DaemonConfig) -> EngineConfiguration {
        EngineConfiguration(
            workers: config.workers, lease: config.lease, pollInterval: config.pollInterval, maxRescues: config.maxRescues,
            runningPerUser: config.runningPerUser, shutdownGrace: config.shutdownGrace
        )
    }

    /// An identity provider's keys and rules (`auth.jwks_url`, `auth.jwks_file`), when configured.
    private static func identityProvider(_ config: DaemonConfig, logger: Logger) throws -> (keys: IdentityKeys, rules: IdentityRules)? {
        let identity = config.identity
        guard identity.isConfigured else { return nil }
        let keys = try IdentityKeys(
            url: identity.jwksURL, file: identity.jwksFile, refresh: identity.jwksRefresh, unknownKeyRefetch: identity.jwksRefetchInterval, logger: logger
        )
        let rules = IdentityRules(
            issuer: identity.issuer, audiences: identity.audiences, userClaim: identity.userClaim,
            operatorClaim: identity.operatorClaim, operatorValue: identity.operatorValue
        )
        logger.notice("accepting an identity provider's tokens (RS256, ES256, EdDSA)", metadata: [
            "genflow.jwks": "\(identity.jwksURL ?? identity.jwksFile ?? "")", "genflow.issuer": "\(identity.issuer ?? "-")",
            "genflow.audience": "\(identity.audiences)",
        ])
        return (keys, rules)
    }

    /// The configured secrets, or the development ones in the state directory (made on first use).
    private static func authSecrets(_ config: DaemonConfig, logger: Logger) throws -> AuthSecrets {
        let secrets = try config.authSecrets()
        if secrets.isNew, let file = secrets.file {
            logger.notice("generated development credentials (auth.jwt_secret, auth.admin_token) in \(file); `genflow token --user ID` mints user tokens")
        }
        return secrets
    }

    /// The listener's options from the config's `listener` section and `limits.max_body_bytes`.
    private static func listenerOptions(_ config: DaemonConfig) -> HTTPServer.Options {
        var options = HTTPServer.Options()
        let limits = config.listener
        options.maxBodyBytes = config.maxBodyBytes
        options.headerTimeout = Int(limits.headerTimeout.components.seconds)
        options.bodyTimeout = Int(limits.bodyTimeout.components.seconds)
        options.keepAliveTimeout = Int(limits.keepAliveTimeout.components.seconds)
        options.pingAfter = Int(limits.pingAfter.components.seconds)
        options.hangUpAfter = Int(limits.hangUpAfter.components.seconds)
        options.maxHeadBytes = limits.maxHeadBytes
        options.maxTargetBytes = limits.maxTargetBytes
        options.connectionsPerAddress = limits.maxConnectionsPerAddress
        options.unfinishedPerAddress = limits.maxUnfinishedPerAddress
        options.trustedProxies = limits.trustedProxies
        return options
    }

    /// Loads the pipelines directory and stores each loaded version; logs files that failed.
    static func reload(catalog: PipelineCatalog, directory: String, store: JobStore, logger: Logger) async throws {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) || !isDirectory.boolValue {
            logger.warning("pipelines directory \(directory) does not exist: no pipeline is loaded (pipelines_dir, GENFLOW_PIPELINES_DIR)")
        }
        let report = catalog.load(directory: directory)
        for failure in report.newlyRejected {
            for diagnostic in failure.diagnostics { logger.error("pipeline rejected: \(diagnostic)") }
        }
        // Operators see reloads as events of no user (`user_id` ""): an operator's WebSocket
        // without ?user_id= receives them.
        var events = report.added.map { pipeline in
            NewEvent(userID: "", jobID: nil, type: .pipelineLoaded, data: [
                "name": .string(pipeline.name), "version": .string(pipeline.version), "file": .string(pipeline.file),
            ])
        }
        events += report.removed.map { NewEvent(userID: "", jobID: nil, type: .pipelineRemoved, data: ["name": .string($0)]) }
        events += report.newlyRejected.map { failure in
            NewEvent(userID: "", jobID: nil, type: .pipelineRejected, data: [
                "file": .string(failure.diagnostics.first?.location.file ?? ""), "error": .string(failure.description),
            ])
        }
        let (added, pending) = (report.added, events)
        guard !added.isEmpty || !pending.isEmpty else { return }
        try await store.write { session in
            for pipeline in added {
                try session.recordPipelineVersion(name: pipeline.name, version: pipeline.version, definition: pipeline.canonical, file: pipeline.file)
            }
            try pending.forEach(session.append)
        }
        if !added.isEmpty || !report.removed.isEmpty {
            logger.info("pipelines loaded", metadata: [
                "genflow.pipelines": "\(catalog.pipelines.map { "\($0.name)@\($0.shortVersion)" })", "genflow.removed": "\(report.removed)",
            ])
        }
    }
}

/// Where the daemon's database is: the configured URL, or the embedded server it started.
public struct DatabaseConnection: Sendable {
    public let url: String
    let embedded: EmbeddedPostgres?

    public var isEmbedded: Bool { embedded != nil }

    /// The configured database, or the embedded one (started if needed). The daemon owns the
    /// embedded server and stops it when it exits; a command (`submit`, `jobs`…) leaves running a
    /// server it had to start, so it never stops one a daemon is using.
    public static func open(config: DaemonConfig, ownsEmbedded: Bool, logger: Logger) async throws -> DatabaseConnection {
        if let url = config.databaseURL { return DatabaseConnection(url: url.value, embedded: nil) }
        // initdb and pg_ctl block for seconds: run them on a thread of their own, not the cooperative pool.
        let embedded = try await onOwnThread { try EmbeddedPostgres.start(stateDirectory: config.stateDir, owns: ownsEmbedded, logger: logger) }
        return DatabaseConnection(url: embedded.url, embedded: embedded)
    }

    /// Stops the embedded server if this process owns it (pg_ctl stop, on a thread of its own).
    public func close(logger: Logger) async {
        guard let embedded, embedded.stopsOnClose else { return }
        _ = try? await onOwnThread { embedded.stop(logger: logger) }
    }
}

/// Deletes finished jobs and old events past the retention period, hourly, one daemon at a time.
struct Housekeeper: Service {
    let store: JobStore
    let retention: Duration
    let logger: Logger

    func run() async throws {
        // Cancelled at shutdown: the sleeps end with CancellationError, which is a normal end here.
        try? await cancelWhenGracefulShutdown {
            try await Task.sleep(for: .seconds(10))
            while !Task.isCancelled {
                do {
                    let retention = retention
                    if let deleted = try await store.read({ try $0.deleteExpired(retention: retention) }), deleted.jobs + deleted.events > 0 {
                        logger.info("deleted expired jobs and events", metadata: ["genflow.jobs": "\(deleted.jobs)", "genflow.events": "\(deleted.events)"])
                    }
                } catch {
                    logger.warning("housekeeping failed", metadata: ["genflow.error": "\(error)"])
                }
                try await Task.sleep(for: .seconds(3_600))
            }
        }
    }
}

/// Reloads the pipelines on SIGHUP. A file that fails keeps its previous version running.
struct Reloader: Service {
    let catalog: PipelineCatalog
    let directory: String
    let store: JobStore
    let logger: Logger
    var plugins = PluginSet()
    var pluginsDirectory: String?
    /// How long to wait after a change for the rest of an editor's writes.
    var debounce: Duration = .milliseconds(20)

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        let pluginFolders = pluginsDirectory.map { [$0] + PluginManifest.pluginDirectories(in: $0) } ?? []
        let watcher = DirectoryWatcher(directories: [directory] + pluginFolders)
        if watcher == nil { logger.warning("cannot watch \(directory) (inotify); pipelines reload on SIGHUP only") }
        defer { watcher?.stop() }
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in signals {
                        logger.notice("SIGHUP: reloading pipelines and plugins")
                        await reload()
                    }
                }
                if let watcher {
                    group.addTask {
                        for await _ in watcher.changes {
                            try? await Task.sleep(for: debounce)
                            await reload()
                        }
                    }
                }
                await group.waitForAll()
            }
        }
    }

    private func reload() async {
        if let pluginsDirectory { await plugins.reload(directory: pluginsDirectory, logger: logger) }
        do {
            try await Daemon.reload(catalog: catalog, directory: directory, store: store, logger: logger)
        } catch {
            logger.error("reload failed", metadata: ["genflow.error": "\(error)"])
        }
    }
}
