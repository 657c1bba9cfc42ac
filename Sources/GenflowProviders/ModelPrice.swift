public import GenflowCore
internal import GenflowPipeline

/// What a model costs (`providers.<name>.pricing.<model>`): per million input and output tokens,
/// and per image, by size and quality. Exact (`Money`).
public struct ModelPrice: Sendable, Hashable {
    public var inputPerMtok: Money?
    public var outputPerMtok: Money?
    /// A price, or prices by size (`1024x1024`), each a price or prices by quality (`hd`), with
    /// `default` at either level.
    public var perImage: JSON?

    /// The schema of one model's prices (`per_image` is checked by `problems`).
    static let schema = JSONSchema.object([
        .init("input_per_mtok", .number("Price of a million input (prompt) tokens.", minimum: 0)),
        .init("output_per_mtok", .number("Price of a million output (completion) tokens.", minimum: 0)),
        .init("per_image", .any("Price of an image: a number, or by size (e.g. 1024x1024), each a number or by quality (e.g. hd); 'default' at either level.")),
    ])

    /// The `pricing` setting's schema: model names to prices.
    static let pricingSchema = JSONSchema.freeObject("Prices by model name: {input_per_mtok, output_per_mtok, per_image}, in US dollars.")

    public init(_ json: JSON) {
        inputPerMtok = Money(json["input_per_mtok"])
        outputPerMtok = Money(json["output_per_mtok"])
        perImage = json["per_image"]
    }

    /// What is wrong with `pricing`: each problem with the path of its value.
    public static func problems(_ pricing: JSON) -> [(path: [String], message: String)] {
        guard let models = pricing.objectValue else { return [([], "'pricing' must map model names to prices")] }
        var found: [(path: [String], message: String)] = []
        for (model, prices) in models {
            found += schema.violations(of: prices).map { (["pricing", model] + $0.path, $0.message) }
            guard let image = prices["per_image"] else { continue }
            let isPrice: (JSON) -> Bool = { (Money($0)?.nanos ?? -1) >= 0 && $0.stringValue == nil }
            let fine = isPrice(image) || image.objectValue?.values.allSatisfy { level in
                isPrice(level) || level.objectValue?.values.allSatisfy(isPrice) == true
            } == true
            if !fine { found.append((["pricing", model, "per_image"], "must be a price, or prices by size and quality")) }
        }
        return found
    }

    /// The cost of an answer: its images at `per_image` when set, else its tokens (OpenAI's or
    /// the images API's names) at the token prices; nil when no price applies.
    public func cost(usage: JSON, images: Int, size: String?, quality: String?) -> Money? {
        if images > 0, let price = imagePrice(size: size, quality: quality) { return price * images }
        let input = usage["prompt_tokens"]?.intValue ?? usage["input_tokens"]?.intValue ?? 0
        let output = usage["completion_tokens"]?.intValue ?? usage["output_tokens"]?.intValue ?? 0
        guard inputPerMtok != nil || outputPerMtok != nil else { return nil }
        return (inputPerMtok ?? .zero).perMillion(input) + (outputPerMtok ?? .zero).perMillion(output)
    }

    private func imagePrice(size: String?, quality: String?) -> Money? {
        guard let perImage else { return nil }
        if let flat = Money(perImage) { return flat }
        let level = size.flatMap { perImage[$0] } ?? perImage["default"]
        if let level, let flat = Money(level) { return flat }
        return Money(quality.flatMap { level?[$0] } ?? level?["default"])
    }
}
