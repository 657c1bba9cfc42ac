import ArgumentParser
import Foundation
import GenflowConfig
import GenflowCore
import GenflowPipeline
import GenflowPlugins

/// `genflow validate [PATH…]`: check the daemon config and pipeline files like a compiler.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check pipelines and the daemon config; print errors as file:line:col: error: message.",
        discussion: """
            With no PATH, checks the daemon config, every plugin in its plugins_dir (each is started to \
            compare its hello with its manifest) and every pipeline in its pipelines_dir. A PATH may be \
            a pipeline file or a directory of them. Exits 1 when anything is wrong. With --graph, prints \
            each valid pipeline's steps as a Graphviz DOT graph (an edge per need) instead: \
            genflow validate --graph pipelines/x.yaml | dot -Tsvg > x.svg
            """
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "One line per error, without the source snippet.")
    var brief = false

    @Flag(help: "Print each pipeline's steps as a Graphviz DOT graph.")
    var graph = false

    @Argument(help: "Pipeline files or directories.")
    var paths: [String] = []

    func run() async throws {
        var printer = DiagnosticPrinter(brief: brief)
        var errorCount = 0
        func report(_ diagnostics: [Diagnostic]) {
            diagnostics.forEach { printer.print($0) }
            errorCount += diagnostics.count
        }
        func note(_ text: String) {
            FileHandle.standardError.write(Data("genflow: \(text)\n".utf8))
        }

        let config: DaemonConfig
        do {
            config = try options.loadConfig()
        } catch {
            report(error.diagnostics)
            note("the config has errors; pipelines are checked with the default settings")
            config = DaemonConfig()
        }
        let plugins = await config.loadPlugins(start: true)
        report(plugins.failures)
        await plugins.stop(grace: .milliseconds(500))
        let loader = PipelineLoader(registry: config.makeStageRegistry(plugins: plugins))

        var files: [String] = []
        for path in paths.isEmpty ? [config.pipelinesDir] : paths {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            if exists && isDirectory.boolValue {
                files += PipelineLoader.pipelineFiles(in: path)
            } else if !exists && paths.isEmpty {
                report([Diagnostic(at: SourceLocation(file: options.configFile, line: 1, column: 1), "pipelines directory '\(path)' (pipelines_dir) does not exist")])
            } else if exists && !PipelineLoader.isPipelineFileName((path as NSString).lastPathComponent) {
                note("\(path): not a pipeline file (plugin manifests are checked from plugins_dir); skipped")
            } else {
                files.append(path)
            }
        }

        let (pipelines, failures) = loader.load(files: files)
        for failure in failures { report(failure.diagnostics) }

        let manifests = plugins.supervisors.count
        let checked = "checked \(Self.count(files.count, "pipeline file"))" + (manifests > 0 ? ", \(Self.count(manifests, "plugin"))" : "")
            + (config.file.map { " and \($0)" } ?? "")
        if errorCount > 0 {
            print("\(Self.count(errorCount, "error")) (\(checked))")
            throw ExitCode(1)
        }
        if graph {
            pipelines.forEach { print(Self.dot($0), terminator: "") }
            return
        }
        for pipeline in pipelines {
            let levels = pipeline.graph.isChain ? "" : " in \(Self.count(pipeline.graph.levels.count, "level"))"
            print("ok  \(pipeline.name)  version \(pipeline.shortVersion)  \(Self.count(pipeline.steps.count, "step"))\(levels)  \(pipeline.file)")
        }
        print("\(checked): no errors")
    }

    private static func count(_ number: Int, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }

    /// A pipeline as DOT: each node shows the step, its stage, and how it runs.
    static func dot(_ pipeline: Pipeline) -> String {
        pipeline.graph.dot(name: pipeline.name) { id in
            guard let step = pipeline.step(id) else { return id }
            var lines = [id, step.stage]
            if let forEach = step.forEach { lines.append("for each item, \(forEach.maxParallel) at once") }
            if step.continueOnError { lines.append("continues on error") }
            return lines.joined(separator: "\n")
        }
    }
}
