public import GenflowCore
internal import GenflowYAML

/// One entry of `providers:` in the daemon config.
public struct ProviderConfig: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Any OpenAI-compatible API.
        case openai
        /// Deterministic, no network: for demos and tests.
        case offline
    }

    public static let openAIBaseURL = "https://api.openai.com/v1"

    public var kind: Kind
    /// For `openai`: the API root, e.g. `https://api.openai.com/v1`.
    public var baseURL: String?
    /// For `openai`.
    public var apiKey: Secret?
    /// For `offline`: the pause between streamed chunks.
    public var delay: Duration

    public init(kind: Kind, baseURL: String? = nil, apiKey: Secret? = nil, delay: Duration = .milliseconds(20)) {
        self.kind = kind
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.delay = delay
    }

    static func read(_ node: YAMLNode, name: String, reader: inout NodeReader) -> ProviderConfig? {
        let what = "provider '\(name)'"
        guard let entries = reader.mapping(node, what, allowedKeys: ["kind", "base_url", "api_key", "delay"], required: ["kind"]),
              let kindNode = entries["kind"]?.value, let kindText = reader.string(kindNode, "kind") else { return nil }
        guard let kind = Kind(rawValue: kindText) else {
            let kinds = Kind.allCases.map(\.rawValue)
            reader.error(at: kindNode.location, "unknown provider kind '\(kindText)'\(Suggestions.didYouMean(kindText, in: kinds)) (kinds: \(kinds.joined(separator: ", ")))")
            return nil
        }
        var provider = ProviderConfig(kind: kind)
        switch kind {
        case .openai:
            for key in ["delay"] where entries[key] != nil {
                reader.error(at: entries[key]!.key.location, "'\(key)' applies to offline providers, not to \(what) (kind: openai)")
            }
            provider.baseURL = openAIBaseURL
            if let node = entries["base_url"]?.value, let url = reader.string(node, "base_url") {
                if url.hasPrefix("http://") || url.hasPrefix("https://") {
                    provider.baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
                } else {
                    reader.error(at: node.location, "'base_url' must start with http:// or https://, not '\(url)'")
                }
            }
            if let node = entries["api_key"]?.value, let key = reader.text(node, "api_key"), !key.isEmpty {
                provider.apiKey = Secret(key)
            }
        case .offline:
            for key in ["base_url", "api_key"] where entries[key] != nil {
                reader.error(at: entries[key]!.key.location, "'\(key)' applies to openai providers, not to \(what) (kind: offline)")
            }
            if let node = entries["delay"]?.value {
                provider.delay = reader.duration(node, "delay", in: .zero...(.seconds(60))) ?? provider.delay
            }
        }
        return provider
    }
}
