internal import GenflowCore
public import GenflowPipeline
public import GenflowConfig
internal import GenflowProviders

/// The built-in stages of SPEC §6.
public enum BuiltinStages {
    /// The names of the built-in stages (plugins may not take them).
    public static let names: Set<String> = Set(makeRegistry(providers: [:], testStages: true).names)

    /// A registry of every built-in stage.
    /// - Parameters:
    ///   - providers: the provider names configured in the daemon config, which `call_model`'s
    ///     `provider:` must name.
    ///   - stateDirectory: where generated images are kept.
    ///   - testStages: also register `test.step` (tests and benchmarks only).
    ///   - plugins: stages plugins provide (their names never collide with built-in ones: the plugin
    ///     loader refuses those).
    ///   - replies: scripted replies (`genflow test`): any step of a scripted job can be given its
    ///     output or error; `call_model` also takes a model's text; `http.request` and plugin
    ///     stages fail rather than call out unscripted.
    public static func makeRegistry(
        providers: [String: ProviderConfig], stateDirectory: String? = nil, testStages: Bool = false,
        plugins: [any Stage] = [], replies: ReplyBook? = nil
    ) -> StageRegistry {
        let http = HTTPClientSource()
        let made = providers.compactMapValues { config in
            ProviderKinds.named(config.kind)?.make(config.settings, secrets: config.secrets, http: http)
        }
        let model = CallModel(providers: made, stateDirectory: stateDirectory, replies: replies)
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
}
