import Foundation
import GenflowConfig
import GenflowCore
import GenflowDaemon
import GenflowPostgres
import GenflowQueue
import GenflowSchema
import GenflowTesting
import Logging

/// A database that lives for one command (`genflow test`, `genflow run --dry-run`): a new
/// database on the server `url` names, dropped afterwards; or, without a URL, a PostgreSQL cluster
/// of its own in a temporary folder, stopped and deleted afterwards. The configured database is
/// never touched.
enum ThrowawayDatabase {
    static func with<T>(url: String?, logger: Logger, _ body: (JobStore, _ stateDirectory: String) async throws -> T) async throws -> T {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-throwaway-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // libpq outside the pool, initdb and pg_ctl block: each runs on a thread of its own.
        if let url {
            let name = "genflow_throwaway_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
            try await onOwnThread { try PostgresConnection(url).execute("CREATE DATABASE \(name)") }
            let result = await Result { try await run(url: try renamed(url, database: name), folder: folder, body) }
            _ = try? await onOwnThread { try PostgresConnection(url).execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
            return try result.get()
        }
        let embedded = try await onOwnThread { try EmbeddedPostgres.start(stateDirectory: folder, owns: true, logger: logger) }
        let result = await Result { try await run(url: embedded.url, folder: folder, body) }
        _ = try? await onOwnThread { embedded.stop(logger: logger) }
        return try result.get()
    }

    private static func run<T>(url: String, folder: String, _ body: (JobStore, String) async throws -> T) async throws -> T {
        let pool = DatabasePool(connectionString: url, size: 4)
        defer { pool.close() }
        _ = try await pool.withConnection { try Migrations.migrate($0) }
        return try await body(JobStore(pool: pool), folder)
    }

    /// `url` naming `database` instead (URL form `postgresql://…/name?…` or key/value `dbname=…`).
    static func renamed(_ url: String, database: String) throws -> String {
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://"), var components = URLComponents(string: url) {
            components.path = "/" + database
            if let string = components.string { return string }
        }
        guard !url.contains("://") else { throw CommandFailure("cannot read the database URL to make a throwaway database on its server") }
        let pairs = url.split(separator: " ").filter { !$0.hasPrefix("dbname=") }
        return (pairs + ["dbname=\(database)"]).joined(separator: " ")
    }
}

extension DaemonConfig {
    /// Runs `files` through `PipelineTestRunner` on a throwaway database (`url`'s server, else a
    /// temporary cluster), with this config's provider names and its plugins' stages (no process started).
    func runPipelineTests(_ files: [PipelineTestFile], url: String?, report: (PipelineTestRunner.CaseResult) -> Void) async throws -> [PipelineTestRunner.CaseResult] {
        let logger = Log.make(level: "warning")
        let plugins = await loadPlugins(start: false)
        return try await ThrowawayDatabase.with(url: url, logger: logger) { store, folder in
            let runner = PipelineTestRunner(store: store, providerNames: Array(providers.keys), stateDirectory: folder, plugins: plugins.stages, logger: logger)
            return try await runner.run(files, report: report)
        }
    }
}


extension Result where Failure == any Error {
    /// The outcome of `body`, its error caught.
    init(_ body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
