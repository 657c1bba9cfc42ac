public import GenflowCore
public import GenflowPipeline
internal import GenflowProviders
internal import GenflowTracing
internal import Metrics
internal import Tracing

/// Fallbacks and cooldowns: within one attempt `call_model` tries its provider and model, then each
/// of `fallbacks` in turn while the failures are of a class in `fallback_on`; a target cooling down
/// (`ProviderHealth`) is skipped without a call. When every target failed, the attempt fails once
/// and the step's retry policy decides: one retry layer, never retries multiplied.
extension CallModel {
    /// A provider and a model to call.
    struct Target: Equatable {
        var provider: String
        var model: String

        var json: [String: JSON] { ["provider": .string(provider), "model": .string(model)] }
    }

    /// What moves to the next target unless `fallback_on` says otherwise: failures another
    /// provider may not have.
    static let defaultFallbackOn: Set<String> = [ErrorClass.rateLimited, .serverError, .timeout, .network].map(\.rawValue).reduce(into: []) { $0.insert($1) }

    /// The step's provider and model, then its fallbacks (each defaulting to the step's).
    static func targets(_ config: JSON) -> [Target] {
        let first = Target(provider: config["provider"]?.stringValue ?? "default", model: config["model"]?.stringValue ?? "")
        return [first] + (config["fallbacks"]?.arrayValue ?? []).map { fallback in
            Target(provider: fallback["provider"]?.stringValue ?? first.provider, model: fallback["model"]?.stringValue ?? first.model)
        }
    }

    /// The answer of the first target that answers, with `provider` (and `tried`: what each target
    /// before it returned); or the attempt's failure.
    func callTargets(_ context: StageContext, output: String, messages: [JSON]) async throws(StepError) -> JSON {
        let fallbackOn = context.config["fallback_on"]?.arrayValue.map { Set($0.compactMap(\.stringValue)) } ?? Self.defaultFallbackOn
        var tried: [JSON] = []
        var failures: [StepError] = []
        for target in Self.targets(context.config) {
            guard let configured = providers[target.provider] else {
                throw StepError(.invalidRequest, "provider '\(target.provider)' is not configured (providers: \(providers.keys.sorted().joined(separator: ", ")))")
            }
            let key = ProviderHealth.Target(provider: target.provider, model: target.model)
            let dimensions = [("provider", target.provider), ("model", target.model)]
            if configured.cooldown != nil, let until = health.coolingUntil(key) {
                let wait = until - ContinuousClock.now
                Counter(label: "genflow_provider_skipped_total", dimensions: dimensions).increment()
                let error = StepError(
                    .rateLimited, "\(target.provider) \(target.model) is cooling down after failing (\(DurationText.format(wait)) left)", retryAfter: wait
                )
                tried.append(.object(target.json.merging(["skipped": .string(error.message)]) { $1 }))
                failures.append(error)
                continue
            }
            let hold = try await holdBudget(context, price: configured.pricing[target.model], output: output, messages: messages)
            let started = ContinuousClock.now
            do throws(StepError) {
                var answer: JSON
                // In `genflow test`, each target's call takes the step's next scripted reply.
                switch replies?.reply(for: context) {
                case .output(let scripted)?:
                    return scripted
                case .failure(let error)?:
                    throw error
                case .text(let text, let usage, let finishReason)?:
                    answer = try await runScripted(context, text: text, usage: usage, finishReason: finishReason, output: output)
                case nil:
                    answer = try await call(target, configured.provider, context, output: output, messages: messages)
                }
                Self.record(provider: target.provider, since: started, outcome: "ok")
                health.succeeded(key)
                if let hold { context.records.withCheckpoint(.releaseSpendHold(hold)) }
                guard var members = answer.objectValue else { return answer }
                members["provider"] = .string(target.provider)
                if let price = configured.pricing[target.model], let usage = members["usage"],
                   let cost = price.cost(usage: usage, images: members["images"]?.arrayValue?.count ?? 0,
                                         size: members["images"]?.arrayValue?.first?["resolution"]?.stringValue ?? context.config["size"]?.stringValue,
                                         quality: context.config["quality"]?.stringValue) {
                    members["cost"] = .string(cost.description)
                    Counter(label: "genflow_model_cost_nanousd_total", dimensions: dimensions).increment(by: Int64(cost.nanos))
                }
                if !tried.isEmpty { members["tried"] = .array(tried) }
                answer = .object(members)
                return answer
            } catch {
                if let hold { try? await context.records.releaseSpendHold(hold) }
                Self.record(provider: target.provider, since: started, outcome: error.errorClass.rawValue)
                guard fallbackOn.contains(error.errorClass.rawValue) else { throw error }
                Counter(label: "genflow_provider_failures_total", dimensions: dimensions + [("class", error.errorClass.rawValue)]).increment()
                if let policy = configured.cooldown, health.failed(key, error, policy: policy) {
                    Counter(label: "genflow_provider_cooldowns_total", dimensions: dimensions).increment()
                }
                tried.append(.object(target.json.merging(["error": ["class": .string(error.errorClass.rawValue), "message": .string(error.message)]]) { $1 }))
                failures.append(error)
            }
        }
        guard let last = failures.last else { throw StepError(.internal, "call_model has no target") }
        if last.errorClass == .budgetExceeded { throw last }
        if failures.count == 1 { throw last }
        let summary = zip(Self.targets(context.config), failures).map { "\($0.provider) \($0.model): \($1.message)" }.joined(separator: "; ")
        throw StepError(last.errorClass, "every target failed: \(summary)", retryAfter: failures.compactMap(\.retryAfter).min())
    }

    /// One call of a target's model, in a `model <provider>` span (provider, model, tokens).
    private func call(_ target: Target, _ provider: any Provider, _ context: StageContext, output: String, messages: [JSON]) async throws(StepError) -> JSON {
        return try await Telemetry.span("model \(target.provider)", kind: .client, attributes: [
            "genflow.provider": .string(target.provider), "genflow.model": .string(target.model), "genflow.output": .string(output),
        ]) { span throws(StepError) in
            let answer = output == "image"
                ? try await runImages(context, provider: provider, model: target.model)
                : try await runChat(context, provider: provider, model: target.model, messages: messages, output: output)
            if let span, let usage = answer["usage"] {
                span.attributes["genflow.tokens.input"] = usage["prompt_tokens"]?.intValue
                span.attributes["genflow.tokens.output"] = usage["completion_tokens"]?.intValue
            }
            return answer
        }
    }

    /// Before a priced call, with `limits.budget` set: holds the call's estimated cost of the
    /// user's budget (refused with `budget_exceeded`, never retried, once their spend and the holds
    /// of their calls in flight reach a cap). Nil when nothing needs holding.
    func holdBudget(_ context: StageContext, price: ModelPrice?, output: String, messages: [JSON]) async throws(StepError) -> Int64? {
        guard let price, !budget.isEmpty else { return nil }
        let config = context.config
        let count = config["n"]?.intValue ?? 1
        let usage: JSON = output == "image"
            ? ImageBytes.estimatedUsage(prompt: config["prompt"]?.stringValue ?? "", size: config["size"]?.stringValue, quality: config["quality"]?.stringValue, count: count)
            : ["prompt_tokens": .int(messages.compactMap { $0["content"]?.stringValue?.count }.reduce(0, +) / 4),
               "completion_tokens": .int(config["max_tokens"]?.intValue ?? 1_024)]
        let estimate = price.cost(usage: usage, images: output == "image" ? count : 0, size: config["size"]?.stringValue, quality: config["quality"]?.stringValue) ?? .zero
        // Past the attempt's end its daemon has checkpointed or released it, or died.
        return try await context.records.holdSpend(estimate, limits: budget, expiry: context.timeout + .seconds(60))
    }
}
