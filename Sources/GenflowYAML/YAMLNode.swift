public import GenflowCore

/// A YAML node with the position it was read from. Aliases are resolved and merge keys (`<<`) applied,
/// so a tree is plain data: scalars, sequences and mappings in source order.
public struct YAMLNode: Sendable, Hashable {
    public enum Content: Sendable, Hashable {
        case scalar(YAMLScalar)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    public var content: Content
    /// Where the node starts (for a mapping or sequence, its first token).
    public var location: SourceLocation
    /// An explicit tag such as `tag:yaml.org,2002:str`, if the source gave one.
    public var tag: String?

    public init(_ content: Content, at location: SourceLocation, tag: String? = nil) {
        self.content = content
        self.location = location
        self.tag = tag
    }
}

/// A scalar's text and how it was written (quoted scalars are always strings).
public struct YAMLScalar: Sendable, Hashable {
    public enum Style: Sendable, Hashable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    public var text: String
    public var style: Style

    public init(_ text: String, style: Style = .plain) {
        self.text = text
        self.style = style
    }
}

/// One `key: value` entry of a mapping.
public struct YAMLPair: Sendable, Hashable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}

extension YAMLNode {
    /// The entries, if this is a mapping.
    public var mapping: [YAMLPair]? {
        if case .mapping(let pairs) = content { return pairs }
        return nil
    }

    /// The elements, if this is a sequence.
    public var sequence: [YAMLNode]? {
        if case .sequence(let elements) = content { return elements }
        return nil
    }

    /// The scalar, if this is one.
    public var scalar: YAMLScalar? {
        if case .scalar(let scalar) = content { return scalar }
        return nil
    }

    /// The text of a scalar key; nil for a complex key.
    public var keyText: String? { scalar?.text }

    /// The value for a scalar key of a mapping.
    public subscript(key: String) -> YAMLNode? {
        mapping?.first(where: { $0.key.keyText == key })?.value
    }

    /// True for `~`, `null`, an empty plain scalar, or `!!null`.
    public var isNull: Bool {
        if case .null = json { return true }
        return false
    }

    /// What kind of node this is, for error messages ("a mapping", "a string").
    public var kindDescription: String {
        switch content {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar:
            switch json {
            case .null: return "null"
            case .bool: return "a boolean"
            case .int, .double: return "a number"
            default: return "a string"
            }
        }
    }

    /// The node as JSON, with scalars typed by the YAML 1.2 core schema.
    public var json: JSON {
        switch content {
        case .sequence(let elements): return .array(elements.map(\.json))
        case .mapping(let pairs):
            var members: [String: JSON] = [:]
            for pair in pairs {
                members[pair.key.keyText ?? pair.key.json.description] = pair.value.json
            }
            return .object(members)
        case .scalar(let scalar): return YAMLCoreSchema.resolve(scalar, tag: tag)
        }
    }
}

/// The YAML 1.2 core schema's scalar resolution (no YAML 1.1 `yes`/`no`/`on`/`off` booleans).
enum YAMLCoreSchema {
    static func resolve(_ scalar: YAMLScalar, tag: String?) -> JSON {
        let text = scalar.text
        switch tag {
        case "tag:yaml.org,2002:str": return .string(text)
        case "tag:yaml.org,2002:null": return .null
        case "tag:yaml.org,2002:bool": return bool(text).map(JSON.bool) ?? .string(text)
        case "tag:yaml.org,2002:int": return int(text).map(JSON.int) ?? .string(text)
        case "tag:yaml.org,2002:float": return double(text).map(JSON.double) ?? .string(text)
        default: break
        }
        guard scalar.style == .plain, tag == nil || tag == "!" else { return .string(text) }
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        default: break
        }
        if let value = bool(text) { return .bool(value) }
        if let value = int(text) { return .int(value) }
        if let value = double(text) { return .double(value) }
        return .string(text)
    }

    private static func bool(_ text: String) -> Bool? {
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    private static func int(_ text: String) -> Int? {
        if text.hasPrefix("0x") { return Int(text.dropFirst(2), radix: 16) }
        if text.hasPrefix("0o") { return Int(text.dropFirst(2), radix: 8) }
        guard let first = text.first, first.isNumber || ((first == "-" || first == "+") && text.count > 1) else { return nil }
        return Int(text.hasPrefix("+") ? String(text.dropFirst()) : text)
    }

    private static func double(_ text: String) -> Double? {
        switch text.lowercased() {
        case ".inf", "+.inf": return .infinity
        case "-.inf": return -.infinity
        case ".nan": return .nan
        default: break
        }
        let allowed = Set("0123456789.-+eE")
        guard text.contains(where: \.isNumber), text.allSatisfy(allowed.contains),
              text.first != "e", text.first != "E" else { return nil }
        return Double(text)
    }
}
