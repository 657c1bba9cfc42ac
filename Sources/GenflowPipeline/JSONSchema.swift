public import GenflowCore
public import GenflowYAML

/// The JSON Schema subset Genflow understands: pipeline inputs, stage configs, plugin manifests.
///
/// Keywords: `type`, `description`, `required`, `properties`, `additionalProperties` (a Boolean),
/// `items`, `enum`, `default`, `minLength`/`maxLength`, `minimum`/`maximum`, `minItems`/`maxItems`.
/// An object with `properties` is closed unless `additionalProperties: true`, so a misspelt key is
/// an error, not a silently ignored value.
public struct JSONSchema: Sendable, Hashable {
    /// A named property, in declaration order.
    public struct Property: Sendable, Hashable {
        public var name: String
        public var schema: JSONSchema

        public init(_ name: String, _ schema: JSONSchema) {
            self.name = name
            self.schema = schema
        }
    }

    /// Allowed JSON types (`string`, `integer`, `number`, `boolean`, `object`, `array`, `null`); empty = any.
    public var types: [String]
    public var description: String?
    public var properties: [Property]
    public var required: [String]
    /// Whether keys beyond `properties` are accepted. Defaults to false when properties are listed.
    public var additionalProperties: Bool
    private var itemSchemas: [JSONSchema]
    public var enumValues: [JSON]?
    public var defaultValue: JSON?
    public var minLength: Int?
    public var maxLength: Int?
    public var minimum: Double?
    public var maximum: Double?
    public var minItems: Int?
    public var maxItems: Int?
    /// `duration` for strings such as `500ms` or `1h` (the only format understood).
    public var format: String?

    public init(
        types: [String] = [], description: String? = nil, properties: [Property] = [], required: [String] = [],
        additionalProperties: Bool? = nil, items: JSONSchema? = nil, enumValues: [JSON]? = nil,
        defaultValue: JSON? = nil, minLength: Int? = nil, maxLength: Int? = nil, minimum: Double? = nil,
        maximum: Double? = nil, minItems: Int? = nil, maxItems: Int? = nil
    ) {
        self.types = types
        self.description = description
        self.properties = properties
        self.required = required
        self.additionalProperties = additionalProperties ?? properties.isEmpty
        self.itemSchemas = items.map { [$0] } ?? []
        self.enumValues = enumValues
        self.defaultValue = defaultValue
        self.minLength = minLength
        self.maxLength = maxLength
        self.minimum = minimum
        self.maximum = maximum
        self.minItems = minItems
        self.maxItems = maxItems
    }

    /// The schema of array elements.
    public var items: JSONSchema? {
        get { itemSchemas.first }
        set { itemSchemas = newValue.map { [$0] } ?? [] }
    }

    /// The schema of property `name`.
    public func property(_ name: String) -> JSONSchema? {
        properties.first(where: { $0.name == name })?.schema
    }

    public static let typeNames = ["string", "integer", "number", "boolean", "object", "array", "null"]
}

// MARK: - Building in Swift

extension JSONSchema {
    public static func string(
        _ description: String? = nil, enum values: [String]? = nil, default value: String? = nil,
        minLength: Int? = nil, maxLength: Int? = nil
    ) -> JSONSchema {
        JSONSchema(
            types: ["string"], description: description, enumValues: values?.map(JSON.string),
            defaultValue: value.map(JSON.string), minLength: minLength, maxLength: maxLength
        )
    }

    /// A duration such as `500ms`, `2s`, `1m30s` or `1h`.
    public static func duration(_ description: String? = nil, default value: String? = nil) -> JSONSchema {
        var schema = JSONSchema.string(description, default: value)
        schema.format = "duration"
        return schema
    }

    public static func integer(_ description: String? = nil, default value: Int? = nil, minimum: Int? = nil, maximum: Int? = nil) -> JSONSchema {
        JSONSchema(
            types: ["integer"], description: description, defaultValue: value.map(JSON.int),
            minimum: minimum.map(Double.init), maximum: maximum.map(Double.init)
        )
    }

    public static func number(_ description: String? = nil, default value: Double? = nil, minimum: Double? = nil, maximum: Double? = nil) -> JSONSchema {
        JSONSchema(types: ["number"], description: description, defaultValue: value.map(JSON.double), minimum: minimum, maximum: maximum)
    }

    public static func boolean(_ description: String? = nil, default value: Bool? = nil) -> JSONSchema {
        JSONSchema(types: ["boolean"], description: description, defaultValue: value.map(JSON.bool))
    }

    public static func array(_ description: String? = nil, of items: JSONSchema? = nil, minItems: Int? = nil, maxItems: Int? = nil) -> JSONSchema {
        JSONSchema(types: ["array"], description: description, items: items, minItems: minItems, maxItems: maxItems)
    }

    /// An object with the given properties; closed unless `additionalProperties` is true.
    public static func object(
        description: String? = nil, required: [String] = [], additionalProperties: Bool = false,
        _ properties: [Property]
    ) -> JSONSchema {
        JSONSchema(types: ["object"], description: description, properties: properties, required: required, additionalProperties: additionalProperties)
    }

    /// An object that takes any keys.
    public static func freeObject(_ description: String? = nil) -> JSONSchema {
        JSONSchema(types: ["object"], description: description, additionalProperties: true)
    }

    /// Any JSON value.
    public static func any(_ description: String? = nil) -> JSONSchema {
        JSONSchema(description: description)
    }
}

// MARK: - Validating values

/// One way a value breaks a schema, with the path to the offending part.
public struct SchemaViolation: Sendable, Hashable, CustomStringConvertible {
    /// Object keys and array indices from the validated value to the problem.
    public var path: [String]
    /// True when the problem is the key at `path` itself (an unknown key), not its value.
    public var isAtKey: Bool
    public var message: String

    public var description: String {
        path.isEmpty ? message : "\(path.joined(separator: ".")): \(message)"
    }
}

extension JSONSchema {
    /// Checks `value`. Strings holding exactly one `{{reference}}` stand for a value of unknown type
    /// and pass type checks when `allowTemplates` is set (they are checked again after rendering).
    public func violations(of value: JSON, allowTemplates: Bool = false) -> [SchemaViolation] {
        var found: [SchemaViolation] = []
        check(value, path: [], allowTemplates: allowTemplates, into: &found)
        return found
    }

    /// `value` with the defaults of missing properties filled in (top level and nested objects).
    public func applyingDefaults(to value: JSON) -> JSON {
        guard case .object(var members) = value else { return value }
        for property in properties {
            if let current = members[property.name] {
                members[property.name] = property.schema.applyingDefaults(to: current)
            } else if let defaultValue = property.schema.defaultValue {
                members[property.name] = defaultValue
            }
        }
        return .object(members)
    }

    private func check(_ value: JSON, path: [String], allowTemplates: Bool, into found: inout [SchemaViolation]) {
        func fail(_ message: String) { found.append(SchemaViolation(path: path, isAtKey: false, message: message)) }

        if allowTemplates, case .string(let text) = value, TemplateScanner.isTemplate(text) {
            if TemplateScanner.singleReference(in: text) != nil { return }
            if !types.isEmpty && !types.contains("string") {
                fail("must be \(typeList), not text with a template (only a value that is exactly one {{reference}} keeps its type)")
            }
            return
        }
        if !types.isEmpty {
            let actual = value.typeName
            let matches = types.contains(actual) || (actual == "integer" && types.contains("number"))
            guard matches else {
                fail("must be \(typeList), not \(Self.describe(value))")
                return
            }
        }
        if let enumValues, !enumValues.contains(where: { Self.equal($0, value) }) {
            fail("must be one of \(enumValues.map(\.description).joined(separator: ", ")), not \(value)\(enumSuggestion(for: value))")
        }
        switch value {
        case .string(let text):
            let length = text.count
            if let minLength, length < minLength { fail(minLength == 1 ? "must not be empty" : "must be at least \(minLength) characters long") }
            if let maxLength, length > maxLength { fail("must be at most \(maxLength) characters long (got \(length))") }
            if format == "duration", DurationText.parse(text) == nil { fail("must be a duration such as 500ms, 2s, 1m30s or 1h, not \"\(text)\"") }
        case .int, .double:
            let number = value.doubleValue ?? 0
            if !number.isFinite { fail("must be a finite number") }
            if let minimum, number < minimum { fail("must be at least \(Self.format(minimum)), not \(value)") }
            if let maximum, number > maximum { fail("must be at most \(Self.format(maximum)), not \(value)") }
        case .array(let elements):
            if let minItems, elements.count < minItems { fail("must have at least \(minItems) items") }
            if let maxItems, elements.count > maxItems { fail("must have at most \(maxItems) items") }
            if let items {
                for (index, element) in elements.enumerated() {
                    items.check(element, path: path + [String(index)], allowTemplates: allowTemplates, into: &found)
                }
            }
        case .object(let members):
            for name in required where members[name] == nil {
                fail("missing required key '\(name)'")
            }
            for key in members.keys.sorted() {
                if let schema = property(key) {
                    schema.check(members[key]!, path: path + [key], allowTemplates: allowTemplates, into: &found)
                } else if !additionalProperties {
                    let suggestion = Suggestions.didYouMean(key, in: properties.map(\.name))
                    let known = properties.isEmpty ? "no keys are accepted" : "known keys: \(properties.map(\.name).joined(separator: ", "))"
                    found.append(SchemaViolation(
                        path: path + [key], isAtKey: true,
                        message: "unknown key '\(key)'\(suggestion.isEmpty ? " (\(known))" : suggestion)"
                    ))
                }
            }
        case .null, .bool:
            break
        }
    }

    private var typeList: String {
        let names = types.map { $0 == "integer" ? "an integer" : $0 == "array" ? "a list" : $0 == "object" ? "an object" : "a \($0)" }
        return names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " or " + names.last!
    }

    private func enumSuggestion(for value: JSON) -> String {
        guard case .string(let text) = value else { return "" }
        return Suggestions.didYouMean(text, in: enumValues?.compactMap(\.stringValue) ?? [])
    }

    private static func equal(_ a: JSON, _ b: JSON) -> Bool {
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return a == b
    }

    private static func describe(_ value: JSON) -> String {
        switch value {
        case .string(let text): return "the string \"\(text.count > 40 ? text.prefix(40) + "…" : Substring(text))\""
        case .array: return "a list"
        case .object: return "an object"
        case .null: return "null"
        case .bool(let flag): return "the boolean \(flag)"
        case .int, .double: return "the number \(value)"
        }
    }

    static func format(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}

extension YAMLNode {
    /// The node reached by following object keys and list indices; with `key`, the key node of the last step.
    public func descendant(at path: [String], key: Bool = false) -> YAMLNode? {
        var node = self
        for (index, component) in path.enumerated() {
            if let pairs = node.mapping, let pair = pairs.first(where: { $0.key.keyText == component }) {
                node = (key && index == path.count - 1) ? pair.key : pair.value
            } else if let elements = node.sequence, let position = Int(component), elements.indices.contains(position) {
                node = elements[position]
            } else {
                return node
            }
        }
        return node
    }
}

extension JSONSchema {
    /// Violations of `node`'s value as diagnostics at the offending nodes.
    public func diagnostics(for node: YAMLNode, allowTemplates: Bool, context: String) -> [Diagnostic] {
        violations(of: node.json, allowTemplates: allowTemplates).map { violation in
            let target = node.descendant(at: violation.path, key: violation.isAtKey) ?? node
            let parent = (violation.isAtKey ? violation.path.dropLast() : violation.path[...]).joined(separator: ".")
            let message = if parent.isEmpty {
                "\(context): \(violation.message)"
            } else if violation.isAtKey {
                "\(context): \(violation.message) in '\(parent)'"
            } else {
                "\(context): '\(parent)' \(violation.message)"
            }
            return Diagnostic(at: target.location, message)
        }
    }
}
