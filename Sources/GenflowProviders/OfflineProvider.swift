public import GenflowCore
internal import Foundation

/// `kind: offline`: the offline model (`OfflineModel`), no network. Its chat reply is a drawing
/// of the job's instructions, streamed in chunks `delay` apart; its images are PNG files drawn
/// from the prompt's words. Deterministic, and its `model` says no model was called.
public struct OfflineProvider: Provider {
    public static let kind = ProviderKind(
        name: "offline", summary: "Deterministic drawings and pictures, no network: for demos, tests and benchmarks.",
        settings: [.init("delay", .duration("The pause before each streamed chunk (and each image).", default: "20ms"))]
    ) { settings, _, _ in
        OfflineProvider(delay: settings["delay"]?.stringValue.flatMap(DurationText.parse) ?? .milliseconds(20))
    }

    let delay: Duration

    public init(delay: Duration) {
        self.delay = delay
    }

    public var callsOut: Bool { false }
    public var identity: JSON { ["kind": "offline"] }

    public func chat(
        _ request: ChatRequest, timeout: Duration, onText: @escaping @Sendable (String, Double?) -> Void
    ) async throws(StepError) -> ChatResult {
        let model = OfflineModel()
        let prompt = request.messages.last(where: { $0["role"] == "user" })?["content"]?.stringValue ?? ""
        let scheme = Self.field("Colours", in: prompt) ?? Self.field("Colors", in: prompt) ?? request.input["color_scheme"]?.stringValue ?? "default"
        let instructions = request.input["instructions"]?.stringValue ?? prompt
        let chunks = model.replyChunks(for: model.drawing(for: instructions, colourScheme: scheme))
        for (index, chunk) in chunks.enumerated() {
            try await pause()
            if request.stream { onText(chunk, Double(index + 1) / Double(chunks.count)) }
        }
        let text = chunks.joined()
        let promptCharacters = request.messages.compactMap { $0["content"]?.stringValue?.count }.reduce(0, +)
        return ChatResult(
            text: text, usage: OfflineModel.usage(promptCharacters: promptCharacters, completionCharacters: text.count),
            model: OfflineModel.modelName, finishReason: "stop"
        )
    }

    public func images(_ request: ImageRequest, timeout: Duration) async throws(StepError) -> ImageResult {
        let model = OfflineModel()
        let scheme = request.input["color_scheme"]?.stringValue ?? request.input["style"]?.stringValue ?? "default"
        var images: [GeneratedImage] = []
        for _ in 0..<request.count {
            try await pause()
            let picture = model.image(for: request.prompt, aspectRatio: request.aspectRatio ?? "1:1", colourScheme: scheme)
            images.append(GeneratedImage(url: nil, bytes: picture.png, format: "png", resolution: "\(picture.width)x\(picture.height)"))
        }
        let usage = OfflineModel.usage(promptCharacters: request.prompt.count, completionCharacters: 400 * request.count)
        return ImageResult(images: images, usage: usage, model: OfflineModel.modelName)
    }

    private func pause() async throws(StepError) {
        guard delay > .zero else { return }
        do { try await Task.sleep(for: delay) } catch { throw StepError(.cancelled, "the model call was stopped") }
    }

    /// `Colours: warm.` → `warm`: a labelled value in a rendered prompt.
    static func field(_ label: String, in text: String) -> String? {
        guard let range = text.firstRange(of: "\(label): ") else { return nil }
        let value = text[range.upperBound...].prefix(while: { $0 != "." && $0 != "\n" && $0 != "," })
        return value.isEmpty ? nil : String(value)
    }
}
