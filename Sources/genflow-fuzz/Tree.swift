import GenflowCore

/// A generated YAML or JSON value, keys in the order they are written, rendered with random
/// liberties of style.
enum Tree: Sendable {
    /// A scalar in its written form (`5`, `"a b"`, `&a x`, `*a`), put in the text as it is.
    case scalar(String)
    case list([Tree])
    case map([(key: String, value: Tree)])

    // MARK: YAML

    /// The tree as a YAML document: block style, each collection in flow style (`{a: 1}`,
    /// `[1, 2]`) with probability `flowChance`.
    func yaml(flowChance: Double, using rng: inout SplitMix64) -> String {
        if case .scalar(let text) = self { return text + "\n" }
        return rng.chance(flowChance) ? yamlFlow() + "\n" : yamlBlock(indent: 0, flowChance: flowChance, using: &rng)
    }

    /// `text` as a YAML string scalar: plain when it reads back as the same string, else double-quoted.
    static func yamlString(_ text: String) -> String {
        let plainSafe = text.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || "0123456789_./-".unicodeScalars.contains($0) || $0 == " " }
        let readsAsOther = ["true", "false", "null", "True", "False", "Null", "NULL", "TRUE", "FALSE", "~"].contains(text) || Double(text) != nil
        if plainSafe, !readsAsOther, let first = text.unicodeScalars.first, first != " ", first != "-", text.last != " " {
            return text
        }
        // A JSON string is a YAML double-quoted scalar (same escapes; control characters and DEL as \u).
        return JSON.string(text).description
    }

    private var isEmptyCollection: Bool {
        switch self {
        case .scalar: false
        case .list(let elements): elements.isEmpty
        case .map(let pairs): pairs.isEmpty
        }
    }

    private func yamlFlow() -> String {
        switch self {
        case .scalar(let text): text
        case .list(let elements): "[" + elements.map { $0.yamlFlow() }.joined(separator: ", ") + "]"
        case .map(let pairs): "{" + pairs.map { "\($0.key): \($0.value.yamlFlow())" }.joined(separator: ", ") + "}"
        }
    }

    /// A collection's lines at `indent`, each ending in a newline.
    private func yamlBlock(indent: Int, flowChance: Double, using rng: inout SplitMix64) -> String {
        let pad = String(repeating: " ", count: indent)
        var text = ""
        switch self {
        case .scalar(let value):
            text = pad + value + "\n"
        case .map(let pairs):
            for (key, value) in pairs {
                text += pad + key + ":"
                if case .scalar(let scalar) = value {
                    text += " " + scalar + "\n"
                } else if value.isEmptyCollection || rng.chance(flowChance) {
                    text += " " + value.yamlFlow() + "\n"
                } else if case .list = value, rng.chance(0.5) {
                    text += "\n" + value.yamlBlock(indent: indent, flowChance: flowChance, using: &rng)
                } else {
                    text += "\n" + value.yamlBlock(indent: indent + 2, flowChance: flowChance, using: &rng)
                }
            }
        case .list(let elements):
            for element in elements {
                if case .scalar(let scalar) = element {
                    text += pad + "- " + scalar + "\n"
                } else if element.isEmptyCollection || rng.chance(flowChance) {
                    text += pad + "- " + element.yamlFlow() + "\n"
                } else {
                    text += pad + "- " + element.yamlBlock(indent: indent + 2, flowChance: flowChance, using: &rng).dropFirst(indent + 2)
                }
            }
        }
        return text
    }

    // MARK: JSON

    /// `text` as a JSON string in `quote` (`"` or, as some models write, `'`).
    static func jsonString(_ text: String, quote: Character = "\"") -> String {
        var quoted = String(quote)
        for scalar in text.unicodeScalars {
            switch scalar {
            case _ where Character(scalar) == quote: quoted += "\\" + String(quote)
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case _ where scalar.value < 0x20: quoted += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + String(quote)
    }

    /// The tree as JSON written in `style`.
    func json(_ style: JSONStyle, using rng: inout SplitMix64) -> String {
        switch self {
        case .scalar(let text):
            return text
        case .list(let elements):
            var parts: [String] = []
            for element in elements { parts.append(element.json(style, using: &rng)) }
            return "[" + style.join(parts, using: &rng) + "]"
        case .map(let pairs):
            var parts: [String] = []
            for (key, value) in pairs { parts.append(style.key(key) + style.colon + value.json(style, using: &rng)) }
            return "{" + style.join(parts, using: &rng) + "}"
        }
    }
}

/// How a reply writes its JSON: strict, or with the liberties models take (bare or single-quoted
/// keys, trailing commas, comments, line breaks).
struct JSONStyle {
    /// `"`, `'`, or nil for bare keys.
    var keyQuote: Character?
    var hasTrailingCommas = false
    var hasComments = false
    var isPretty = false

    /// Strict, compact JSON.
    static let strict = JSONStyle(keyQuote: "\"")

    /// A random style; strict one time in three.
    static func random(using rng: inout SplitMix64) -> JSONStyle {
        guard !rng.chance(1.0 / 3) else { return .strict }
        return JSONStyle(
            keyQuote: rng.pick(["\"", "'", nil] as [Character?]), hasTrailingCommas: rng.chance(0.3), hasComments: rng.chance(0.3),
            isPretty: rng.chance(0.5))
    }

    var colon: String { isPretty ? ": " : ":" }

    func key(_ name: String) -> String {
        keyQuote.map { Tree.jsonString(name, quote: $0) } ?? name
    }

    /// Elements or members joined by commas, with this style's liberties between them.
    func join(_ parts: [String], using rng: inout SplitMix64) -> String {
        var text = ""
        for (index, part) in parts.enumerated() {
            if index > 0 { text += isPretty ? ",\n  " : "," }
            if hasComments, rng.chance(0.2) { text += rng.chance(0.5) ? "/* note */ " : "// note\n" }
            text += part
        }
        if hasTrailingCommas, !parts.isEmpty { text += "," }
        return text
    }
}
