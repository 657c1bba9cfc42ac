public import GenflowCore

/// JSON Schema documents (draft-07, what YAML language servers read) so editors check pipeline
/// files as they are typed. Generated from the same tables validation uses, so they cannot drift:
/// `genflow schema pipeline > etc/schema/pipeline.schema.json`.
public enum EditorSchema {
    /// The schema of a pipeline file, with each stage's `with:` checked against that stage's config.
    public static func pipeline(registry: StageRegistry) -> JSON {
        let stageRules: [JSON] = registry.descriptors.map { descriptor in
            var then: [String: JSON] = ["properties": ["with": acceptingTemplates(descriptor.config.json)]]
            if !descriptor.config.required.isEmpty { then["required"] = ["with"] }
            return ["if": ["properties": ["stage": ["const": .string(descriptor.name)]], "required": ["stage"]], "then": .object(then)]
        }
        let duration: JSON = ["$ref": "#/definitions/duration"]
        return [
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Genflow pipeline",
            "description": "A pipeline file of pipelines/: input schema, retry defaults and steps.",
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "steps"],
            "properties": [
                "name": ["type": "string", "pattern": "^[a-z][a-z0-9._-]*$", "description": "Unique pipeline name, used to submit jobs."],
                "description": ["type": "string"],
                "input": ["$ref": "#/definitions/schema", "description": "JSON Schema subset for job input (type object implied)."],
                "defaults": [
                    "type": "object", "additionalProperties": false,
                    "properties": ["retry": ["$ref": "#/definitions/retry"], "timeout": duration, "deadline": duration],
                ],
                "steps": ["type": "array", "minItems": 1, "items": ["$ref": "#/definitions/step"]],
            ],
            "definitions": [
                "duration": [
                    "type": "string", "pattern": .string(DurationText.pattern),
                    "description": "A duration such as 500ms, 2s, 1m30s or 1h.",
                ],
                "reference": [
                    "type": "string", "pattern": "^\\s*\\{\\{\\{?[^{}]+\\}?\\}\\}\\s*$",
                    "description": "Exactly one {{reference}}: keeps the referenced value's JSON type.",
                ],
                "retry": retry,
                "schema": inputSchema,
                "typeName": ["enum": .array(JSONSchema.typeNames.map(JSON.string))],
                "step": [
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["id", "stage"],
                    "properties": [
                        "id": ["type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$"],
                        "stage": ["type": "string", "description": "A registered stage (`genflow stages`).", "enum": .array(registry.names.map(JSON.string))],
                        "description": ["type": "string"],
                        "needs": [
                            "description": "Steps that must complete before this one runs (default: the step written above it).",
                            "anyOf": [["type": "string"], ["type": "array", "items": ["type": "string"], "uniqueItems": true]],
                        ],
                        "for_each": [
                            "description": "Run the step once per item of a list (or 0..<n for a number): {{item}} and {{index}} in its settings.",
                            "anyOf": [["type": "array"], ["type": "integer", "minimum": 0], ["$ref": "#/definitions/reference"]],
                        ],
                        "max_parallel": [
                            "type": "integer", "minimum": .int(ForEach.maxParallelRange.lowerBound), "maximum": .int(ForEach.maxParallelRange.upperBound),
                            "default": .int(ForEach.defaultMaxParallel), "description": "With for_each: most items running at once.",
                        ],
                        "continue_on_error": [
                            "type": "boolean", "default": false,
                            "description": "When the step fails for good, its output carries the error and the steps that need it still run.",
                        ],
                        "with": ["type": "object"],
                        "retry": ["$ref": "#/definitions/retry"],
                        "timeout": duration,
                        "deadline": duration,
                        "on_invalid": [
                            "type": "object", "additionalProperties": false, "required": ["retry_step"],
                            "properties": [
                                "retry_step": ["type": "string", "description": "An earlier step to run again with the validation errors."],
                                "max": ["type": "integer", "minimum": .int(OnInvalid.maxRange.lowerBound), "maximum": .int(OnInvalid.maxRange.upperBound), "default": 1],
                            ],
                        ],
                    ],
                    "allOf": .array(stageRules),
                ],
            ],
        ]
    }

    private static let retry: JSON = [
        "type": "object",
        "additionalProperties": false,
        "properties": [
            "max_attempts": ["type": "integer", "minimum": .int(RetryPolicy.Limits.maxAttempts.lowerBound), "maximum": .int(RetryPolicy.Limits.maxAttempts.upperBound)],
            "initial_interval": ["$ref": "#/definitions/duration"],
            "backoff": ["type": "number", "minimum": .double(RetryPolicy.Limits.backoff.lowerBound), "maximum": .double(RetryPolicy.Limits.backoff.upperBound)],
            "max_interval": ["$ref": "#/definitions/duration"],
            "jitter": ["type": "number", "minimum": .double(RetryPolicy.Limits.jitter.lowerBound), "maximum": .double(RetryPolicy.Limits.jitter.upperBound)],
            "non_retryable": ["type": "array", "items": ["enum": .array(ErrorClass.known.map { .string($0.rawValue) })]],
        ],
    ]

    private static let inputSchema: JSON = [
        "type": "object",
        "additionalProperties": false,
        "properties": [
            "type": ["anyOf": [["$ref": "#/definitions/typeName"], ["type": "array", "items": ["$ref": "#/definitions/typeName"]]]],
            "title": ["type": "string"],
            "description": ["type": "string"],
            "required": ["type": "array", "items": ["type": "string"]],
            "properties": ["type": "object", "additionalProperties": ["$ref": "#/definitions/schema"]],
            "additionalProperties": ["type": "boolean"],
            "items": ["$ref": "#/definitions/schema"],
            "enum": ["type": "array"],
            "default": [:],
            "minLength": ["type": "integer", "minimum": 0],
            "maxLength": ["type": "integer", "minimum": 0],
            "minimum": ["type": "number"],
            "maximum": ["type": "number"],
            "minItems": ["type": "integer", "minimum": 0],
            "maxItems": ["type": "integer", "minimum": 0],
        ],
    ]

    /// `schema`, where any value may also be a single `{{reference}}` (checked after rendering), as
    /// pipeline validation allows.
    static func acceptingTemplates(_ schema: JSON) -> JSON {
        guard case .object(var members) = schema else { return schema }
        if case .object(let properties)? = members["properties"] {
            members["properties"] = .object(properties.mapValues(acceptingTemplates))
        }
        if let items = members["items"] { members["items"] = acceptingTemplates(items) }
        let isPlainString = members["type"] == "string" && members["enum"] == nil
        guard members["type"] != nil || members["enum"] != nil, !isPlainString else { return .object(members) }
        return ["anyOf": [.object(members), ["$ref": "#/definitions/reference"]]]
    }
}

extension JSON {
    /// Indented JSON text with sorted keys, for files people read and diff.
    public var prettyPrinted: String {
        var output = ""
        writePretty(to: &output, indent: "")
        return output + "\n"
    }

    private func writePretty(to output: inout String, indent: String) {
        let inner = indent + "  "
        switch self {
        case .array(let elements) where !elements.isEmpty:
            if elements.allSatisfy({ if case .array = $0 { return false }; if case .object = $0 { return false }; return true }) {
                output += description
                return
            }
            output += "[\n"
            for (index, element) in elements.enumerated() {
                output += inner
                element.writePretty(to: &output, indent: inner)
                output += index == elements.count - 1 ? "\n" : ",\n"
            }
            output += indent + "]"
        case .object(let members) where !members.isEmpty:
            output += "{\n"
            for (index, key) in members.keys.sorted().enumerated() {
                output += inner + JSON.string(key).description + ": "
                members[key]!.writePretty(to: &output, indent: inner)
                output += index == members.count - 1 ? "\n" : ",\n"
            }
            output += indent + "}"
        default:
            output += description
        }
    }
}
