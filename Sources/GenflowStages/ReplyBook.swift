public import GenflowCore
internal import GenflowPipeline
internal import Synchronization

/// What a step gets instead of calling out, in `genflow test` and recorded dry runs.
public enum ScriptedReply: Sendable, Equatable {
    /// The step's output, as is (any stage).
    case output(JSON)
    /// A model's reply text (`call_model`): streamed through the stage like a provider's answer, so
    /// progress and `canvas.objects` events, parsing and usage work as in production.
    case text(String, usage: JSON?, finishReason: String?)
    /// The attempt fails with this error (its class decides the retry).
    case failure(StepError)

    /// The keys a reply may have.
    public static let keys = ["output", "text", "usage", "finish_reason", "error", "message", "retry_after"]

    /// A reply from its JSON form: `{output}`, `{text, usage?, finish_reason?}` or
    /// `{error: <class>, message?, retry_after?}`.
    /// Why a reply could not be read.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    public static func parse(_ json: JSON) throws(Invalid) -> ScriptedReply {
        guard let members = json.objectValue else { throw Invalid("a reply must be a mapping with output, text or error, not \(json.typeName)") }
        if let unknown = members.keys.sorted().first(where: { !keys.contains($0) }) {
            throw Invalid("unknown key '\(unknown)' in a reply\(Suggestions.didYouMean(unknown, in: keys)) (keys: \(keys.joined(separator: ", ")))")
        }
        let kinds = ["output", "text", "error"].filter { members[$0] != nil }
        guard kinds.count == 1 else {
            throw Invalid(kinds.isEmpty ? "a reply needs one of output, text or error" : "a reply has one of output, text or error, not \(kinds.joined(separator: " and "))")
        }
        switch kinds[0] {
        case "output":
            return .output(members["output"]!)
        case "text":
            guard let text = members["text"]?.stringValue else { throw Invalid("'text' must be a string (the model's reply)") }
            return .text(text, usage: members["usage"], finishReason: members["finish_reason"]?.stringValue)
        default:
            guard let name = members["error"]?.stringValue, ErrorClass.known.contains(ErrorClass(rawValue: name)) else {
                let names = ErrorClass.known.map(\.rawValue)
                let given = members["error"]?.stringValue ?? ""
                throw Invalid("'error' must be an error class (\(names.joined(separator: ", ")))\(Suggestions.didYouMean(given, in: names))")
            }
            var retryAfter: Duration?
            if let text = members["retry_after"] {
                guard let value = text.stringValue.flatMap(DurationText.parse) ?? text.doubleValue.map({ Duration.milliseconds(Int($0 * 1_000)) }) else {
                    throw Invalid("'retry_after' must be a duration such as 2s")
                }
                retryAfter = value
            }
            return .failure(StepError(ErrorClass(rawValue: name), members["message"]?.stringValue ?? "scripted \(name)", retryAfter: retryAfter))
        }
    }

    /// The JSON form `parse` reads.
    public var json: JSON {
        switch self {
        case .output(let output): ["output": output]
        case .text(let text, let usage, let finishReason):
            .object(["text": .string(text), "usage": usage, "finish_reason": finishReason.map(JSON.string)].compactMapValues { $0 })
        case .failure(let error):
            .object(["error": .string(error.errorClass.rawValue), "message": .string(error.message),
                     "retry_after": error.retryAfter.map { .string("\($0.milliseconds)ms") }].compactMapValues { $0 })
        }
    }
}

/// The scripted replies of the jobs a test run submitted: job → step → the replies its calls get,
/// in order (a retry, or a re-ask by a later step's `on_invalid`, takes the next one). Jobs it does
/// not know run their stages as configured.
public final class ReplyBook: Sendable {
    private struct Script {
        var replies: [String: [ScriptedReply]]
        var calls: [String: Int] = [:]
    }

    private let jobs = Mutex<[String: Script]>([:])

    public init() {}

    /// Scripts `jobID`'s steps (a job with no replies at all is still scripted: its outside calls fail).
    public func script(jobID: String, replies: [String: [ScriptedReply]]) {
        jobs.withLock { $0[jobID] = Script(replies: replies) }
    }

    public func forget(jobID: String) {
        jobs.withLock { $0[jobID] = nil }
    }

    /// Whether `jobID` is scripted.
    func knows(_ jobID: String) -> Bool { jobs.withLock { $0[jobID] != nil } }

    /// The reply to the step's next call, nil when the step has none scripted. An item of a
    /// `for_each` step takes its own replies (`step[index]`) when it has some, else the step's next
    /// (items run in any order). A call past the list fails without retry, saying so.
    func reply(for context: StageContext) -> ScriptedReply? {
        jobs.withLock { jobs -> ScriptedReply? in
            guard var script = jobs[context.jobID] else { return nil }
            let itemKey = context.item.map { "\(context.stepID)[\($0)]" }
            guard let key = [itemKey, context.stepID].compactMap({ $0 }).first(where: { script.replies[$0] != nil }),
                  let replies = script.replies[key] else { return nil }
            let call = script.calls[key, default: 0]
            script.calls[key] = call + 1
            jobs[context.jobID] = script
            guard call < replies.count else {
                return .failure(StepError(.invalidRequest, "step '\(key)' has \(replies.count) scripted \(replies.count == 1 ? "reply" : "replies"); call \(call + 1) has none"))
            }
            return replies[call]
        }
    }
}

/// A stage whose steps can be scripted: a reply replaces the attempt. A stage that calls out
/// (`http.request`, plugins) refuses to run unscripted in a scripted job: tests never reach the network.
struct ScriptedStage: Stage {
    let inner: any Stage
    let replies: ReplyBook
    let callsOut: Bool

    var descriptor: StageDescriptor { inner.descriptor }

    func hasOutsideEffects(_ config: JSON) -> Bool { inner.hasOutsideEffects(config) }

    func run(_ context: StageContext) async throws(StepError) -> JSON {
        switch replies.reply(for: context) {
        case .output(let output)?:
            return output
        case .failure(let error)?:
            throw error
        case .text?:
            throw StepError(.invalidRequest, "step '\(context.stepID)' (\(name)) takes an output or error reply; text replies are for call_model")
        case nil:
            if callsOut, replies.knows(context.jobID) {
                throw StepError(.invalidRequest, "step '\(context.stepID)' (\(name)) would call out; give it replies (replies: {\(context.stepID): [{output: …}]})")
            }
            return try await inner.run(context)
        }
    }
}
