public import GenflowCore
public import GenflowPipeline
internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// `test.step`: a stage for testing the engine without any model. It can succeed, fail with a
/// chosen class on its first attempts, sleep, or kill the whole process. Registered only when the
/// daemon runs with `GENFLOW_TEST_STAGES=1` (tests and benchmarks).
public struct TestStage: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "test.step",
        summary: "Testing only: succeed, fail on chosen attempts, sleep, or crash the daemon; output {job_id, step, attempt, output}.",
        config: .object([
            .init("sleep", .duration("Pause before answering (cancellable).")),
            .init("fail_attempts", .integer("Attempts 1…N fail.", default: 0, minimum: 0)),
            .init("fail_class", .string("Error class of those failures.", default: "server_error")),
            .init("retry_after", .duration("Delay the failure asks for, as a Retry-After would.")),
            .init("crash", .string("Marker file: if it does not exist, create it and kill the daemon with SIGKILL (so it crashes once).")),
            .init("record", .string("File that gets a line `job step attempt` at each start.")),
            .init("output", .any("Copied into the output.")),
        ])
    )

    /// Pure unless it writes its record file or crashes the daemon.
    public func hasOutsideEffects(_ config: JSON) -> Bool {
        config["record"] != nil || config["crash"] != nil
    }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let config = context.config
        if let path = config["record"]?.stringValue {
            Self.append("\(context.jobID) \(context.stepID) \(context.attempt)\n", to: path)
        }
        if let marker = config["crash"]?.stringValue, !FileManager.default.fileExists(atPath: marker) {
            FileManager.default.createFile(atPath: marker, contents: Data())
            kill(getpid(), SIGKILL)
        }
        if let text = config["sleep"]?.stringValue, let pause = DurationText.parse(text) {
            do {
                try await Task.sleep(for: pause)
            } catch {
                throw StepError(.cancelled, "test.step was stopped while sleeping")
            }
        }
        if context.attempt <= config["fail_attempts"]?.intValue ?? 0 {
            let errorClass = ErrorClass(rawValue: config["fail_class"]?.stringValue ?? "server_error")
            let retryAfter = config["retry_after"]?.stringValue.flatMap(DurationText.parse)
            throw StepError(errorClass, "test.step failed on attempt \(context.attempt) as asked", retryAfter: retryAfter)
        }
        return [
            "job_id": .string(context.jobID), "step": .string(context.stepID), "attempt": .int(context.attempt),
            "output": config["output"] ?? .null,
        ]
    }

    /// Appends one line with O_APPEND, so concurrent writers from several processes do not interleave.
    private static func append(_ line: String, to path: String) {
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        _ = line.withCString { write(descriptor, $0, strlen($0)) }
    }
}
