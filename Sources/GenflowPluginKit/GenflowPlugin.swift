public import GenflowCore
internal import Foundation
internal import Synchronization

/// One call a plugin received: what to do, and how to report progress and events while doing it.
public struct PluginCall: Sendable {
    public let id: String
    public let stage: String
    /// The step's rendered `with:`.
    public let config: JSON
    /// The job's input.
    public let input: JSON
    /// `{job_id, user_id, step, attempt, deadline_ms, idempotency_key}`.
    public let context: JSON
    let output: PluginOutput

    /// Reports progress (`fraction` 0…1); it becomes a `step.progress` event of the job.
    public func progress(_ fraction: Double?, _ message: String? = nil) {
        output.send(["type": "progress", "id": .string(id), "fraction": fraction.map(JSON.double) ?? .null, "message": message.map(JSON.string) ?? .null])
    }

    /// Emits a named event to the job's user.
    public func event(_ name: String, _ data: JSON = [:]) {
        output.send(["type": "event", "id": .string(id), "event": .string(name), "data": data])
    }
}

/// A failure with a retry class (`rate_limited`, `server_error`, `invalid_request`, …) the step's
/// retry policy decides on. Any other error a handler throws is answered as `internal`.
public struct PluginFailure: Error, Sendable {
    public var errorClass: String
    public var message: String
    public var retryAfterMilliseconds: Int?

    public init(_ errorClass: String, _ message: String, retryAfterMilliseconds: Int? = nil) {
        self.errorClass = errorClass
        self.message = message
        self.retryAfterMilliseconds = retryAfterMilliseconds
    }
}

/// A stage's implementation: the call in, the step's output (a JSON object; a `usage` member is the
/// token usage) out.
public typealias StageHandler = @Sendable (PluginCall) async throws -> JSON

/// Runs a `genflow-plugin/1` plugin on stdin and stdout: says hello with the stages, runs each
/// invoke as a task (several at once), cancels on `cancel`, and returns at `shutdown` (after the
/// calls in flight, at most the grace) or when stdin closes. Write diagnostics to stderr: stdout
/// carries the protocol only.
public enum GenflowPlugin {
    public static func run(stages: [String: StageHandler]) async {
        let output = PluginOutput()
        output.send(["type": "hello", "protocol": "genflow-plugin/1", "stages": .array(stages.keys.sorted().map(JSON.string))])
        let calls = CallTable()
        var grace = Duration.seconds(5)
        for await line in inputLines() {
            guard let message = try? JSON(parsing: line), let type = message["type"]?.stringValue else {
                FileHandle.standardError.write(Data("ignored a line that is not a protocol message\n".utf8))
                continue
            }
            switch type {
            case "invoke":
                guard let id = message["id"]?.stringValue else { continue }
                let call = PluginCall(
                    id: id, stage: message["stage"]?.stringValue ?? "", config: message["config"] ?? [:], input: message["input"] ?? [:],
                    context: message["context"] ?? [:], output: output
                )
                let handler = stages[call.stage]
                let task = Task {
                    await answer(call, handler: handler, output: output)
                    calls.remove(id)?.cancel()
                }
                calls.add(id, task)
            case "cancel":
                if let id = message["id"]?.stringValue { calls.remove(id)?.cancel() }
            case "shutdown":
                grace = .milliseconds(message["grace_ms"]?.intValue ?? 5_000)
                await finish(calls.all, within: grace)
                return
            default:
                continue
            }
        }
        await finish(calls.all, within: grace)
    }

    /// Exactly one answer per call, unless the host cancelled it (it has stopped waiting).
    private static func answer(_ call: PluginCall, handler: StageHandler?, output: PluginOutput) async {
        guard let handler else {
            output.send(["type": "error", "id": .string(call.id), "class": "invalid_request", "message": .string("this plugin has no stage '\(call.stage)'")])
            return
        }
        do {
            let result = try await handler(call)
            guard !Task.isCancelled else { return }
            var message: [String: JSON] = ["type": "result", "id": .string(call.id), "output": result]
            if let usage = result["usage"] { message["usage"] = usage }
            output.send(.object(message))
        } catch let failure as PluginFailure {
            guard !Task.isCancelled else { return }
            var message: [String: JSON] = ["type": "error", "id": .string(call.id), "class": .string(failure.errorClass), "message": .string(failure.message)]
            if let delay = failure.retryAfterMilliseconds { message["retry_after_ms"] = .int(delay) }
            output.send(.object(message))
        } catch {
            guard !Task.isCancelled else { return }
            output.send(["type": "error", "id": .string(call.id), "class": "internal", "message": .string("\(error)")])
        }
    }

    private static func finish(_ tasks: [Task<Void, Never>], within grace: Duration) async {
        let deadline = ContinuousClock.now + grace
        for task in tasks {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { task.cancel(); continue }
            let timer = Task {
                try await Task.sleep(for: remaining)
                task.cancel()
            }
            await task.value
            timer.cancel()
        }
    }

    /// Lines of stdin, read on a thread of its own.
    private static func inputLines() -> AsyncStream<String> {
        AsyncStream { continuation in
            let thread = Thread {
                while let line = readLine(strippingNewline: true) { continuation.yield(line) }
                continuation.finish()
            }
            thread.start()
        }
    }
}

/// The calls in flight, by id.
final class CallTable: Sendable {
    private let tasks = Mutex([String: Task<Void, Never>]())

    func add(_ id: String, _ task: Task<Void, Never>) { tasks.withLock { $0[id] = task } }
    func remove(_ id: String) -> Task<Void, Never>? { tasks.withLock { $0.removeValue(forKey: id) } }
    var all: [Task<Void, Never>] { tasks.withLock { Array($0.values) } }
}

/// Protocol lines to stdout, one writer at a time.
final class PluginOutput: Sendable {
    private let lock = Mutex(())

    func send(_ message: JSON) {
        lock.withLock { _ in
            FileHandle.standardOutput.write(Data((message.description + "\n").utf8))
        }
    }
}
