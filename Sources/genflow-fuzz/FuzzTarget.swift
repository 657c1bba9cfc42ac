import GenflowCore

/// A parser under test: it makes inputs and runs each through its entry points, checking every
/// property that needs a single run (the campaign checks time and determinism).
protocol FuzzTarget {
    /// A generated input, with whatever the generator knows about it beyond its bytes.
    associatedtype Input

    /// The name on the command line and in the report.
    var name: String { get }

    /// A new input drawn with `rng`.
    func makeInput(using rng: inout SplitMix64) -> Input

    /// An input read back from a saved file (`--replay`): its bytes, nothing known beyond them.
    func input(replaying bytes: [UInt8]) -> Input

    /// The bytes of `input`, as saved before it runs.
    func bytes(of input: Input) -> [UInt8]

    /// Runs `input` through every entry point of the target.
    func run(_ input: Input) -> Verdict
}

/// What one input did, as far as the properties care.
struct Verdict: Equatable {
    /// Whether the target's main entry point accepted the input (a pipeline loaded, a reply parsed).
    var isAccepted = false
    /// The main entry point's rejection messages, as a user would read them.
    var messages: [String] = []
    /// Everything observable about the outcome of every entry point, compared between two runs.
    var fingerprint: [String] = []
    /// Broken properties, one sentence each.
    var violations: [String] = []

    /// Records a broken property.
    mutating func fail(_ violation: String) {
        violations.append(violation)
    }
}
