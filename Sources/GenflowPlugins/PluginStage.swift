public import GenflowCore
public import Logging
public import GenflowPipeline
public import GenflowStore
internal import Foundation

/// A stage a plugin provides: its schema comes from the manifest; `run` is one invoke, with the
/// plugin's progress and events written to the job's event stream in the order they came.
public struct PluginStage: Stage {
    public let descriptor: StageDescriptor
    let supervisor: PluginSupervisor
    let store: JobStore?

    public init(spec: PluginManifest.StageSpec, supervisor: PluginSupervisor, store: JobStore?) {
        descriptor = StageDescriptor(name: spec.name, summary: spec.description, config: spec.config, origin: "plugin \(supervisor.manifest.name)")
        self.supervisor = supervisor
        self.store = store
    }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let (events, feed) = AsyncStream<NewEvent>.makeStream()
        let (user, job, step) = (context.userID, context.jobID, context.stepID)
        let observer = PluginProcess.Observer(
            progress: { fraction, message in
                feed.yield(NewEvent(userID: user, jobID: job, type: "step.progress", step: step, data: [
                    "fraction": fraction.map(JSON.double) ?? .null, "message": message.map(JSON.string) ?? .null,
                ]))
            },
            event: { name, data in feed.yield(NewEvent(userID: user, jobID: job, type: name, step: step, data: data)) }
        )
        let store = store
        let writer = Task {
            for await event in events {
                // Progress is best effort: a failed write must not fail the call.
                _ = try? await store?.write { try $0.append(event) }
            }
        }
        let deadline = context.timeout
        let invocation: JSON = [
            "job_id": .string(job), "user_id": .string(user), "step": .string(step), "attempt": .int(context.attempt),
            "deadline_ms": .int(Int(deadline.components.seconds) * 1_000 + Int(deadline.components.attoseconds / 1_000_000_000_000_000)),
            "idempotency_key": .string("\(job):\(step)"),
        ]
        let outcome = await supervisor.invoke(stage: name, config: context.config, input: context.input, context: invocation, deadline: deadline, observer: observer)
        feed.finish()
        await writer.value
        return try outcome.get()
    }
}

/// The plugins of a directory: manifests checked, processes started, their stages ready to register.
public struct PluginSet: Sendable {
    public var supervisors: [PluginSupervisor] = []
    public var stages: [any Stage] = []
    /// Manifests that did not load and plugins that did not start, with why (`file:line:col`).
    public var failures: [Diagnostic] = []

    public init() {}

    /// Reads every `*/plugin.yaml` under `directory` and starts the plugins (with `start`); with
    /// `start: false` only the manifests are read (`genflow stages`).
    public static func load(directory: String, store: JobStore?, start: Bool, reserved: Set<String>, logger: Logging.Logger) async -> PluginSet {
        var set = PluginSet()
        var claimed = reserved
        // A write to a plugin that just died must fail with EPIPE, not kill the daemon with SIGPIPE.
        if start { signal(SIGPIPE, SIG_IGN) }
        for folder in PluginManifest.pluginDirectories(in: directory) {
            let manifest: PluginManifest
            do {
                manifest = try PluginManifest.load(directory: folder)
            } catch {
                set.failures += error.diagnostics
                continue
            }
            if let taken = manifest.stages.first(where: { claimed.contains($0.name) }) {
                set.failures.append(Diagnostic(at: SourceLocation(file: manifest.file, line: 1, column: 1), "stage '\(taken.name)' is already provided by another plugin or built in"))
                continue
            }
            let supervisor = PluginSupervisor(manifest: manifest, logger: logger)
            if start {
                do {
                    try await supervisor.start()
                } catch {
                    set.failures.append(Diagnostic(at: SourceLocation(file: manifest.file, line: 1, column: 1), "\(error)"))
                    continue
                }
            }
            claimed.formUnion(manifest.stages.map(\.name))
            set.supervisors.append(supervisor)
            set.stages += manifest.stages.map { PluginStage(spec: $0, supervisor: supervisor, store: store) }
        }
        return set
    }

    /// Stops every plugin.
    public func stop(grace: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            for supervisor in supervisors { group.addTask { await supervisor.stop(grace: grace) } }
        }
    }
}
