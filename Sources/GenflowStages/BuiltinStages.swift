internal import GenflowCore
public import GenflowPipeline
public import GenflowStore
public import GenflowConfig

/// The built-in stages of SPEC §6.
public enum BuiltinStages {
    /// The names of the built-in stages (plugins may not take them).
    public static let names: Set<String> = Set(makeRegistry(providers: [:], testStages: true).names)

    /// A registry of every built-in stage.
    /// - Parameters:
    ///   - providers: the provider names configured in the daemon config, which `call_model`'s
    ///     `provider:` must name.
    ///   - store: the database the stages that record things use; nil where nothing runs (`validate`).
    ///   - stateDirectory: where generated images are kept.
    ///   - testStages: also register `test.step` (tests and benchmarks only).
    ///   - plugins: stages plugins provide (their names never collide with built-in ones: the plugin
    ///     loader refuses those).
    ///   - replies: scripted replies (`genflow test`): any step of a scripted job can be given its
    ///     output or error; `call_model` also takes a model's text; `http.request` and plugin
    ///     stages fail rather than call out unscripted.
    public static func makeRegistry(
        providers: [String: ProviderConfig], store: JobStore? = nil, stateDirectory: String? = nil, testStages: Bool = false,
        plugins: [any Stage] = [], replies: ReplyBook? = nil
    ) -> StageRegistry {
        let http = SharedHTTPClient()
        let model = CallModel(providers: providers, store: store, stateDirectory: stateDirectory, http: http, replies: replies)
        let local: [any Stage] = (testStages ? [TestStage()] : []) + [
            PrepareInstructions(), ParseCanvasObjects(), PersistCanvas(store: store), PersistImage(store: store),
            Notify(store: store), TokensRequire(store: store), TokensDebit(store: store),
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

extension Stage {
    /// The store, or the `internal` failure of a stage built without one.
    func required(_ store: JobStore?) throws(StepError) -> JobStore {
        guard let store else { throw StepError(.internal, "stage '\(name)' has no database in this process") }
        return store
    }

    /// Runs one store write for a stage; database failures are `server_error` (retried).
    func inTransaction<T: Sendable>(_ store: JobStore?, _ body: @escaping @Sendable (StoreSession) throws -> T) async throws(StepError) -> T {
        let store = try required(store)
        return try await Self.databaseErrors { try await store.write(body) }
    }

    /// Records a stage's events in one statement; database failures are `server_error` (retried).
    func record(_ events: [NewEvent], in store: JobStore?) async throws(StepError) {
        let store = try required(store)
        try await Self.databaseErrors { try await store.append(events) }
    }

    private static func databaseErrors<T>(_ work: () async throws -> T) async throws(StepError) -> T {
        do {
            return try await work()
        } catch let error as StepError {
            throw error
        } catch {
            throw StepError(.serverError, "database: \(error)")
        }
    }
}
