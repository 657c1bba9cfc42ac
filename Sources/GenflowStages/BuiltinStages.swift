internal import GenflowCore
public import GenflowPipeline

/// The built-in stages of SPEC §6.
public enum BuiltinStages {
    /// A registry of every built-in stage.
    /// - Parameters:
    ///   - providers: the provider names configured in the daemon config, which `call_model`'s
    ///     `provider:` must name.
    ///   - testStages: also register `test.step` (tests and benchmarks only).
    public static func makeRegistry(providers: [String], testStages: Bool = false) -> StageRegistry {
        // Names are distinct by construction; a duplicate is a programming error caught by the tests.
        try! StageRegistry((testStages ? [TestStage()] : []) + [
            PrepareInstructions(),
            CallModel(providers: providers),
            ParseCanvasObjects(),
            PersistCanvas(),
            PersistImage(),
            Notify(),
            TokensRequire(),
            TokensDebit(),
            HTTPRequest(),
        ])
    }
}

extension Stage {
    /// The failure of a stage whose behaviour is not in this build yet: loud, classed `internal`
    /// (never retried), never a pretend success.
    func notImplemented() -> StepError {
        StepError(.internal, "stage '\(name)' is declared but not implemented in this build of genflow")
    }
}
