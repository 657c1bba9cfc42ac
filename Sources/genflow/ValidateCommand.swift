import ArgumentParser
import Foundation
import GenflowConfig
import GenflowCore
import GenflowPipeline

/// `genflow validate [PATH…]`: check the daemon config and pipeline files like a compiler.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check pipelines and the daemon config; print errors as file:line:col: error: message.",
        discussion: """
            With no PATH, checks the daemon config and every pipeline in its pipelines_dir. A PATH may be \
            a pipeline file or a directory of them. Exits 1 when anything is wrong.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "One line per error, without the source snippet.")
    var brief = false

    @Argument(help: "Pipeline files or directories.")
    var paths: [String] = []

    func run() throws {
        var printer = DiagnosticPrinter(brief: brief)
        var errorCount = 0
        var failedFiles = Set<String>()
        func report(_ diagnostics: [Diagnostic]) {
            for diagnostic in diagnostics {
                printer.print(diagnostic)
                failedFiles.insert(diagnostic.location.file)
            }
            errorCount += diagnostics.count
        }

        let config: DaemonConfig
        do {
            config = try options.loadConfig()
        } catch {
            report(error.diagnostics)
            config = DaemonConfig()
        }
        let loader = PipelineLoader(registry: config.makeStageRegistry())

        var files: [String] = []
        var skipped: [String] = []
        for path in paths.isEmpty ? [config.pipelinesDir] : paths {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                    .map { (path.hasSuffix("/") ? path : path + "/") + $0 }
            } else {
                files.append(path)
            }
        }
        files = files.filter { file in
            let name = (file as NSString).lastPathComponent
            if name == "plugin.yaml" || name.hasSuffix(".test.yaml") {
                skipped.append(file)
                return false
            }
            if let configFile = config.file, Self.samePath(file, configFile) { return false }
            return true
        }

        let (pipelines, failures) = loader.load(files: files)
        for failure in failures { report(failure.diagnostics) }
        for file in skipped {
            FileHandle.standardError.write(Data("\(file): note: not a pipeline file; skipped\n".utf8))
        }

        let checked = "\(pipelines.count + failures.count) pipeline file\(files.count == 1 ? "" : "s")"
            + (config.file.map { " and \($0)" } ?? "")
        if errorCount > 0 {
            print("\(errorCount) error\(errorCount == 1 ? "" : "s") in \(failedFiles.count) file\(failedFiles.count == 1 ? "" : "s") (checked \(checked))")
            throw ExitCode(1)
        }
        for pipeline in pipelines {
            print("ok  \(pipeline.name)  version \(pipeline.shortVersion)  \(pipeline.steps.count) steps  \(pipeline.file)")
        }
        print("checked \(checked): no errors")
    }

    private static func samePath(_ a: String, _ b: String) -> Bool {
        URL(fileURLWithPath: a).standardizedFileURL.path == URL(fileURLWithPath: b).standardizedFileURL.path
    }
}
