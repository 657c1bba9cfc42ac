public import GenflowCore
public import Logging
public import GenflowPipeline
internal import Foundation
internal import GenflowTracing
internal import Synchronization
internal import Tracing

/// A stage a plugin provides: its schema comes from the manifest; `run` is one invoke, with the
/// plugin's progress and events written to the job's event stream in the order they came.
public struct PluginStage: Stage {
    public let descriptor: StageDescriptor
    let slot: PluginSlot

    init(spec: PluginManifest.StageSpec, slot: PluginSlot) {
        descriptor = StageDescriptor(name: spec.name, summary: spec.description, config: spec.config, origin: "plugin \(slot.current.manifest.name)")
        self.slot = slot
    }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        // Events that arrive while the last ones are being written go out together, in order.
        let events = BatchQueue<StageEvent>()
        let (user, job, step) = (context.userID, context.jobID, context.stepID)
        let observer = PluginProcess.Observer(
            progress: { fraction, message in
                events.add(StageEvent(type: .stepProgress, data: [
                    "fraction": fraction.map(JSON.double) ?? .null, "message": message.map(JSON.string) ?? .null,
                ]))
            },
            event: { name, data in events.add(StageEvent(type: name, data: data)) }
        )
        let records = context.records
        let writer = Task {
            while let batch = await events.next() {
                // Progress is best effort: a failed write must not fail the call.
                try? await records.send(batch)
            }
        }
        let deadline = context.timeout
        // An item of a for_each step is a call of its own: its index, and a key of its own.
        let unit = context.item.map { "\(step)[\($0)]" } ?? step
        var invocation: JSON = [
            "job_id": .string(job), "user_id": .string(user), "step": .string(step), "attempt": .int(context.attempt),
            "deadline_ms": .int(Int(deadline.milliseconds)),
            "idempotency_key": .string("\(job):\(unit)"),
            // on_invalid: why the previous answer was refused, so the plugin can ask differently.
            "feedback": context.feedback ?? .null,
        ]
        let supervisor = slot.current
        let outcome: Result<JSON, StepError>
        do throws(StepError) {
            let attributes: SpanAttributes = [
                "genflow.plugin": .string(supervisor.manifest.name), "genflow.plugin_version": .string(supervisor.manifest.version), "genflow.stage": .string(name),
            ]
            outcome = .success(try await Telemetry.span("plugin \(name)", kind: .client, attributes: attributes) { _ throws(StepError) in
                if case .object(var members) = invocation {
                    if let item = context.item { members["item"] = .int(item) }
                    // The plugin's own calls can join the job's trace.
                    if let traceparent = Telemetry.traceparent { members["traceparent"] = .string(traceparent) }
                    invocation = .object(members)
                }
                return try await supervisor.invoke(stage: name, config: context.config, input: context.input, context: invocation, deadline: deadline, observer: observer).get()
            })
        } catch {
            outcome = .failure(error)
        }
        events.finish()
        await writer.value
        return try outcome.get()
    }
}

/// The plugins of a directory: manifests checked, processes started, their stages ready to register.
public struct PluginSet: Sendable {
    /// One slot per plugin: the supervisor new calls go to, swapped when the plugin changes.
    var slots: [String: PluginSlot] = [:]

    /// The current supervisor of each plugin.
    public var supervisors: [PluginSupervisor] { slots.keys.sorted().compactMap { slots[$0]?.current } }
    public var stages: [any Stage] = []
    /// Manifests that did not load and plugins that did not start, with why (`file:line:col`).
    public var failures: [Diagnostic] = []

    public init() {}

    /// Reads every `*/plugin.yaml` under `directory` and starts the plugins (with `start`); with
    /// `start: false` only the manifests are read (`genflow stages`).
    public static func load(directory: String, start: Bool, reserved: Set<String>, logger: Logging.Logger) async -> PluginSet {
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
            if let other = set.slots[manifest.name] {
                set.failures.append(Diagnostic(at: SourceLocation(file: manifest.file, line: 1, column: 1),
                                               "plugin name '\(manifest.name)' is already used by \(other.current.manifest.file)"))
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
            let slot = PluginSlot(supervisor, fingerprint: PluginSlot.fingerprint(manifest))
            set.slots[manifest.name] = slot
            set.stages += manifest.stages.map { PluginStage(spec: $0, slot: slot) }
        }
        return set
    }

    /// Every plugin's status, then each manifest that did not load as `{name: null, file, error}`.
    public var statusDocuments: [JSON] {
        supervisors.map(\.status) + failures.map { ["name": .null, "file": .string($0.location.file), "error": .string($0.description)] }
    }

    /// Stops every plugin.
    public func stop(grace: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            for supervisor in supervisors { group.addTask { await supervisor.stop(grace: grace) } }
        }
    }

    /// Picks up changed plugins (manifest, a file of the folder or the executable): the new version
    /// is started first; once it said hello, new calls go to it and the old one is stopped when
    /// its calls in flight are done. A plugin whose stages changed, a new plugin or a removed one
    /// needs a restart (the stage registry is fixed at start); that is logged.
    public func reload(directory: String, logger: Logging.Logger) async {
        for folder in PluginManifest.pluginDirectories(in: directory) {
            let manifest: PluginManifest
            do {
                manifest = try PluginManifest.load(directory: folder)
            } catch {
                logger.error("plugin manifest rejected; the running version stays: \(error)")
                continue
            }
            guard let slot = slots[manifest.name] else {
                logger.warning("new plugin \(manifest.name): restart the daemon to load it")
                continue
            }
            let fingerprint = PluginSlot.fingerprint(manifest)
            guard fingerprint != slot.fingerprint else { continue }
            guard Set(manifest.stages.map(\.name)) == Set(slot.current.manifest.stages.map(\.name)) else {
                logger.warning("plugin \(manifest.name) changed its stages: restart the daemon to use them; the running version stays")
                continue
            }
            let replacement = PluginSupervisor(manifest: manifest, logger: logger)
            do {
                try await replacement.start()
            } catch {
                logger.error("changed plugin did not start; the running version stays: \(error)")
                continue
            }
            let old = slot.swap(replacement, fingerprint: fingerprint)
            logger.notice("plugin reloaded", metadata: ["genflow.plugin": "\(manifest.name)", "genflow.version": "\(manifest.version)"])
            Task { await old.drain(grace: .seconds(300)) }
        }
    }
}

/// Where a plugin's stages send their calls: its current supervisor, replaced on reload.
final class PluginSlot: Sendable {
    private let state: Mutex<(supervisor: PluginSupervisor, fingerprint: String)>

    init(_ supervisor: PluginSupervisor, fingerprint: String) {
        state = Mutex((supervisor, fingerprint))
    }

    var current: PluginSupervisor { state.withLock { $0.supervisor } }
    var fingerprint: String { state.withLock { $0.fingerprint } }

    /// Installs `supervisor`; returns the one it replaces.
    func swap(_ supervisor: PluginSupervisor, fingerprint: String) -> PluginSupervisor {
        state.withLock { state in
            defer { state = (supervisor, fingerprint) }
            return state.supervisor
        }
    }

    /// Sizes and modification times of the manifest folder's files and of the executable.
    static func fingerprint(_ manifest: PluginManifest) -> String {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: manifest.directory)) ?? []).sorted()
        let paths = names.map { "\(manifest.directory)/\($0)" } + [manifest.executable]
        return paths.map { path in
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(path):\(attributes?[.size] ?? 0):\(modified)"
        }.joined(separator: "|")
    }
}
