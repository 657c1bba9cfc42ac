public import GenflowCore
public import Logging
internal import Synchronization

/// Keeps a plugin's processes running: starts `instances` of them, sends each call to the least
/// busy, and restarts one that dies after a capped backoff (0.1 s doubling to 10 s; back to 0.1 s
/// once a process has lived a minute). A crash never reaches the daemon: calls in flight fail with
/// the retryable `plugin_crashed`.
public final class PluginSupervisor: Sendable {
    public let manifest: PluginManifest
    let logger: Logger

    private struct Slot {
        var process: PluginProcess?
        var startedAt: ContinuousClock.Instant = .now
        var failures = 0
    }

    private struct State {
        var slots: [Slot]
        var isStopped = false
        /// Processes that died and were (or are being) restarted, since start.
        var restarts = 0
    }

    private let state: Mutex<State>
    /// Signalled when a process comes back after a restart, and when the supervisor stops.
    private let slotsChanged = Broadcast()

    public init(manifest: PluginManifest, logger: Logger) {
        self.manifest = manifest
        self.logger = logger
        state = Mutex(State(slots: Array(repeating: Slot(), count: manifest.instances)))
    }

    /// Starts every instance; fails (stopping those started) if one does not start or its hello
    /// differs from the manifest.
    public func start() async throws {
        for index in 0..<manifest.instances {
            do {
                let process = try await PluginProcess.start(manifest, instance: index, logger: logger) { [weak self] in self?.exited($0) }
                state.withLock { $0.slots[index] = Slot(process: process) }
            } catch {
                await stop(grace: .milliseconds(200))
                throw error
            }
        }
        logger.info("plugin started", metadata: ["genflow.plugin": "\(manifest.name)", "genflow.instances": "\(manifest.instances)"])
    }

    /// Calls `stage` on the least busy live process. While every process is restarting, the call
    /// waits for one to come back (within `deadline`) instead of failing at once: a crash costs
    /// the calls it cut, not every call made during the restart.
    func invoke(stage: String, config: JSON, input: JSON, context: JSON, deadline: Duration, observer: PluginProcess.Observer) async -> Result<JSON, StepError> {
        let end = ContinuousClock.now + deadline
        while true {
            let (process, isStopped) = state.withLock { state in
                (state.slots.compactMap(\.process).filter(\.isAlive).min { $0.load < $1.load }, state.isStopped)
            }
            if let process {
                return await process.invoke(stage: stage, config: config, input: input, context: context, deadline: end - .now, observer: observer)
            }
            if isStopped { return .failure(StepError(.pluginCrashed, "plugin \(manifest.name) is stopped")) }
            guard ContinuousClock.now < end else {
                return .failure(StepError(.pluginCrashed, "plugin \(manifest.name) is restarting; no process came back within the step's timeout"))
            }
            await slotsChanged.wait(until: {
                state.withLock { $0.isStopped || $0.slots.contains { $0.process?.isAlive == true } }
            }, timeout: end - .now)
            if Task.isCancelled { return .failure(StepError(.cancelled, "the call was stopped while plugin \(manifest.name) restarted")) }
        }
    }

    /// The process ids of the running instances (for tests and operators).
    public var processIdentifiers: [Int32] {
        state.withLock { $0.slots.compactMap { $0.process?.isAlive == true ? $0.process?.processIdentifier : nil } }
    }

    /// What operators see (`GET /v1/plugins`): `running` when every instance is up, `degraded`
    /// when some are, `restarting` when none is, `stopped` after shutdown or replacement.
    public var status: JSON {
        state.withLock { state in
            let live = state.slots.compactMap(\.process).filter(\.isAlive)
            let condition = state.isStopped ? "stopped" : live.count == state.slots.count ? "running" : live.isEmpty ? "restarting" : "degraded"
            return [
                "name": .string(manifest.name), "version": .string(manifest.version), "file": .string(manifest.file),
                "stages": .array(manifest.stages.map { .string($0.name) }), "state": .string(condition),
                "instances": .int(state.slots.count), "running": .int(live.count), "pids": .array(live.map { .int(Int($0.processIdentifier)) }),
                "calls_in_flight": .int(live.reduce(0) { $0 + $1.load }), "restarts": .int(state.restarts),
            ]
        }
    }

    private func exited(_ process: PluginProcess) {
        let delay = state.withLock { state -> Duration? in
            guard !state.isStopped, state.slots.indices.contains(process.instance), state.slots[process.instance].process === process else { return nil }
            var slot = state.slots[process.instance]
            if ContinuousClock.now - slot.startedAt > .seconds(60) { slot.failures = 0 }
            let delay = Duration.milliseconds(min(100 << min(slot.failures, 7), 10_000))
            slot.failures += 1
            slot.process = nil
            state.slots[process.instance] = slot
            state.restarts += 1
            return delay
        }
        guard let delay else { return }
        logger.warning("plugin process exited; restarting", metadata: [
            "genflow.plugin": "\(manifest.name)", "genflow.instance": "\(process.instance)", "genflow.delay_ms": "\(delay.milliseconds)",
        ])
        Task { await restart(process.instance, after: delay) }
    }

    private func restart(_ index: Int, after delay: Duration) async {
        try? await Task.sleep(for: delay)
        guard !state.withLock({ $0.isStopped }) else { return }
        do {
            let process = try await PluginProcess.start(manifest, instance: index, logger: logger) { [weak self] in self?.exited($0) }
            let kept = state.withLock { state -> Bool in
                guard !state.isStopped else { return false }
                state.slots[index].process = process
                state.slots[index].startedAt = .now
                return true
            }
            slotsChanged.signal()
            if !kept { await process.shutdown(grace: .milliseconds(100)) }
        } catch {
            logger.error("plugin restart failed", metadata: ["genflow.plugin": "\(manifest.name)", "genflow.error": "\(error)"])
            let next = state.withLock { state -> Duration in
                state.slots[index].failures += 1
                return .milliseconds(min(100 << min(state.slots[index].failures, 7), 10_000))
            }
            await restart(index, after: next)
        }
    }

    /// Once no call is in flight (or after `grace`), stops the processes: a replaced version
    /// finishes what it started.
    func drain(grace: Duration) async {
        let deadline = ContinuousClock.now + grace
        for process in state.withLock({ $0.slots.compactMap(\.process) }) {
            await process.changed.wait(until: { process.load == 0 }, timeout: max(.zero, deadline - .now))
        }
        await stop(grace: .seconds(5))
    }

    /// Sends `shutdown` to every process and kills those still running after `grace`.
    public func stop(grace: Duration) async {
        let processes = state.withLock { state -> [PluginProcess] in
            state.isStopped = true
            return state.slots.compactMap(\.process)
        }
        slotsChanged.signal()
        await withTaskGroup(of: Void.self) { group in
            for process in processes { group.addTask { await process.shutdown(grace: grace) } }
        }
    }
}
