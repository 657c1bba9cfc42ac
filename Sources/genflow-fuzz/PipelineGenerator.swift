import GenflowCore
import GenflowPipeline

/// Makes pipelines shaped like the real ones from the registry's stages and their config schemas:
/// with `faultRate` 0 they should load; as it grows, wrong values, unknown keys, misspelt stages
/// and bad references appear.
struct PipelineGenerator {
    let stages: [StageDescriptor]
    /// Keys for arbitrary mappings, known and unknown.
    let keys: [String]
    /// Odd values (wrong types, huge numbers) put where a fault is wanted.
    let oddValues: [String]
    /// Multiplies every fault's probability: 0 for clean pipelines, 1 for faulty ones.
    var faultRate: Double

    func makePipeline(using rng: inout SplitMix64) -> Tree {
        var top: [(key: String, value: Tree)] = []
        if !fault(0.05, &rng) {
            top.append(("name", .scalar(Tree.yamlString(fault(0.1, &rng) ? rng.pick(["Bad Name", "1st", "", "é", "a/b", "-x"]) : makeWord(using: &rng)))))
        }
        if rng.chance(0.4) { top.append(("description", .scalar(Tree.yamlString(makeText(using: &rng))))) }
        var inputs: [String] = []
        if rng.chance(0.7) {
            inputs = Array(Set((0..<rng.below(5)).map { _ in makeWord(using: &rng) })).sorted()
            top.append(("input", makeInputSchema(inputs, using: &rng)))
        }
        if rng.chance(0.4) { top.append(("defaults", .map(makeRetryEntries(using: &rng)))) }
        var ids: [String] = []
        var steps: [Tree] = []
        for index in 0..<(fault(0.05, &rng) ? 0 : rng.size(upTo: 10)) {
            let id = fault(0.07, &rng) ? rng.pick(["step0", "1bad", "has space", "", "é"]) : "step\(index)"
            steps.append(makeStep(id: id, earlier: ids, inputs: inputs, using: &rng))
            ids.append(id)
        }
        top.append(("steps", .list(steps)))
        if fault(0.1, &rng) { top.append((rng.pick(keys), makeTree(depth: 2, using: &rng))) }
        if rng.chance(0.1) { top.shuffle(using: &rng) }
        return .map(top)
    }

    /// Any YAML: mappings, lists and scalars (with anchors, aliases and tags), up to `depth` levels deep.
    func makeTree(depth: Int, using rng: inout SplitMix64) -> Tree {
        guard depth > 0, rng.chance(0.7) else { return makeScalar(using: &rng) }
        if rng.chance(0.5) {
            return .list((0..<rng.below(5)).map { _ in makeTree(depth: depth - 1, using: &rng) })
        }
        var pairs: [(key: String, value: Tree)] = []
        for _ in 0..<rng.below(5) { pairs.append((rng.pick(keys), makeTree(depth: depth - 1, using: &rng))) }
        return .map(pairs)
    }

    /// True with probability `probability` scaled by the fault rate.
    private func fault(_ probability: Double, _ rng: inout SplitMix64) -> Bool {
        rng.chance(probability * faultRate)
    }

    private func makeInputSchema(_ names: [String], using rng: inout SplitMix64) -> Tree {
        var properties: [(key: String, value: Tree)] = []
        for name in names {
            let type = fault(0.1, &rng) ? rng.pick(["strin", "object", "5"]) : rng.pick(["string", "string", "integer", "number", "boolean", "array"])
            var property: [(key: String, value: Tree)] = [("type", .scalar(type))]
            switch type {
            case "string":
                if rng.chance(0.3) { property.append(("default", .scalar(rng.pick(["modern", "\"a b\"", "x"])))) }
                if rng.chance(0.3) { property += [("minLength", .scalar("1")), ("maxLength", .scalar("4000"))] }
                if rng.chance(0.15) { property.append(("enum", .list([.scalar("modern"), .scalar("x"), .scalar("\"a b\"")]))) }
            case "integer", "number":
                if rng.chance(0.3) { property += [("minimum", .scalar("1")), ("maximum", .scalar("4"))] }
                if rng.chance(0.3) { property.append(("default", .scalar("2"))) }
            default:
                break
            }
            if fault(0.2, &rng) {
                property.append((rng.pick(["default", "minLength", "maximum", "enum", "items", "required"]), .scalar(rng.pick(oddValues))))
            }
            properties.append((name, .map(property)))
        }
        var schema: [(key: String, value: Tree)] = []
        if rng.chance(0.2) { schema.append(("type", .scalar(fault(0.5, &rng) ? rng.pick(["string", "array"]) : "object"))) }
        if !names.isEmpty, rng.chance(0.5) { schema.append(("required", .list([.scalar(fault(0.3, &rng) ? "missing" : rng.pick(names))]))) }
        schema.append(("properties", .map(properties)))
        if rng.chance(0.1) { schema.append(("additionalProperties", .scalar(fault(0.3, &rng) ? "3" : rng.pick(["true", "false"])))) }
        return .map(schema)
    }

    private func makeStep(id: String, earlier: [String], inputs: [String], using rng: inout SplitMix64) -> Tree {
        var entries: [(key: String, value: Tree)] = []
        if !fault(0.03, &rng) { entries.append(("id", .scalar(Tree.yamlString(id)))) }
        let stage = rng.pick(stages)
        if !fault(0.03, &rng) {
            entries.append(("stage", .scalar(fault(0.05, &rng) ? rng.pick([stage.name + "s", "call-model", "unknown", "5"]) : stage.name)))
        }
        if rng.chance(0.9) {
            var with: [(key: String, value: Tree)] = []
            for property in stage.config.properties where stage.config.required.contains(property.name) || rng.chance(0.5) {
                with.append((property.name, makeValue(for: property.schema, earlier: earlier, inputs: inputs, depth: 2, using: &rng)))
            }
            if fault(0.05, &rng) { with.append((rng.pick(keys), makeScalar(using: &rng))) }
            entries.append(("with", .map(with)))
        }
        if rng.chance(0.25) { entries += makeRetryEntries(using: &rng) }
        if rng.chance(0.1), !earlier.isEmpty || faultRate > 0 {
            let target = earlier.isEmpty || fault(0.3, &rng) ? rng.pick([id, "later", "nope"]) : rng.pick(earlier)
            entries.append(("on_invalid", .map([("retry_step", .scalar(Tree.yamlString(target))), ("max", .scalar(fault(0.3, &rng) ? rng.pick(["0", "100", "x"]) : "2"))])))
        }
        if fault(0.03, &rng) { entries.append(("description", makeTree(depth: 1, using: &rng))) }
        return .map(entries)
    }

    /// `retry:`, `timeout:` and `deadline:` entries.
    private func makeRetryEntries(using rng: inout SplitMix64) -> [(key: String, value: Tree)] {
        var retry: [(key: String, value: Tree)] = []
        if rng.chance(0.6) { retry.append(("max_attempts", .scalar(fault(0.2, &rng) ? rng.pick(["0", "-1", "1000000", "2.5", "x"]) : rng.pick(["1", "3", "5"])))) }
        if rng.chance(0.5) { retry.append(("initial_interval", makeDuration(from: ["500ms", "1s", "2s"], using: &rng))) }
        if rng.chance(0.5) { retry.append(("max_interval", makeDuration(from: ["30s", "1m", "1h"], using: &rng))) }
        if rng.chance(0.4) { retry.append(("backoff", .scalar(fault(0.2, &rng) ? rng.pick(["0.5", "100", ".nan", ".inf", "-1", "two"]) : rng.pick(["2.0", "1", "1.5"])))) }
        if rng.chance(0.4) { retry.append(("jitter", .scalar(fault(0.2, &rng) ? rng.pick(["1.5", "-0.1", ".nan"]) : rng.pick(["0.2", "0", "1"])))) }
        if rng.chance(0.3) {
            retry.append(("non_retryable", .list((0..<rng.below(3)).map { _ in
                .scalar(fault(0.2, &rng) ? rng.pick(["authh", "5", "\"\""]) : rng.pick(["auth", "invalid_request", "timeout"]))
            })))
        }
        var entries: [(key: String, value: Tree)] = [("retry", .map(retry))]
        if rng.chance(0.5) { entries.append(("timeout", makeDuration(from: ["30s", "2m", "1m30s"], using: &rng))) }
        if rng.chance(0.3) { entries.append(("deadline", makeDuration(from: ["5m", "1h", "1.5h"], using: &rng))) }
        return entries
    }

    /// One of `valid`, or as a fault a malformed or out-of-range duration.
    private func makeDuration(from valid: [String], using rng: inout SplitMix64) -> Tree {
        .scalar(fault(0.2, &rng) ? rng.pick(["0s", "30", "-1s", "1e3s", "99999999999d", "1.2.3s", "s", "1 s", "5x", "2S", "\"10s\"", "[1s]"]) : rng.pick(valid))
    }

    /// A value for a config property of type `schema`; strings are often templates.
    private func makeValue(for schema: JSONSchema, earlier: [String], inputs: [String], depth: Int, using rng: inout SplitMix64) -> Tree {
        if fault(0.08, &rng) { return .scalar(rng.pick(oddValues)) }
        if let choices = schema.enumValues, !choices.isEmpty {
            let choice = rng.pick(choices)
            return .scalar(choice.stringValue.map(Tree.yamlString) ?? choice.description)
        }
        switch schema.types.first {
        case "string" where schema.format == "duration":
            return makeDuration(from: ["1h", "10m"], using: &rng)
        case "string":
            return .scalar(Tree.yamlString(rng.chance(0.4) ? makeTemplate(earlier: earlier, inputs: inputs, using: &rng) : makeText(using: &rng)))
        case "integer":
            let low = Int(schema.minimum ?? 0), high = max(low, Int(min(schema.maximum ?? 200, 1e9)))
            return .scalar(String(Int.random(in: low...high, using: &rng)))
        case "number":
            return .scalar(String(Double.random(in: (schema.minimum ?? 0)...(schema.maximum ?? 10), using: &rng)))
        case "boolean":
            return .scalar(rng.pick(["true", "false"]))
        case "object" where depth > 0:
            guard !schema.properties.isEmpty else { return .map([(makeWord(using: &rng), .scalar(Tree.yamlString(makeText(using: &rng))))]) }
            return .map(schema.properties.filter { schema.required.contains($0.name) || rng.chance(0.7) }.map {
                ($0.name, makeValue(for: $0.schema, earlier: earlier, inputs: inputs, depth: depth - 1, using: &rng))
            })
        case "array" where depth > 0:
            let item = schema.items ?? JSONSchema()
            return .list((0..<rng.below(4)).map { _ in makeValue(for: item, earlier: earlier, inputs: inputs, depth: depth - 1, using: &rng) })
        default:
            return .scalar(Tree.yamlString(makeTemplate(earlier: earlier, inputs: inputs, using: &rng)))
        }
    }

    /// Mustache text: references to declared inputs, earlier steps and the job, sections and
    /// comments; as faults, references that go nowhere and malformed tags.
    private func makeTemplate(earlier: [String], inputs: [String], using rng: inout SplitMix64) -> String {
        var text = ""
        for _ in 0..<rng.size(upTo: 4) {
            var pieces = ["Draw: ", " and ", "{{job.id}}", "{{job.user_id}}", "{{! a comment }}"]
            if let input = inputs.isEmpty ? nil : rng.pick(inputs) {
                pieces += ["{{input.\(input)}}", "{{ input.\(input) }}", "{{{input.\(input)}}}", "{{#input.\(input)}}{{.}}, {{/input.\(input)}}", "{{^input.\(input)}}none{{/input.\(input)}}"]
            }
            if let step = earlier.isEmpty ? nil : rng.pick(earlier) {
                pieces += ["{{steps.\(step).output.text}}", "{{steps.\(step).output}}"]
            }
            if fault(0.3, &rng) {
                pieces = [
                    "{{input.\(makeWord(using: &rng))}}", "{{steps.later.output}}", "{{steps.\(earlier.last ?? "x")}}", "{{job.nope}}", "{{.}}", "{{steps}}",
                    "{{env.HOME}}", "{{> partial}}", "{{=<% %>=}}", "{{input.x", "{{#input.a}}{{/input.b}}", "{{ uppercased(input.x) }}", "{{unknown.ref}}",
                    "{{}}", "{", "}}",
                ]
            }
            text += rng.pick(pieces)
        }
        return text
    }

    private func makeScalar(using rng: inout SplitMix64) -> Tree {
        switch rng.below(4) {
        case 0: .scalar(Tree.yamlString(makeText(using: &rng)))
        case 1: .scalar(rng.pick(oddValues))
        case 2: .scalar(rng.pick(["&a x", "*a", "&b [1, 2]", "*b", "!!str 5", "!!int x", "!!float 1", "!!bool yes", "!!null ''", "!!binary aGVsbG8=", "!custom v", "? k"]))
        default: .scalar(String(rng.below(1_000)))
        }
    }

    /// A lowercase name, valid for pipelines, inputs and keys.
    private func makeWord(using rng: inout SplitMix64) -> String {
        rng.pick(["canvas", "prompt", "style", "instructions", "n", "items", "x", "image", "a", "b", "long_name", "dataset_id"])
            + (rng.chance(0.3) ? String(rng.below(10)) : "")
    }

    private func makeText(using rng: inout SplitMix64) -> String {
        rng.pick(["Hello", "Draw a house", "line one\nline two", "tab\there", "quote \" and \\", "émoji 🎨", "#hash", "a: b", "- item", "null", "${HOME}", "$$5"])
    }
}
