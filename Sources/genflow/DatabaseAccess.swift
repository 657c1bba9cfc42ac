import ArgumentParser
import Foundation
import GenflowConfig
import GenflowCore
import GenflowDaemon
import GenflowEngine
import GenflowPipeline
import GenflowPostgres
import GenflowQueue
import GenflowSchema
import GenflowStages
import GenflowTracing
import Logging

/// Logging to standard error at the configured level, set up once per process.
enum Log {
    nonisolated(unsafe) private static var isBootstrapped = false

    static func make(level: String, label: String = "genflow") -> Logger {
        if !isBootstrapped {
            isBootstrapped = true
            // Lines logged inside a job's trace carry its trace_id and span_id.
            LoggingSystem.bootstrap({ StreamLogHandler.standardError(label: $0, metadataProvider: $1) }, metadataProvider: Telemetry.logMetadata)
        }
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: level) ?? .info
        return logger
    }
}

/// A command-line failure: printed as `genflow: error: …`, exit 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension GlobalOptions {
    /// The config, or exit 1 after printing its diagnostics.
    func loadConfigOrExit() throws -> DaemonConfig {
        do {
            return try loadConfig()
        } catch {
            var printer = DiagnosticPrinter(brief: false)
            error.diagnostics.forEach { printer.print($0) }
            throw ExitCode(1)
        }
    }

    /// Runs `body` with the job store on the configured database, or on the embedded one
    /// (started for the command if it is not running, and then left running for the daemon).
    func withStore<T>(_ config: DaemonConfig, migrate: Bool = true, _ body: (JobStore) async throws -> T) async throws -> T {
        let logger = Log.make(level: "warning")
        let database = try await DatabaseConnection.open(config: config, ownsEmbedded: false, logger: logger)
        let pool = DatabasePool(connectionString: database.url, size: 2)
        defer { pool.close() }
        if migrate { _ = try await pool.withConnection { try Migrations.migrate($0) } }
        return try await body(JobStore(pool: pool))
    }

    /// The pipelines in the config's pipelines_dir, as the daemon would load them.
    func makeCatalog(_ config: DaemonConfig) async -> PipelineCatalog {
        let registry = config.makeStageRegistry(plugins: await config.loadPlugins(start: false))
        let catalog = PipelineCatalog(loader: PipelineLoader(registry: registry))
        catalog.load(directory: config.pipelinesDir)
        return catalog
    }
}

/// Writes `text` and a newline to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data("genflow: error: \(text)\n".utf8))
}
