package import Foundation
internal import GenflowCore

/// What a program printed and how it exited.
package struct ProgramRun: Sendable {
    package var status: Int32
    package var stdout: String
    package var stderr: String
}

/// Runs `executable` with `arguments` (from the package root) to its end, on a thread of its own:
/// reading its output and waiting for its exit block for as long as it runs, and a test that
/// blocked one of Swift's cooperative threads (two on two cores) stalled every other suite. With
/// `mergingOutput`, stderr goes to stdout.
package func runProgram(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, mergingOutput: Bool = false
) async throws -> ProgramRun {
    try await onOwnThread {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = mergingOutput ? out : err
        try process.run()
        // Both pipes read to the end before waiting, so a full pipe cannot block the child.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = mergingOutput ? Data() : err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProgramRun(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// The `genflow` binary SwiftPM built beside the test bundle.
package var genflowBinary: String {
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("genflow").path
}
