public import GenflowCore
public import GenflowHTTPClient
public import GenflowPipeline
internal import Synchronization

/// A model provider: where `call_model` sends chat and image requests. Each kind is one file
/// (`OpenAIProvider`, `AnthropicProvider`, `OfflineProvider`) and one line in `ProviderKinds.all`;
/// HTTP answers become error classes in one place (`ProviderFailure`).
public protocol Provider: Sendable {
    /// False for a provider that computes its answers in this process (the offline model): its
    /// steps have no outside effects and may ride with the next checkpoint.
    var callsOut: Bool { get }
    /// What, besides the request, decides its answers (its kind and where it is, never a key):
    /// part of the response cache's key.
    var identity: JSON { get }
    /// A chat reply; `onText` gets each piece of a streamed reply as it arrives, with the
    /// fraction of the reply done when known.
    func chat(_ request: ChatRequest, timeout: Duration, onText: @escaping @Sendable (String, Double?) -> Void) async throws(StepError) -> ChatResult
    func images(_ request: ImageRequest, timeout: Duration) async throws(StepError) -> ImageResult
}

/// A kind of provider as the config names it (`kind: openai`): its settings, checked with their
/// places in the file like a stage's `with:`, and how to make one.
public struct ProviderKind: Sendable {
    public typealias Make = @Sendable (_ settings: JSON, _ secrets: [String: Secret], _ http: HTTPClientSource) -> any Provider

    public var name: String
    public var summary: String
    /// Its own keys besides `kind`, with their defaults.
    public var settings: [JSONSchema.Property]
    /// Keys whose values are secrets (API keys): kept apart from `settings`, never logged or cached.
    public var secrets: Set<String>
    private let make: Make

    public init(name: String, summary: String, settings: [JSONSchema.Property], secrets: Set<String> = [], make: @escaping Make) {
        self.name = name
        self.summary = summary
        self.settings = settings
        self.secrets = secrets
        self.make = make
    }

    /// The schema of a provider entry of this kind (`kind` included).
    public var schema: JSONSchema {
        .object(description: summary, required: ["kind"], [.init("kind", .string(enum: [name]))] + settings + [
            .init("cooldown", CooldownPolicy.schema), .init("pricing", ModelPrice.pricingSchema),
        ])
    }

    /// Checks the schema cannot express; each problem with the key it is about.
    public func problems(_ settings: JSON) -> [(key: String, message: String)] {
        settings.objectValue?.compactMap { key, value in
            guard self.settings.first(where: { $0.name == key })?.schema.format == "uri", let text = value.stringValue,
                  !(text.hasPrefix("http://") || text.hasPrefix("https://")) else { return nil }
            return (key, "'\(key)' must start with http:// or https://, not '\(text)'")
        } ?? []
    }

    /// A provider of this kind, its settings' defaults filled in.
    public func make(_ settings: JSON, secrets: [String: Secret], http: HTTPClientSource) -> any Provider {
        make(schema.applyingDefaults(to: settings), secrets, http)
    }
}

/// Every kind of provider. A new kind is a file and a line here.
public enum ProviderKinds {
    public static let all: [ProviderKind] = [OpenAIProvider.kind, AnthropicProvider.kind, OfflineProvider.kind]

    public static func named(_ name: String) -> ProviderKind? { all.first { $0.name == name } }

    /// A URL setting: checked to start with http:// or https://.
    static func url(_ description: String, default value: String) -> JSONSchema {
        var schema = JSONSchema.string(description, default: value, minLength: 1)
        schema.format = "uri"
        return schema
    }

    /// A URL setting's value without its trailing slash.
    static func root(_ settings: JSON, _ key: String) -> String {
        var text = settings[key]?.stringValue ?? ""
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }
}

/// An HTTP client made on first use and shared from then on: commands that never call out
/// (`validate`, `stages`) start no curl thread.
public final class HTTPClientSource: Sendable {
    private let made = Mutex<HTTPClient?>(nil)

    public init() {}

    public var client: HTTPClient {
        made.withLock { made in
            if let client = made { return client }
            let client = HTTPClient()
            made = client
            return client
        }
    }
}
