import ArgumentParser
import GenflowConfig
import GenflowDaemon
import GenflowQueue
import GenflowSchema

/// `genflow serve`: run the daemon until SIGTERM (graceful drain) or SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the daemon: workers, reload; SIGTERM drains gracefully, SIGHUP reloads pipelines."
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "Jobs run at once (overrides workers / GENFLOW_WORKERS).")
    var workers: Int?

    func run() async throws {
        var config = try options.loadConfigOrExit()
        if let workers {
            guard (1...100_000).contains(workers) else { throw ValidationError("--workers must be between 1 and 100000") }
            config.workers = workers
        }
        let logger = Log.make(level: config.logLevel)
        do {
            try await Daemon.serve(config: config, logger: logger)
        } catch {
            logger.critical("genflow cannot run: \(error)")
            throw ExitCode(1)
        }
    }
}

/// `genflow migrate`: apply the database migrations.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply database migrations (serve also does this at start, under an advisory lock)."
    )

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let config = try options.loadConfigOrExit()
        let applied = try await options.withStore(config, migrate: false) { store in
            try await store.pool.withConnection { try Migrations.migrate($0) }
        }
        print(applied.isEmpty ? "database is up to date" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
    }
}
