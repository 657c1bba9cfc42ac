public import GenflowCore

/// What generated images are: their file format from their first bytes, and the tokens an image
/// request costs when the provider does not say.
public enum ImageBytes {
    /// `png`, `jpeg`, `webp` or `gif` from a file's first bytes; nil for anything else.
    public static func format(of head: [UInt8]) -> String? {
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "png" }
        if head.starts(with: [0xFF, 0xD8, 0xFF]) { return "jpeg" }
        if head.starts(with: Array("GIF8".utf8)) { return "gif" }
        if head.count >= 12, head.starts(with: Array("RIFF".utf8)), Array(head[8..<12]) == Array("WEBP".utf8) { return "webp" }
        return nil
    }

    /// Usage for an answer that reports none, counted as OpenAI counts gpt-image-1's output: by
    /// quality (low, medium, high; DALL·E's `standard` is medium, `hd` high, none medium) and size
    /// (other sizes in proportion to their pixels), plus about four characters of prompt a token.
    /// Marked `estimated: true`.
    public static func estimatedUsage(prompt: String, size: String?, quality: String?, count: Int) -> JSON {
        let level = switch quality?.lowercased() {
        case "low": 0
        case "high", "hd": 2
        default: 1
        }
        let table: [String: [Int]] = ["1024x1024": [272, 1_056, 4_160], "1024x1536": [408, 1_584, 6_240], "1536x1024": [400, 1_568, 6_208]]
        let perImage: Int
        if let size, let row = table[size] {
            perImage = row[level]
        } else {
            let sides = (size ?? "1024x1024").split(separator: "x").compactMap { Int($0) }
            let pixels = sides.count == 2 ? sides[0] * sides[1] : 1_048_576
            perImage = max(1, table["1024x1024"]![level] * pixels / 1_048_576)
        }
        let input = max(1, prompt.count / 4), output = perImage * count
        return ["prompt_tokens": .int(input), "completion_tokens": .int(output), "total_tokens": .int(input + output), "estimated": true]
    }
}
