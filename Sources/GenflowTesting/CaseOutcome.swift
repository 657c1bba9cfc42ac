public import GenflowCore

/// What one case's job did, gathered from the store once it ended.
public struct CaseOutcome: Sendable {
    public var jobID: String
    public var status: String
    public var error: JSON?
    /// Each completed step's output, by step id (the job's result).
    public var result: JSON
    /// Each step's status and how many times it ran (retries and on_invalid re-asks included), in pipeline order.
    public var steps: [(id: String, status: String, attempts: Int)]
    /// Every failed attempt that was retried: the step, attempt, error and the delay the policy computed.
    public var retries: [Retry]
    public var canvasObjects: [JSON]
    /// The job's events as `{type, step, data}`, in order.
    public var events: [JSON]
    public var debited: Int

    public var eventTypes: [String] { events.compactMap { $0["type"]?.stringValue } }

    public func step(_ id: String) -> (id: String, status: String, attempts: Int)? { steps.first { $0.id == id } }

    public struct Retry: Sendable {
        public var step: String
        public var attempt: Int
        public var error: String
        /// Nil for an `on_invalid` re-ask, which does not wait.
        public var delay: Duration?
        public var reAskedBy: String?
    }

    public init(jobID: String, status: String, error: JSON?, result: JSON, steps: [(id: String, status: String, attempts: Int)], retries: [Retry],
                canvasObjects: [JSON], events: [JSON], debited: Int) {
        self.jobID = jobID
        self.status = status
        self.error = error
        self.result = result
        self.steps = steps
        self.retries = retries
        self.canvasObjects = canvasObjects
        self.events = events
        self.debited = debited
    }
}

/// An expectation that did not hold: where it is written and what differed.
public struct CaseFailure: Error, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String
    public var description: String { "\(location): error: \(message)" }
}

extension Expectation {
    /// Nil when the outcome meets this expectation; otherwise what differed, as expected/actual.
    public func failure(in outcome: CaseOutcome) -> CaseFailure? {
        func fail(_ message: String) -> CaseFailure { CaseFailure(location: location, message: message) }
        switch check {
        case .status(let status):
            guard outcome.status != status else { return nil }
            let why = outcome.error.map { " (\($0["step"]?.stringValue.map { "step \($0): " } ?? "")\($0["class"]?.stringValue ?? ""): \($0["message"]?.stringValue ?? ""))" } ?? ""
            return fail("status: expected \(status), got \(outcome.status)\(why)")
        case .error(let expected):
            guard let actual = outcome.error else { return fail("error: expected \(expected), but the job has no error (it \(outcome.status))") }
            return Self.mismatch(expected, actual, at: "error").map(fail)
        case .stepStatus(let step, let status):
            let actual = outcome.step(step)?.status ?? "not run"
            return actual == status ? nil : fail("steps.\(step).status: expected \(status), got \(actual)")
        case .attempts(let step, let count):
            let actual = outcome.step(step)?.attempts ?? 0
            return actual == count ? nil : fail("steps.\(step).attempts: expected \(count), got \(actual)")
        case .delays(let step, let delays):
            let actual = outcome.retries.filter { $0.step == step }.compactMap(\.delay)
            guard actual.map(\.milliseconds) != delays.map(\.milliseconds) else { return nil }
            return fail("steps.\(step).delays: expected [\(delays.map(DurationText.format).joined(separator: ", "))], got [\(actual.map(DurationText.format).joined(separator: ", "))]")
        case .output(let step, let pointer, let expected):
            guard let output = outcome.result[step] else { return fail("steps.\(step).output: the step has no output (it did not complete)") }
            return Self.mismatch(expected, output.value(atPointer: pointer), at: "steps.\(step).output\(pointer)").map(fail)
        case .result(let pointer, let expected):
            return Self.mismatch(expected, outcome.result.value(atPointer: pointer), at: "outputs\(pointer)").map(fail)
        case .canvasCount(let count):
            return outcome.canvasObjects.count == count ? nil : fail("canvas.count: expected \(count), got \(outcome.canvasObjects.count)")
        case .canvasTypes(let types):
            let actual = outcome.canvasObjects.compactMap { $0["type"]?.stringValue }
            return actual == types ? nil : fail("canvas.types: expected [\(types.joined(separator: ", "))], got [\(actual.joined(separator: ", "))]")
        case .events(let types):
            var remaining = outcome.eventTypes[...]
            for (index, type) in types.enumerated() {
                guard let found = remaining.firstIndex(of: type) else {
                    return fail("events: expected \(type) (item \(index + 1)) after \(index == 0 ? "the start" : types[index - 1]); the events were [\(outcome.eventTypes.joined(separator: ", "))]")
                }
                remaining = remaining[(found + 1)...]
            }
            return nil
        case .debited(let amount):
            return outcome.debited == amount ? nil : fail("debited: expected \(amount), got \(outcome.debited)")
        }
    }

    /// Where `actual` differs from `expected`: objects match when every expected member matches
    /// (more members are fine), lists item by item with the same length, numbers by value.
    static func mismatch(_ expected: JSON, _ actual: JSON?, at path: String) -> String? {
        guard let actual else { return "\(path): expected \(expected), got nothing (no such value)" }
        switch (expected, actual) {
        case (.object(let wanted), .object(let members)):
            for key in wanted.keys.sorted() {
                if let problem = mismatch(wanted[key]!, members[key], at: "\(path)/\(key)") { return problem }
            }
            return nil
        case (.array(let wanted), .array(let items)):
            guard wanted.count == items.count else { return "\(path): expected \(wanted.count) items, got \(items.count): \(actual)" }
            for (index, item) in wanted.enumerated() {
                if let problem = mismatch(item, items[index], at: "\(path)/\(index)") { return problem }
            }
            return nil
        default:
            if let left = expected.doubleValue, let right = actual.doubleValue {
                return left == right ? nil : "\(path): expected \(expected), got \(actual)"
            }
            return expected == actual ? nil : "\(path): expected \(expected), got \(actual)"
        }
    }
}
