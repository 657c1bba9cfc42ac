public import GenflowCore
public import GenflowYAML

extension JSONSchema {
    static let keywords = [
        "type", "description", "title", "required", "properties", "additionalProperties", "items", "enum",
        "default", "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems",
    ]

    /// Reads a schema written in YAML (a pipeline's `input:`, a plugin stage's `config:`), reporting
    /// unknown keywords, bad types and defaults that break their own schema through `reader`.
    /// - Parameter impliedType: the type assumed when `type` is absent (`object` at the top of `input:`).
    public static func read(_ node: YAMLNode, _ what: String, impliedType: String? = nil, reader: inout NodeReader) -> JSONSchema? {
        guard let entries = reader.mapping(node, what, allowedKeys: keywords) else { return nil }
        var schema = JSONSchema()
        if let typeNode = entries["type"]?.value {
            let names: [(String, YAMLNode)] = typeNode.sequence != nil
                ? reader.stringList(typeNode, "type") ?? []
                : reader.string(typeNode, "type").map { [($0, typeNode)] } ?? []
            for (name, nameNode) in names {
                if typeNames.contains(name) {
                    schema.types.append(name)
                } else {
                    reader.error(at: nameNode.location, "unknown type '\(name)'\(Suggestions.didYouMean(name, in: typeNames)) (types: \(typeNames.joined(separator: ", ")))")
                }
            }
        } else if let impliedType {
            schema.types = [impliedType]
        }
        if let node = entries["description"]?.value { schema.description = reader.string(node, "description", allowEmpty: true) }
        if let node = entries["title"]?.value { _ = reader.string(node, "title", allowEmpty: true) }
        if let node = entries["properties"]?.value, let pairs = reader.mapping(node, "'properties'", allowedKeys: node.mapping?.compactMap(\.key.keyText) ?? []) {
            for pair in node.mapping ?? [] {
                guard let name = pair.key.keyText, pairs[name] != nil else { continue }
                if let property = read(pair.value, "property '\(name)'", reader: &reader) {
                    schema.properties.append(Property(name, property))
                }
            }
            if schema.types.isEmpty { schema.types = ["object"] }
        }
        if let node = entries["required"]?.value, let names = reader.stringList(node, "required") {
            for (name, nameNode) in names {
                if entries["properties"] != nil && schema.property(name) == nil {
                    reader.error(at: nameNode.location, "required key '\(name)' is not among the properties\(Suggestions.didYouMean(name, in: schema.properties.map(\.name)))")
                }
                schema.required.append(name)
            }
        }
        schema.additionalProperties = entries["additionalProperties"].flatMap { reader.bool($0.value, "additionalProperties") }
            ?? schema.properties.isEmpty
        if let node = entries["items"]?.value { schema.items = read(node, "items", reader: &reader) }
        if let node = entries["enum"]?.value, let values = reader.list(node, "enum") {
            schema.enumValues = values.map(\.json)
        }
        let count = 0...Int(Int32.max)
        if let node = entries["minLength"]?.value { schema.minLength = reader.int(node, "minLength", in: count) }
        if let node = entries["maxLength"]?.value { schema.maxLength = reader.int(node, "maxLength", in: count) }
        if let node = entries["minItems"]?.value { schema.minItems = reader.int(node, "minItems", in: count) }
        if let node = entries["maxItems"]?.value { schema.maxItems = reader.int(node, "maxItems", in: count) }
        let anyNumber = -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude
        if let node = entries["minimum"]?.value { schema.minimum = reader.double(node, "minimum", in: anyNumber) }
        if let node = entries["maximum"]?.value { schema.maximum = reader.double(node, "maximum", in: anyNumber) }
        if let node = entries["default"]?.value {
            schema.defaultValue = node.json
            reader.append(schema.diagnostics(for: node, allowTemplates: false, context: "default of \(what)"))
        }
        return schema
    }

    /// The schema as a JSON Schema document (for editors and `genflow stages --json`).
    public var json: JSON {
        var members: [String: JSON] = [:]
        if types.count == 1 { members["type"] = .string(types[0]) }
        if types.count > 1 { members["type"] = .array(types.map(JSON.string)) }
        if let description { members["description"] = .string(description) }
        if !properties.isEmpty {
            members["properties"] = .object(Dictionary(uniqueKeysWithValues: properties.map { ($0.name, $0.schema.json) }))
        }
        if !required.isEmpty { members["required"] = .array(required.map(JSON.string)) }
        if types.contains("object") && !additionalProperties { members["additionalProperties"] = false }
        if let items { members["items"] = items.json }
        if let enumValues { members["enum"] = .array(enumValues) }
        if let defaultValue { members["default"] = defaultValue }
        if let minLength { members["minLength"] = .int(minLength) }
        if let maxLength { members["maxLength"] = .int(maxLength) }
        if let minimum { members["minimum"] = Self.number(minimum) }
        if let maximum { members["maximum"] = Self.number(maximum) }
        if let minItems { members["minItems"] = .int(minItems) }
        if let maxItems { members["maxItems"] = .int(maxItems) }
        if format == "duration" { members["pattern"] = .string(DurationText.pattern) }
        return .object(members)
    }

    private static func number(_ value: Double) -> JSON {
        value.rounded() == value && abs(value) < 1e15 ? .int(Int(value)) : .double(value)
    }
}
