public import GenflowCore
internal import GenflowPipeline
internal import GenflowYAML
public import GenflowProviders

/// One entry of `providers:` in the daemon config: its kind (`ProviderKinds`) and its settings,
/// checked against the kind's schema with their places in the file, defaults filled in. Secret
/// settings (API keys) are kept apart, as `Secret`s.
public struct ProviderConfig: Sendable, Hashable {
    public var kind: String
    public var settings: JSON
    public var secrets: [String: Secret]
    /// Set by `cooldown:`; without it, a failing target is never skipped.
    public var cooldown: CooldownPolicy?
    /// Prices by model name (`pricing:`); a model without one has no cost.
    public var pricing: [String: ModelPrice]

    public init(
        kind: String, settings: JSON = [:], secrets: [String: Secret] = [:], cooldown: CooldownPolicy? = nil, pricing: [String: ModelPrice] = [:]
    ) {
        self.kind = kind
        self.settings = ProviderKinds.named(kind)?.schema.applyingDefaults(to: settings) ?? settings
        self.secrets = secrets
        self.cooldown = cooldown
        self.pricing = pricing
    }

    /// An OpenAI-compatible API.
    public static func openai(baseURL: String = "https://api.openai.com/v1", apiKey: Secret? = nil) -> ProviderConfig {
        ProviderConfig(kind: "openai", settings: ["base_url": .string(baseURL)], secrets: apiKey.map { ["api_key": $0] } ?? [:])
    }

    /// Anthropic's Messages API.
    public static func anthropic(baseURL: String = "https://api.anthropic.com", apiKey: Secret? = nil) -> ProviderConfig {
        ProviderConfig(kind: "anthropic", settings: ["base_url": .string(baseURL)], secrets: apiKey.map { ["api_key": $0] } ?? [:])
    }

    /// The offline model, `delay` before each streamed chunk.
    public static func offline(delay: Duration = .milliseconds(20)) -> ProviderConfig {
        ProviderConfig(kind: "offline", settings: ["delay": .string(DurationText.format(delay))])
    }

    static func read(_ node: YAMLNode, name: String, reader: inout NodeReader) -> ProviderConfig? {
        let what = "provider '\(name)'"
        guard let entries = reader.mapping(node, what, allowedKeys: node.mapping?.compactMap(\.key.keyText) ?? [], required: ["kind"]),
              let kindNode = entries["kind"]?.value, let kindText = reader.string(kindNode, "kind") else { return nil }
        guard let kind = ProviderKinds.named(kindText) else {
            let kinds = ProviderKinds.all.map(\.name)
            reader.error(at: kindNode.location, "unknown provider kind '\(kindText)'\(Suggestions.didYouMean(kindText, in: kinds)) (kinds: \(kinds.joined(separator: ", ")))")
            return nil
        }
        let before = reader.diagnostics.count
        let found = kind.schema.diagnostics(for: node, allowTemplates: false, context: "\(what) (kind: \(kind.name))")
        reader.append(found)
        for (key, message) in kind.problems(node.json) {
            reader.error(at: entries[key]?.value.location ?? node.location, "\(what): \(message)")
        }
        for problem in node.json["pricing"].map(ModelPrice.problems) ?? [] {
            reader.error(at: node.descendant(at: problem.path)?.location ?? node.location, "\(what): '\(problem.path.joined(separator: "."))' \(problem.message)")
        }
        guard found.isEmpty, reader.diagnostics.count == before, var settings = node.json.objectValue else { return nil }
        settings["kind"] = nil
        let cooldown = settings.removeValue(forKey: "cooldown").map(CooldownPolicy.init)
        let pricing = settings.removeValue(forKey: "pricing")?.objectValue?.mapValues(ModelPrice.init) ?? [:]
        for property in kind.settings where property.schema.format == "uri" {
            if case .string(var url)? = settings[property.name] {
                while url.hasSuffix("/") { url.removeLast() }
                settings[property.name] = .string(url)
            }
        }
        var secrets: [String: Secret] = [:]
        for key in kind.secrets {
            if let value = settings.removeValue(forKey: key)?.stringValue, !value.isEmpty { secrets[key] = Secret(value) }
        }
        return ProviderConfig(kind: kind.name, settings: .object(settings), secrets: secrets, cooldown: cooldown, pricing: pricing)
    }
}
