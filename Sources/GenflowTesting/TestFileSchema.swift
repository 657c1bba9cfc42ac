public import GenflowCore

extension PipelineTestFile {
    /// The JSON Schema of test files, for editors (`genflow schema test`, etc/schema/pipeline-test.schema.json).
    public static var editorSchema: JSON {
        let reply: JSON = [
            "description": "One call's reply: the step's output, a model's text (call_model), or an error class.",
            "type": "object", "additionalProperties": false,
            "properties": [
                "output": ["description": "The step's output, as is."],
                "text": ["type": "string", "description": "A model's reply text (call_model): streamed through the stage."],
                "usage": ["type": "object", "description": "Token usage of a text reply (total_tokens is what tokens.debit takes)."],
                "finish_reason": ["type": "string", "description": "length makes the reply output_invalid, as from a provider."],
                "error": ["type": "string", "enum": .array(ErrorClass.known.map { .string($0.rawValue) })],
                "message": ["type": "string"],
                "retry_after": ["type": "string", "description": "The wait a provider asked for, e.g. 2s."],
            ],
            "oneOf": [["required": ["output"]], ["required": ["text"]], ["required": ["error"]]],
        ]
        let step: JSON = [
            "type": "object", "description": "What to expect of one step; keys starting with / are JSON pointers into its output.",
            "properties": [
                "status": ["type": "string"], "attempts": ["type": "integer", "minimum": 0],
                "delays": ["type": "array", "items": ["type": "string"], "description": "The retry delays the policy computed, e.g. [2s, 4s]."],
                "output": ["description": "A subset of the step's output."],
            ],
            "patternProperties": ["^/": ["description": "A subset of the value at this JSON pointer in the output."]],
            "additionalProperties": false,
        ]
        let expect: JSON = [
            "type": "object", "additionalProperties": false,
            "properties": [
                "status": ["type": "string", "enum": ["completed", "failed", "cancelled"]],
                "error": ["type": "object", "description": "A subset of the job's error {class, message, step}."],
                "steps": ["type": "object", "additionalProperties": step],
                "outputs": ["type": "object", "description": "JSON pointers into the job's result (step id first) → expected subsets.",
                            "patternProperties": ["^/": [:]], "additionalProperties": false],
                "canvas": ["type": "object", "additionalProperties": false, "properties": [
                    "count": ["type": "integer", "minimum": 0], "types": ["type": "array", "items": ["type": "string"]],
                ]],
                "events": ["type": "array", "items": ["type": "string"], "description": "Event types that must appear in this order (others may come between)."],
                "debited": ["type": "integer", "minimum": 0, "description": "Tokens the job debited."],
            ],
        ]
        let testCase: JSON = [
            "type": "object", "additionalProperties": false, "required": ["name", "expect"],
            "properties": [
                "name": ["type": "string"], "input": ["type": "object"], "user": ["type": "string"],
                "balance": ["type": "integer", "minimum": 0, "description": "Tokens the user has when the job starts (default 1000)."],
                "replies": ["type": "object", "description": "Step id → the replies its calls get, in order.",
                            "additionalProperties": ["oneOf": [reply, ["type": "array", "items": reply]]]],
                "replies_from": ["type": "string", "description": "A file `genflow submit --record` wrote; replies given here win."],
                "expect": expect,
            ],
        ]
        return [
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Genflow pipeline test file",
            "type": "object", "additionalProperties": false, "required": ["pipeline", "cases"],
            "properties": [
                "pipeline": ["type": "string", "description": "The pipeline file, relative to this file."],
                "cases": ["type": "array", "minItems": 1, "items": testCase],
            ],
        ]
    }
}
