package import Foundation
package import GenflowConfig
package import GenflowCore
package import GenflowEngine
package import GenflowPipeline
package import GenflowPostgres
package import GenflowStages
package import GenflowHTTPClient
package import GenflowTestSupport
package import GenflowQueue
package import GenflowSchema
package import Logging

/// The cluster `make test` starts. Engine tests fail loudly without it.
package func baseDatabaseURL() throws -> String {
    guard let url = ProcessInfo.processInfo.environment["GENFLOW_TEST_DATABASE_URL"], !url.isEmpty else {
        throw PostgresError(message: "GENFLOW_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts a throwaway PostgreSQL")
    }
    return url
}

/// A database of one's own per test (so engines of parallel tests never claim each other's jobs),
/// copied from a migrated template.
package enum TestDatabases {
    private static let template = Task { () throws -> String in
        let base = try baseDatabaseURL()
        let admin = try PostgresConnection(base)
        let name = "genflow_template_\(ProcessInfo.processInfo.processIdentifier)"
        try admin.execute("DROP DATABASE IF EXISTS \(name)")
        try admin.execute("CREATE DATABASE \(name)")
        do {
            let connection = try PostgresConnection(url(base, database: name))
            try Migrations.migrate(connection)
        }
        return name
    }

    package static func url(_ base: String, database: String) -> String {
        base.replacingOccurrences(of: "postgresql:///genflow?", with: "postgresql:///\(database)?")
    }

    /// A new, migrated database's URL.
    package static func make() async throws -> String {
        let template = try await template.value
        let base = try baseDatabaseURL()
        let name = "genflow_test_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        let admin = try PostgresConnection(base)
        // Creating from a template fails while another copy is being made; try again.
        var attempt = 0
        while true {
            attempt += 1
            let failure: (any Error)?
            do {
                try admin.execute("CREATE DATABASE \(name) TEMPLATE \(template)")
                failure = nil
            } catch {
                failure = error
            }
            guard let failure else { break }
            guard attempt < 50, "\(failure)".contains("being accessed") else { throw failure }
            try await Task.sleep(for: .milliseconds(20))
        }
        return url(base, database: name)
    }
}

/// A database, the stores over it and pipelines loaded from YAML text: enough to run engines.
package struct Harness {
    package let url: String
    package let store: JobStore
    package let catalog: PipelineCatalog
    package let registry: StageRegistry
    package let directory: String

    /// A harness with the given pipelines (`name: yaml`), written to a directory of their own.
    /// With `inProcess: false` the pipelines are for a daemon process (they may use plugin stages
    /// this process does not have), so the harness's own catalog is not required to load them.
    package static func make(
        pipelines: [String: String], providers: [String: ProviderConfig] = [:], budget: SpendLimits = SpendLimits(), inProcess: Bool = true
    ) async throws -> Harness {
        let url = try await TestDatabases.make()
        let store = JobStore(pool: DatabasePool(connectionString: url, size: 8))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-engine-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let registry = BuiltinStages.makeRegistry(
            providers: providers.merging(["default": ProviderConfig.offline(delay: .milliseconds(1))]) { mine, _ in mine },
            budget: budget,
            stateDirectory: directory, testStages: true
        )
        let catalog = PipelineCatalog(loader: PipelineLoader(registry: registry))
        for (name, yaml) in pipelines {
            try yaml.write(toFile: "\(directory)/\(name).yaml", atomically: true, encoding: .utf8)
        }
        catalog.load(directory: directory)
        if inProcess, !catalog.failures.isEmpty { throw HarnessError("pipelines failed to load: \(catalog.failures)") }
        return Harness(url: url, store: store, catalog: catalog, registry: registry, directory: directory)
    }

    /// A file path in the harness's directory.
    package func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// An engine over this harness's database.
    package func engine(
        workers: Int = 8, lease: Duration = .seconds(30), runningPerUser: Int? = nil, grace: Duration = .seconds(1),
        claimAhead: Duration = .milliseconds(100), readyTimeToLive: Duration = .seconds(2)
    ) -> Engine {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return Engine(
            store: store, catalog: catalog, registry: registry,
            configuration: EngineConfiguration(
                workers: workers, lease: lease, pollInterval: .milliseconds(50), runningPerUser: runningPerUser, shutdownGrace: grace,
                claimAheadWindow: claimAhead, readyTimeToLive: readyTimeToLive
            ),
            logger: logger
        )
    }

    /// Runs `engine` until `body` returns, then stops it.
    package func running<T>(_ engine: Engine, _ body: () async throws -> T) async throws -> T {
        let task = Task { try await engine.run() }
        defer { task.cancel() }
        let value = try await body()
        task.cancel()
        _ = await task.result
        return value
    }

    @discardableResult
    package func submit(_ pipeline: String, input: JSON = [:], user: String = "u1", priority: Int = 0, key: String? = nil, runAt: String? = nil) async throws -> Job {
        try await JobSubmitter(catalog: catalog, store: store).submit(
            pipeline: pipeline, input: input, userID: user, priority: priority, idempotencyKey: key, runAt: runAt
        ).job
    }

    package func job(_ id: String) async throws -> Job {
        guard let job = try await store.read({ try $0.job(id: id) }) else { throw HarnessError("no job \(id)") }
        return job
    }

    package func runs(_ id: String) async throws -> [StepRun] {
        try await store.read { try $0.stepRuns(jobID: id) }
    }

    /// The job's events. Events become readable once every older transaction in the cluster has
    /// ended (tests in parallel keep some open), so for a finished job this waits for its last event.
    package func events(_ id: String) async throws -> [Event] {
        let finished = try await job(id).status.isTerminal
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let events = try await store.read { try $0.events(after: .start, jobID: id, limit: 10_000) }
            let complete = events.contains { $0.kind.map(EventType.jobEnds.contains) == true }
            if !finished || complete || ContinuousClock.now > deadline { return events }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until the job is in one of `statuses`; throws after 60 s (a guard against a hang, not a
    /// timing assertion).
    @discardableResult
    package func wait(for id: String, _ statuses: Set<JobStatus> = [.completed, .failed, .cancelled]) async throws -> Job {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let job = try await job(id)
            if statuses.contains(job.status) { return job }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("job \(id) still \(try await job(id).status) after 60 s, expected \(statuses)")
    }

    /// Waits until the job's attempts satisfy `condition` (e.g. a step is running); throws after
    /// `timeout` with the attempts it saw.
    @discardableResult
    package func waitForRuns(
        of id: String, timeout: Duration = .seconds(30), _ what: String, until condition: ([StepRun]) -> Bool
    ) async throws -> [StepRun] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let runs = try await runs(id)
            if condition(runs) { return runs }
            guard ContinuousClock.now < deadline else {
                throw HarnessError("job \(id): \(what) not seen within \(timeout) (attempts: \(runs.map { "\($0.stepID) \($0.status)" }))")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until a session of the harness database waits for a lock (this database is the
    /// test's own); throws after a minute (a hang guard).
    package func waitForLockWait(_ what: String) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while try await query("""
            SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE NOT l.granted AND a.datname = current_database()
            """).first?["n"] == "0" {
            guard ContinuousClock.now < deadline else { throw HarnessError("\(what) never waited for a lock") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Runs SQL on the harness database and returns the rows.
    package func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> [PostgresRow] {
        try await store.pool.withConnection { try $0.query(sql, parameters).rows }
    }
}


/// A test's setup or wait that did not work out: the test fails with this, instead of hanging.
package struct HarnessError: Error, CustomStringConvertible {
    package var description: String

    package init(_ description: String) {
        self.description = description
    }
}
