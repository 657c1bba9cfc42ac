public import GenflowCore
public import GenflowPipeline
public import GenflowConfig
public import GenflowProviders

/// The built-in stages of SPEC §6.
public enum BuiltinStages {
    /// The names of the built-in stages (plugins may not take them).
    public static let names: Set<String> = Set(makeRegistry(providers: [:], testStages: true).names)

    /// A registry of every built-in stage.
    /// - Parameters:
    ///   - providers: the provider names configured in the daemon config, which `call_model`'s
    ///     `provider:` must name.
    ///   - health: which provider targets are cooling down (the daemon's, shown by `GET /v1/providers`).
    ///   - budget: caps on each user's spend on priced calls (`limits.budget`).
    ///   - stateDirectory: where generated images are kept.
    ///   - testStages: also register `test.step` (tests and benchmarks only).
    ///   - plugins: stages plugins provide (their names never collide with built-in ones: the plugin
    ///     loader refuses those).
    ///   - replies: scripted replies (`genflow test`): any step of a scripted job can be given its
    ///     output or error; `call_model` also takes a model's text; `http.request` and plugin
    ///     stages fail rather than call out unscripted.
    public static func makeRegistry(
        providers: [String: ProviderConfig], health: ProviderHealth = ProviderHealth(), budget: SpendLimits = SpendLimits(),
        stateDirectory: String? = nil, testStages: Bool = false,
        plugins: [any Stage] = [], replies: ReplyBook? = nil
    ) -> StageRegistry {
        let http = HTTPClientSource()
        let model = CallModel(providers: providers, health: health, budget: budget, http: http, stateDirectory: stateDirectory, replies: replies)
        let local: [any Stage] = (testStages ? [TestStage()] : []) + [
            PrepareInstructions(), ParseCanvasObjects(), PersistCanvas(), PersistImage(), Notify(), TokensRequire(), TokensDebit(),
        ]
        let outside: [any Stage] = [HTTPRequestStage(http: http)] + plugins
        var stages: [any Stage] = [model] + local + outside
        if let replies {
            stages = [model] + local.map { ScriptedStage(inner: $0, replies: replies, callsOut: false) }
                + outside.map { ScriptedStage(inner: $0, replies: replies, callsOut: true) }
        }
        // Names are distinct by construction; a duplicate is a programming error caught by the tests.
        return try! StageRegistry(stages)
    }

    /// `GET /v1/providers`: each configured provider (never its secrets) and the models called on
    /// it, with their calls, failures and cooldown.
    public static func providerStatus(_ providers: [String: ProviderConfig], health: ProviderHealth) -> [JSON] {
        let states = health.states
        let now = ContinuousClock.now
        return providers.keys.sorted().map { name in
            let config = providers[name]!
            let targets = states.filter { $0.key.provider == name }.sorted { $0.key.model < $1.key.model }.map { target, state -> JSON in
                let remaining = state.coolingUntil.map { $0 - now }.flatMap { $0 > .zero ? $0 : nil }
                return [
                    "model": .string(target.model), "state": remaining == nil ? "ok" : "cooling_down",
                    "cooling_down_ms": remaining.map { .int(Int($0.milliseconds)) } ?? .null,
                    "calls": .int(state.calls), "failures": .int(state.failures), "last_error": state.lastError.map(JSON.string) ?? .null,
                ]
            }
            let cooldown: JSON = config.cooldown.map { policy in
                ["failures": .int(policy.failures), "window": .string(DurationText.format(policy.window)), "for": .string(DurationText.format(policy.duration))]
            } ?? .null
            return ["name": .string(name), "kind": .string(config.kind), "settings": config.settings, "cooldown": cooldown, "targets": .array(targets)]
        }
    }
}

extension DaemonConfig {
    /// The stage registry a daemon with this config runs: every built-in stage, `call_model`
    /// knowing the providers (and their `health`), the budget and the state directory, and the
    /// stages of plugins. `genflow serve` and the commands that check pipelines build it here.
    public func makeStageRegistry(health: ProviderHealth = ProviderHealth(), testStages: Bool, plugins: [any Stage] = []) -> StageRegistry {
        BuiltinStages.makeRegistry(
            providers: providers, health: health, budget: budget, stateDirectory: stateDir, testStages: testStages, plugins: plugins
        )
    }
}
