public import GenflowCore

/// Reads typed values out of a YAML tree, collecting a diagnostic for everything wrong instead of
/// stopping at the first problem, so one `validate` run reports every error in a file.
public struct NodeReader: Sendable {
    public private(set) var diagnostics: [Diagnostic] = []

    public init() {}

    /// Records an error at `location`.
    public mutating func error(at location: SourceLocation, _ message: String) {
        diagnostics.append(Diagnostic(at: location, message))
    }

    /// Orders the diagnostics so far by position, as a compiler prints them.
    public mutating func sortByLocation() {
        diagnostics = diagnostics.enumerated()
            .sorted { ($0.element.location, $0.offset) < ($1.element.location, $1.offset) }
            .map(\.element)
    }

    /// Records all of `other`'s diagnostics.
    public mutating func append(_ other: [Diagnostic]) {
        diagnostics += other
    }

    /// The entries of a mapping by key. Unknown keys are errors with a "did you mean"; missing
    /// required keys are errors at the mapping. Nil (with an error) when `node` is not a mapping.
    public mutating func mapping(
        _ node: YAMLNode, _ what: String, allowedKeys: [String], required: [String] = []
    ) -> [String: YAMLPair]? {
        guard let pairs = node.mapping else {
            error(at: node.location, "\(what) must be a mapping, not \(node.kindDescription)")
            return nil
        }
        var entries: [String: YAMLPair] = [:]
        for pair in pairs {
            guard let key = pair.key.keyText, pair.key.scalar != nil else {
                error(at: pair.key.location, "keys of \(what) must be plain names")
                continue
            }
            guard allowedKeys.contains(key) else {
                error(at: pair.key.location, "unknown key '\(key)' in \(what)\(Suggestions.didYouMean(key, in: allowedKeys))")
                continue
            }
            entries[key] = pair
        }
        for key in required where entries[key] == nil && !pairs.contains(where: { $0.key.keyText == key }) {
            error(at: node.location, "\(what) is missing required key '\(key)'")
        }
        return entries
    }

    /// A string scalar. Numbers and booleans are refused so `name: 123` does not slip through.
    public mutating func string(_ node: YAMLNode, _ what: String, allowEmpty: Bool = false) -> String? {
        guard case .string(let text) = node.json else {
            error(at: node.location, "'\(what)' must be a string, not \(node.kindDescription)")
            return nil
        }
        if !allowEmpty && text.isEmpty {
            error(at: node.location, "'\(what)' must not be empty")
            return nil
        }
        return text
    }

    /// A string or a plain scalar read as text (for values like `port: 8080` that are text to us).
    public mutating func text(_ node: YAMLNode, _ what: String) -> String? {
        guard let scalar = node.scalar else {
            error(at: node.location, "'\(what)' must be a single value, not \(node.kindDescription)")
            return nil
        }
        return scalar.text
    }

    /// An integer within `range`.
    public mutating func int(_ node: YAMLNode, _ what: String, in range: ClosedRange<Int>) -> Int? {
        guard let value = node.json.intValue, node.scalar != nil, node.json.typeName == "integer" else {
            error(at: node.location, "'\(what)' must be an integer between \(range.lowerBound) and \(range.upperBound), not \(describe(node))")
            return nil
        }
        guard range.contains(value) else {
            error(at: node.location, "'\(what)' must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return nil
        }
        return value
    }

    /// A number within `range`.
    public mutating func double(_ node: YAMLNode, _ what: String, in range: ClosedRange<Double>) -> Double? {
        guard let value = node.json.doubleValue, value.isFinite else {
            error(at: node.location, "'\(what)' must be a number between \(format(range.lowerBound)) and \(format(range.upperBound)), not \(describe(node))")
            return nil
        }
        guard range.contains(value) else {
            error(at: node.location, "'\(what)' must be between \(format(range.lowerBound)) and \(format(range.upperBound)), not \(format(value))")
            return nil
        }
        return value
    }

    /// A boolean.
    public mutating func bool(_ node: YAMLNode, _ what: String) -> Bool? {
        guard let value = node.json.boolValue else {
            error(at: node.location, "'\(what)' must be true or false, not \(describe(node))")
            return nil
        }
        return value
    }

    /// A duration such as `500ms`, `2s`, `1m30s`, within `range`.
    public mutating func duration(_ node: YAMLNode, _ what: String, in range: ClosedRange<Duration>) -> Duration? {
        guard let scalar = node.scalar, let value = DurationText.parse(scalar.text) else {
            error(at: node.location, "'\(what)' must be a duration such as 500ms, 2s, 1m30s or 1h, not \(describe(node))")
            return nil
        }
        guard range.contains(value) else {
            error(at: node.location, "'\(what)' must be between \(DurationText.format(range.lowerBound)) and \(DurationText.format(range.upperBound)), not \(scalar.text)")
            return nil
        }
        return value
    }

    /// The elements of a list.
    public mutating func list(_ node: YAMLNode, _ what: String) -> [YAMLNode]? {
        guard let elements = node.sequence else {
            error(at: node.location, "'\(what)' must be a list, not \(node.kindDescription)")
            return nil
        }
        return elements
    }

    /// A list of strings.
    public mutating func stringList(_ node: YAMLNode, _ what: String) -> [(String, YAMLNode)]? {
        guard let elements = list(node, what) else { return nil }
        return elements.compactMap { element in string(element, what).map { ($0, element) } }
    }

    private func describe(_ node: YAMLNode) -> String {
        if let scalar = node.scalar { return "'\(scalar.text)'" }
        return node.kindDescription
    }

    private func format(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}

extension YAMLNode {
    /// The position of the character at `offset` inside this scalar's text, where it can be known
    /// (single-line plain or quoted scalars); otherwise the scalar's own position.
    public func location(ofOffset offset: Int) -> SourceLocation {
        guard let scalar, !scalar.text.contains("\n") else { return location }
        switch scalar.style {
        case .plain: return SourceLocation(file: location.file, line: location.line, column: location.column + offset)
        case .singleQuoted, .doubleQuoted:
            return SourceLocation(file: location.file, line: location.line, column: location.column + 1 + offset)
        default: return location
        }
    }
}
