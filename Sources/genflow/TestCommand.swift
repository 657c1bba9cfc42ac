import ArgumentParser
import Foundation
import GenflowConfig
import GenflowCore
import GenflowTesting

/// `genflow test [PATH…]`: runs pipeline test files through the real engine on a throwaway database.
struct TestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run pipeline tests (*.test.yaml) on a throwaway database, with scripted model, plugin and HTTP replies.",
        discussion: """
            PATH is a test file or a folder (its *.test.yaml files, and those of its tests/ folder); \
            the default is the pipelines folder. Nothing calls out: providers run offline unless a step \
            is given replies; http.request and plugin steps need replies. Retry delays are computed \
            and shown, not waited. Exit status 1 when a case fails.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Test files or folders (default: the pipelines folder).")
    var paths: [String] = []

    @Option(name: .customLong("database-url"), help: "A PostgreSQL server to make the throwaway database on (default: GENFLOW_TEST_DATABASE_URL, else a temporary cluster).")
    var databaseURL: String?

    func run() async throws {
        let config = try options.loadConfigOrExit()
        let files = PipelineTestFile.files(in: paths.isEmpty ? [config.pipelinesDir] : paths)
        guard !files.isEmpty else {
            printError("no pipeline test files (*.test.yaml) in \((paths.isEmpty ? [config.pipelinesDir] : paths).joined(separator: ", "))")
            throw ExitCode(1)
        }
        var tests: [PipelineTestFile] = []
        var printer = DiagnosticPrinter(brief: false)
        var broken = 0
        for file in files {
            do {
                tests.append(try PipelineTestFile.load(file))
            } catch {
                error.diagnostics.forEach { printer.print($0) }
                broken += 1
            }
        }
        let started = ContinuousClock.now
        let url = databaseURL ?? ProcessInfo.processInfo.environment["GENFLOW_TEST_DATABASE_URL"]
        let results = try await config.runPipelineTests(tests, url: url) { Self.print($0) }
        let failed = results.filter { !$0.passed }.count
        let elapsed = ContinuousClock.now - started
        Swift.print("\n\(results.count - failed) passed, \(failed) failed\(broken > 0 ? ", \(broken) test \(broken == 1 ? "file" : "files") unreadable" : "") in \(DurationText.format(elapsed))")
        if failed > 0 || broken > 0 { throw ExitCode(1) }
    }

    /// A line per case; under it the retries the case went through and each failed expectation.
    static func print(_ result: PipelineTestRunner.CaseResult) {
        let label = ((result.file as NSString).lastPathComponent as NSString).deletingPathExtension.replacingOccurrences(of: ".test", with: "")
        Swift.print("\(result.passed ? "ok  " : "FAIL")  \(label) › \(result.name)  (\(result.elapsed.milliseconds) ms)")
        for retry in result.outcome?.retries ?? [] {
            if let step = retry.reAskedBy {
                Swift.print("        \(retry.step): \(retry.error) → asks \(step) again (on_invalid)")
            } else {
                Swift.print("        \(retry.step): attempt \(retry.attempt) failed, \(retry.error) → retry after \(retry.delay.map(DurationText.format) ?? "?") (computed, not waited)")
            }
        }
        // Each failure as a compiler prints an error: the expectation's line with a caret under it.
        for failure in result.failures {
            let source = try? String(contentsOfFile: failure.location.file, encoding: .utf8)
            let rendered = Diagnostic(at: failure.location, failure.message).rendered(source: source)
            Swift.print(rendered.split(separator: "\n", omittingEmptySubsequences: false).map { "      \($0)" }.joined(separator: "\n"))
        }
    }
}
