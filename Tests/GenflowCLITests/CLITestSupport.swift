import Foundation

/// What a run of the `genflow` binary printed and how it exited.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String

    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// The `genflow` binary SwiftPM built beside this test bundle.
let genflowBinary: URL = {
    let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    return testBinary.deletingLastPathComponent().appendingPathComponent("genflow")
}()

/// Runs `genflow` with `arguments` from the package root and waits for it.
func genflow(_ arguments: String..., environment: [String: String] = [:]) async throws -> CommandResult {
    try await run(genflowBinary.path, arguments, environment: environment)
}

/// Runs `executable` with `arguments` from the package root and waits for it, on a thread of its
/// own: reading its output and waiting for its exit block for as long as it runs (seconds for
/// `genflow test`'s throwaway cluster), and a test that blocked one of Swift's cooperative threads
/// (two on two cores) stalled every other suite meanwhile.
func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> CommandResult {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try runBlocking(executable, arguments, environment: environment) }) }.start()
    }
}

private func runBlocking(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = commandEnvironment(environment)
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes to the end before waiting, so a full pipe cannot block the child.
    let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
    let stderrData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus,
        stdout: String(decoding: stdoutData, as: UTF8.self),
        stderr: String(decoding: stderrData, as: UTF8.self)
    )
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
