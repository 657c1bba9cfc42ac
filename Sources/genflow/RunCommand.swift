import ArgumentParser
import Foundation
import GenflowConfig
import GenflowCore
import GenflowPipeline
import GenflowTesting

/// `genflow run PIPELINE --input JSON --dry-run`: one job in-process, on a throwaway database.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one job of a pipeline in-process and print each step's output and the events (with --dry-run).",
        discussion: """
            With --dry-run the job runs on a throwaway database with the offline provider (or the \
            replies of --replies, a file `genflow submit --record` wrote); the configured database \
            and the network are not touched. PIPELINE is a loaded pipeline's name or a pipeline file.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "A pipeline name (from the pipelines folder) or a pipeline file.")
    var pipeline: String

    @Option(help: "The job's input, a JSON object.")
    var input: String = "{}"

    @Option(help: "The user the job runs for (credited with --balance tokens first).")
    var user: String = "dry-run"

    @Option(help: "Tokens the user has when the job starts.")
    var balance: Int = 1_000_000

    @Option(help: "Recorded replies for the steps that call out (genflow submit --record).")
    var replies: String?

    @Flag(name: .customLong("dry-run"), help: "Run on a throwaway database with scripted or offline replies (required: the only mode).")
    var dryRun = false

    @Option(name: .customLong("database-url"), help: "A PostgreSQL server for the throwaway database (default: a temporary cluster).")
    var databaseURL: String?

    func run() async throws {
        guard dryRun else {
            printError("genflow run needs --dry-run (to run a job for real, use genflow submit)")
            throw ExitCode(2)
        }
        let config = try options.loadConfigOrExit()
        guard let value = try? JSON(parsing: Data(input.utf8)), case .object = value else {
            printError("--input must be a JSON object")
            throw ExitCode(2)
        }
        let file = try await pipelineFile(config)
        var testCase = PipelineTestCase(name: "dry run", location: SourceLocation(file: file, line: 1, column: 1))
        testCase.input = value
        testCase.user = user
        testCase.balance = balance
        if let replies {
            switch RecordedReplies.load(replies) {
            case .success(let loaded): testCase.replies = loaded
            case .failure(let problem):
                printError(problem.message)
                throw ExitCode(2)
            }
        }
        let results = try await config.runPipelineTests([PipelineTestFile(file: file, pipelineFile: file, cases: [testCase])], url: databaseURL) { _ in }
        guard let result = results.first, let outcome = result.outcome else {
            results.first?.failures.forEach { printError($0.description) }
            throw ExitCode(1)
        }
        print("job \(outcome.jobID) \(outcome.status) in \(result.elapsed.milliseconds) ms (dry run: throwaway database, no network)")
        if let error = outcome.error { print("error: \(error)") }
        // The order the graph gives (steps of one level may run side by side), then the order they started in.
        let plugins = await config.loadPlugins(start: false)
        if let pipeline = try? PipelineLoader(registry: config.makeStageRegistry(plugins: plugins)).load(file: file), !pipeline.graph.isChain {
            print("\norder (steps on one line run side by side):")
            for (level, ids) in pipeline.graph.levels.enumerated() { print("  \(level + 1). \(ids.joined(separator: ", "))") }
        }
        let started = outcome.events.filter { $0["type"]?.stringValue == EventType.stepStarted.rawValue }.compactMap { event in
            event["step"]?.stringValue.map { $0 + (event["data"]?["item"]?.intValue.map { "[\($0)]" } ?? "") }
        }
        print("\nstarted: \(started.joined(separator: " → "))")
        print("\nsteps:")
        for step in outcome.steps {
            let output = outcome.result[step.id].map(Self.brief) ?? "(no output)"
            print("  \(step.id) \(step.status), \(step.attempts) \(step.attempts == 1 ? "attempt" : "attempts"): \(output)")
        }
        print("\nevents:")
        for event in outcome.events {
            print("  \(event["type"]?.stringValue ?? "")\(event["step"]?.stringValue.map { " \($0)" } ?? "") \(Self.brief(event["data"] ?? .null))")
        }
        if outcome.status != "completed" { throw ExitCode(1) }
    }

    /// PIPELINE as a file: a path as given, or the file of the loaded pipeline with that name.
    private func pipelineFile(_ config: DaemonConfig) async throws -> String {
        if FileManager.default.fileExists(atPath: pipeline) { return pipeline }
        let catalog = await options.makeCatalog(config)
        if let loaded = catalog.pipeline(named: pipeline) { return loaded.file }
        let names = catalog.pipelines.map(\.name)
        printError("no pipeline '\(pipeline)' in \(config.pipelinesDir)\(Suggestions.didYouMean(pipeline, in: names)) and no such file (loaded: \(names.joined(separator: ", ")))")
        throw ExitCode(2)
    }

    static func brief(_ value: JSON) -> String {
        let text = value.description
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}
