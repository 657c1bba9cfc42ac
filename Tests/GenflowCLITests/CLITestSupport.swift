import Foundation
import GenflowTestHarness

/// What a run of the `genflow` binary printed and how it exited.
typealias CommandResult = ProgramRun

extension ProgramRun {
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs `genflow` with `arguments` from the package root and waits for it.
func genflow(_ arguments: String..., environment: [String: String] = [:]) async throws -> CommandResult {
    try await run(genflowBinary, arguments, environment: environment)
}

/// Runs `executable` with `arguments` from the package root and waits for it, on a thread of its
/// own (`runProgram`).
func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> CommandResult {
    try await runProgram(executable, arguments, environment: commandEnvironment(environment))
}

/// This process's environment with `changes` applied; an empty value removes the variable.
func commandEnvironment(_ changes: [String: String]) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in changes {
        environment[key] = value.isEmpty ? nil : value
    }
    return environment
}

/// A fresh directory under the system temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    func write(_ name: String, _ contents: String) throws -> String {
        let file = path + "/" + name
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    func cleanup() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
