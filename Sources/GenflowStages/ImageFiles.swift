internal import Foundation
public import GenflowCore

/// Image bytes kept under the state directory, at `images/<job>/<step>-<n>.<format>`: one name per
/// job step and position, so a step run again overwrites its own files and adds none.
struct ImageFiles: Sendable {
    let stateDirectory: String?

    /// Writes `bytes` (atomically) and returns the path relative to the state directory.
    func save(_ bytes: [UInt8], jobID: String, step: String, index: Int, format: String) throws(StepError) -> String {
        guard let stateDirectory else { throw StepError(.internal, "no state directory to keep generated images in") }
        let safeStep = String(step.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        let relative = "images/\(jobID)/\(safeStep)-\(index).\(format)"
        let url = URL(fileURLWithPath: stateDirectory).appendingPathComponent(relative)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw StepError(.serverError, "cannot keep the generated image at \(url.path): \(error.localizedDescription)")
        }
        return relative
    }
}
