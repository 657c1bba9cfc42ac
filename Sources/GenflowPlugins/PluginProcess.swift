public import GenflowCore
internal import Foundation
internal import Logging
internal import Synchronization

/// One running plugin process speaking `genflow-plugin/1` over its stdin and stdout.
///
/// Two threads of its own read stdout (protocol lines) and stderr (log lines); writes to stdin
/// happen under `writer`. Every invoke gets exactly one outcome: the plugin's result or error, a
/// timeout at its deadline (a `cancel` is sent), `cancelled` when the caller's task is cancelled, or
/// `plugin_crashed` when the process dies with it in flight.
final class PluginProcess: Sendable {
    typealias Outcome = Result<JSON, StepError>

    /// Hooks of one call: progress and named events as the plugin reports them.
    struct Observer: Sendable {
        var progress: @Sendable (_ fraction: Double?, _ message: String?) -> Void
        var event: @Sendable (_ name: String, _ data: JSON) -> Void
    }

    private struct Call {
        var continuation: CheckedContinuation<Outcome, Never>
        var observer: Observer
    }

    private struct State {
        var calls: [String: Call] = [:]
        var hello: CheckedContinuation<[String], any Error>?
        var helloStages: [String]?
        var isDead = false
        var nextID = 0
        var strayLines = 0
    }

    let name: String
    let instance: Int
    private let process: Process
    private let input: FileHandle
    private let state = Mutex(State())
    private let writer = Mutex(())
    private let logger: Logger
    private let exited: @Sendable (PluginProcess) -> Void

    /// Starts the executable (no shell) in the plugin's folder and waits for its `hello`, which must
    /// name exactly the manifest's stages.
    static func start(_ manifest: PluginManifest, instance: Int, logger: Logger, helloTimeout: Duration = .seconds(10),
                      exited: @escaping @Sendable (PluginProcess) -> Void) async throws -> PluginProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: manifest.executable)
        process.arguments = Array(manifest.command.dropFirst())
        process.currentDirectoryURL = URL(fileURLWithPath: manifest.directory)
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        var environment = ProcessInfo.processInfo.environment
        // The daemon's own secrets and database stay with the daemon; provider keys a plugin
        // needs (ANTHROPIC_API_KEY…) pass through.
        for name in ["GENFLOW_JWT_SECRET", "GENFLOW_ADMIN_TOKEN", "DATABASE_URL", "PGPASSWORD"] { environment[name] = nil }
        environment["GENFLOW_PLUGIN"] = manifest.name
        process.environment = environment
        let plugin = PluginProcess(name: manifest.name, instance: instance, process: process, input: stdin.fileHandleForWriting, logger: logger, exited: exited)
        do {
            try process.run()
        } catch {
            throw PluginStartError("plugin \(manifest.name): cannot start \(manifest.command.joined(separator: " ")): \(error.localizedDescription)")
        }
        plugin.readLines(stdout.fileHandleForReading, name: "genflow-plugin") { plugin.handle(line: $0) } atEnd: { plugin.died() }
        plugin.readLines(stderr.fileHandleForReading, name: "genflow-plugin-log") { line in
            logger.notice("\(String(decoding: line, as: UTF8.self))", metadata: ["genflow.plugin": "\(manifest.name)"])
        } atEnd: {}

        let stages: [String]
        do {
            stages = try await plugin.awaitHello(timeout: helloTimeout)
        } catch {
            plugin.kill()
            throw PluginStartError("plugin \(manifest.name): \(error)")
        }
        let declared = Set(manifest.stages.map(\.name))
        guard Set(stages) == declared else {
            plugin.kill()
            let missing = declared.subtracting(stages).sorted(), extra = Set(stages).subtracting(declared).sorted()
            var problems: [String] = []
            if !missing.isEmpty { problems.append("its hello lacks \(missing.joined(separator: ", "))") }
            if !extra.isEmpty { problems.append("its hello has \(extra.joined(separator: ", ")), which the manifest does not declare") }
            throw PluginStartError("plugin \(manifest.name): the stages the plugin reports differ from its manifest: \(problems.joined(separator: "; "))")
        }
        return plugin
    }

    private init(name: String, instance: Int, process: Process, input: FileHandle, logger: Logger, exited: @escaping @Sendable (PluginProcess) -> Void) {
        self.name = name
        self.instance = instance
        self.process = process
        self.input = input
        self.logger = logger
        self.exited = exited
    }

    var processIdentifier: Int32 { process.processIdentifier }

    /// Calls in flight.
    var load: Int { state.withLock { $0.calls.count } }

    /// Signalled when a call ends and when the process dies.
    let changed = Broadcast()

    var isAlive: Bool { state.withLock { !$0.isDead } }

    // MARK: Calls

    /// Sends one invoke and waits for its outcome (at most `deadline`).
    func invoke(stage: String, config: JSON, input: JSON, context: JSON, deadline: Duration, observer: Observer) async -> Outcome {
        let id = state.withLock { state -> String in
            state.nextID += 1
            return "\(state.nextID)"
        }
        let message: JSON = ["type": "invoke", "id": .string(id), "stage": .string(stage), "config": config, "input": input, "context": context]
        let timer = Alarm(after: deadline) {
            self.cancel(id, outcome: .failure(StepError(.timeout, "plugin \(self.name) did not answer within \(DurationText.format(deadline))")))
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let accepted = state.withLock { state -> Bool in
                    guard !state.isDead else { return false }
                    state.calls[id] = Call(continuation: continuation, observer: observer)
                    return true
                }
                guard accepted else {
                    continuation.resume(returning: .failure(StepError(.pluginCrashed, "plugin \(name) is not running")))
                    return
                }
                if !send(message) {
                    finish(id, .failure(StepError(.pluginCrashed, "plugin \(name) stopped reading its input")))
                }
            }
        } onCancel: {
            self.cancel(id, outcome: .failure(StepError(.cancelled, "the call to plugin \(name) was stopped")))
        }
    }

    /// Ends a call early and tells the plugin to stop working on it.
    private func cancel(_ id: String, outcome: Outcome) {
        guard finish(id, outcome) else { return }
        _ = send(["type": "cancel", "id": .string(id)])
    }

    /// Resumes a call once; false when it had already ended.
    @discardableResult
    private func finish(_ id: String, _ outcome: Outcome) -> Bool {
        guard let call = state.withLock({ $0.calls.removeValue(forKey: id) }) else { return false }
        call.continuation.resume(returning: outcome)
        changed.signal()
        return true
    }

    /// Writes one protocol line; false when the plugin's stdin is closed.
    private func send(_ message: JSON) -> Bool {
        writer.withLock { _ in
            do {
                try input.write(contentsOf: Data((message.description + "\n").utf8))
                return true
            } catch {
                return false
            }
        }
    }

    // MARK: Reading

    private func awaitHello(timeout: Duration) async throws -> [String] {
        let timer = Task {
            try await Task.sleep(for: timeout)
            let waiter = self.state.withLock { state -> CheckedContinuation<[String], any Error>? in
                defer { state.hello = nil }
                return state.hello
            }
            waiter?.resume(throwing: PluginStartError("no hello within \(DurationText.format(timeout))"))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<[String], any Error>? in
                if let stages = state.helloStages { return .success(stages) }
                if state.isDead { return .failure(PluginStartError("it exited before saying hello")) }
                state.hello = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    private func handle(line: [UInt8]) {
        guard let message = try? JSON(parsing: Data(line)), case .object = message, let type = message["type"]?.stringValue else {
            stray("a line that is not a protocol message: \(String(decoding: line.prefix(120), as: UTF8.self))")
            return
        }
        if type == "hello" {
            let stages = message["stages"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let waiter = state.withLock { state -> CheckedContinuation<[String], any Error>? in
                state.helloStages = stages
                defer { state.hello = nil }
                return state.hello
            }
            if message["protocol"]?.stringValue != PluginManifest.protocolName {
                waiter?.resume(throwing: PluginStartError("its hello speaks \(message["protocol"]?.stringValue ?? "no protocol"), not \(PluginManifest.protocolName)"))
            } else {
                waiter?.resume(returning: stages)
            }
            return
        }
        guard let id = message["id"]?.stringValue else {
            stray("a '\(type.prefix(40))' message without an id")
            return
        }
        switch type {
        case "result":
            var output = message["output"] ?? .null
            if case .object(var members) = output, let usage = message["usage"], members["usage"] == nil {
                members["usage"] = usage
                output = .object(members)
            }
            if !finish(id, .success(output)) { stray("a result for unknown call \(id.prefix(40))") }
        case "error":
            let errorClass = message["class"]?.stringValue.map(ErrorClass.init(rawValue:)) ?? .serverError
            let known = ErrorClass.known.contains(errorClass)
            let retryAfter = message["retry_after_ms"]?.intValue.map { Duration.milliseconds($0) }
            let text = message["message"]?.stringValue ?? "the plugin reported an error"
            let error = StepError(known ? errorClass : .serverError, known ? text : "\(text) (unknown class '\(errorClass.rawValue)')", retryAfter: retryAfter)
            if !finish(id, .failure(error)) { stray("an error for unknown call \(id.prefix(40))") }
        case "progress":
            guard let observer = state.withLock({ $0.calls[id]?.observer }) else { return stray("progress for unknown call \(id.prefix(40))") }
            observer.progress(message["fraction"]?.doubleValue, message["message"]?.stringValue)
        case "event":
            guard let observer = state.withLock({ $0.calls[id]?.observer }) else { return stray("an event for unknown call \(id.prefix(40))") }
            guard let name = message["event"]?.stringValue, !name.isEmpty, name.count <= 100 else { return stray("an event without a name") }
            // The lifecycle's own events are the engine's to write, never a plugin's.
            guard !EventType.isReserved(name) else { return stray("a reserved event name '\(name)'") }
            observer.event(name, message["data"] ?? [:])
        default:
            stray("an unknown message type '\(type.prefix(40))'")
        }
    }


    /// Logs what the plugin sent that the protocol has no place for (the first 20, then every 1000th).
    private func stray(_ what: String) {
        let count = state.withLock { state -> Int in
            state.strayLines += 1
            return state.strayLines
        }
        if count <= 20 || count % 1_000 == 0 {
            logger.warning("plugin sent \(what); ignored", metadata: ["genflow.plugin": "\(name)", "genflow.count": "\(count)"])
        }
    }

    /// The process is gone (its stdout closed): every call in flight fails as `plugin_crashed`.
    private func died() {
        let (calls, hello) = state.withLock { state in
            state.isDead = true
            defer { state.calls = [:]; state.hello = nil }
            return (Array(state.calls.values), state.hello)
        }
        changed.signal()
        process.waitUntilExit()
        let status = process.terminationStatus
        let reason = process.terminationReason == .uncaughtSignal ? "was killed by signal \(status)" : "exited with status \(status)"
        hello?.resume(throwing: PluginStartError("it \(reason) before saying hello"))
        for call in calls {
            call.continuation.resume(returning: .failure(StepError(.pluginCrashed, "plugin \(name) \(reason) with the call in flight")))
        }
        exited(self)
    }

    /// Reads `handle` line by line on a thread of its own until it closes.
    private func readLines(_ handle: FileHandle, name: String, _ line: @escaping @Sendable ([UInt8]) -> Void, atEnd: @escaping @Sendable () -> Void) {
        let thread = Thread {
            var buffer: [UInt8] = []
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer += chunk
                var start = 0
                while let end = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    if end > start { line(Array(buffer[start..<end])) }
                    start = end + 1
                }
                buffer.removeFirst(start)
                if buffer.count > 16 << 20 {
                    // A line this long is not protocol; drop it rather than grow without bound.
                    buffer.removeAll()
                }
            }
            atEnd()
        }
        thread.name = name
        thread.start()
    }

    // MARK: Stopping

    /// Asks the plugin to finish (`shutdown`), then kills it after `grace` if it is still there.
    func shutdown(grace: Duration) async {
        _ = send(["type": "shutdown", "grace_ms": .int(Int(grace.milliseconds))])
        try? input.close()
        // Its stdout closing is the first sign it is gone (Process.isRunning lags behind).
        await changed.wait(until: { !isAlive }, timeout: grace)
        kill()
    }

    /// SIGKILL, if it is still running.
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}

/// A plugin did not start, or its hello did not match its manifest.
public struct PluginStartError: Error, Sendable, CustomStringConvertible {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
