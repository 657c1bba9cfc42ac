import GenflowConfig
import GenflowCore
import GenflowPipeline
import GenflowStages
import Testing

/// A loader with the built-in stages and two providers, as a daemon with a default config has.
let loader = PipelineLoader(registry: BuiltinStages.makeRegistry(providers: ["default": ProviderConfig.offline(), "offline": ProviderConfig.offline()]))

/// The diagnostics of loading `yaml`, one-line form; empty when it loads.
func diagnostics(_ yaml: String) -> [String] {
    do {
        _ = try loader.load(source: yaml, file: "p.yaml")
        return []
    } catch {
        return error.diagnostics.map(\.description)
    }
}

/// A valid two-step pipeline to break in tests.
let base = """
    name: demo
    input:
      required: [instructions]
      properties:
        instructions: {type: string}
    steps:
      - id: prompt
        stage: prepare_instructions
        with: {template: "Draw {{input.instructions}}"}
      - id: generate
        stage: call_model
        with: {model: m, output: canvas_objects}
    """

@Suite("Pipeline validation")
struct PipelineValidationTests {
    @Test("the shipped pipelines load")
    func shipped() throws {
        for file in ["pipelines/canvas-generation.yaml", "pipelines/image-generation.yaml"] {
            let pipeline = try loader.load(file: file)
            #expect(!pipeline.steps.isEmpty)
            #expect(pipeline.version.count == 64)
        }
        let canvas = try loader.load(file: "pipelines/canvas-generation.yaml")
        #expect(canvas.steps.map(\.id) == ["balance", "prompt", "record", "generate", "objects", "save", "done", "debit"])
        #expect(canvas.step("generate")?.retry.maxAttempts == 5)
        #expect(canvas.step("generate")?.retry.timeout == .seconds(120))
        #expect(canvas.step("generate")?.retry.nonRetryable == [.invalidRequest, .auth])
        #expect(canvas.step("prompt")?.retry.maxAttempts == 3)
        #expect(canvas.step("prompt")?.retry.timeout == .seconds(60))
        #expect(canvas.step("objects")?.onInvalid == OnInvalid(retryStep: "generate", max: 1))
        #expect(canvas.input.property("style")?.defaultValue == "modern")
    }

    @Test("a valid pipeline has no diagnostics")
    func valid() {
        #expect(diagnostics(base) == [])
    }

    @Test("YAML syntax error")
    func syntax() {
        #expect(diagnostics("name: x\nsteps:\n  - id: a\n   stage: notify\n") == [
            "p.yaml:4:4: error: did not find expected '-' indicator while parsing a block collection (started at line 3, column 3)",
        ])
    }

    @Test("duplicate key")
    func duplicateKey() {
        #expect(diagnostics(base.replacingOccurrences(of: "    with: {model: m", with: "    stage: notify\n    with: {model: m")) == [
            "p.yaml:12:5: error: duplicate key 'stage' (first defined at line 11, column 5)",
        ])
    }

    @Test("unknown keys, with a did-you-mean, at every level")
    func unknownKeys() {
        let yaml = base
            .replacingOccurrences(of: "name: demo", with: "name: demo\ndescripton: x")
            .replacingOccurrences(of: "with: {model: m,", with: "retry: {max_atempts: 2}\n    with: {modle: m, model: m,")
        #expect(diagnostics(yaml) == [
            "p.yaml:2:1: error: unknown key 'descripton' in a pipeline; did you mean 'description'?",
            "p.yaml:13:13: error: unknown key 'max_atempts' in retry; did you mean 'max_attempts'?",
            "p.yaml:14:12: error: 'with' of step 'generate': unknown key 'modle'; did you mean 'model'?",
        ])
    }

    @Test("unknown stage")
    func unknownStage() {
        #expect(diagnostics(base.replacingOccurrences(of: "stage: call_model", with: "stage: call_modle")) == [
            "p.yaml:11:12: error: unknown stage 'call_modle'; did you mean 'call_model'? (`genflow stages` lists them)",
        ])
    }

    @Test("references to unknown steps, later steps, the step itself and unknown inputs")
    func badReferences() {
        let yaml = base.replacingOccurrences(
            of: "with: {template: \"Draw {{input.instructions}}\"}",
            with: "with: {template: \"{{steps.nope.output}} {{steps.generate.output.text}} {{input.instructons}} {{env.HOME}} {{foo}}\"}"
        ) + "\n  - id: self\n    stage: notify\n    with: {event: x, data: {a: \"{{steps.self.output}}\", b: \"{{steps.prompt}}\"}}"
        #expect(diagnostics(yaml) == [
            "p.yaml:9:23: error: unknown step 'nope' in '{{steps.nope.output}}' (no step runs before this one)",
            "p.yaml:9:45: error: '{{steps.generate.output.text}}': step 'generate' runs after this step (it needs this one); only upstream steps' outputs are available",
            "p.yaml:9:76: error: unknown input 'instructons' in '{{input.instructons}}'; did you mean 'instructions'? (inputs: instructions)",
            "p.yaml:9:98: error: '{{env.HOME}}': environment variables are not available to pipelines; secrets belong in the daemon config",
            "p.yaml:9:111: error: unknown reference '{{foo}}' (references start with input., steps.<id>.output or job.)",
            "p.yaml:15:33: error: '{{steps.self.output}}': a step cannot use its own output",
            "p.yaml:15:61: error: '{{steps.prompt}}' must go through the step's output: write '{{steps.prompt.output…}}'",
        ])
    }

    @Test("bad durations")
    func badDurations() {
        let yaml = base.replacingOccurrences(of: "with: {model: m,", with: "timeout: 10 seconds\n    deadline: 0ms\n    with: {model: m,")
        #expect(diagnostics(yaml) == [
            "p.yaml:12:14: error: 'timeout' must be a duration such as 500ms, 2s, 1m30s or 1h, not '10 seconds'",
            "p.yaml:13:15: error: 'deadline' must be between 1ms and 24h, not 0ms",
        ])
    }

    @Test("retry numbers out of range")
    func retryRanges() {
        let yaml = base.replacingOccurrences(
            of: "with: {model: m,",
            with: "retry: {max_attempts: 0, backoff: 0.5, jitter: 1.5, initial_interval: 10s, max_interval: 1s, non_retryable: [timout]}\n    with: {model: m,"
        )
        #expect(diagnostics(yaml) == [
            "p.yaml:12:12: error: max_interval (1s) of step 'generate' is shorter than its initial_interval (10s)",
            "p.yaml:12:27: error: 'max_attempts' must be between 1 and 100, not 0",
            "p.yaml:12:39: error: 'backoff' must be between 1 and 10, not 0.5",
            "p.yaml:12:52: error: 'jitter' must be between 0 and 1, not 1.5",
            "p.yaml:12:114: error: unknown error class 'timout'; did you mean 'timeout'? (classes: timeout, rate_limited, server_error, network, invalid_request, auth, output_invalid, insufficient_tokens, budget_exceeded, cancelled, internal, plugin_crashed)",
        ])
    }

    @Test("a with: that breaks the stage's schema")
    func stageSchema() {
        let yaml = base.replacingOccurrences(of: "with: {model: m, output: canvas_objects}", with: "with: {model: m, output: canvas, stream: \"yes\", temperature: 3, provider: nope}")
        #expect(diagnostics(yaml) == [
            "p.yaml:12:30: error: 'with' of step 'generate': 'output' must be one of \"text\", \"json\", \"canvas_objects\", \"image\", not \"canvas\"",
            "p.yaml:12:46: error: 'with' of step 'generate': 'stream' must be a boolean, not the string \"yes\"",
            "p.yaml:12:66: error: 'with' of step 'generate': 'temperature' must be at most 2, not 3",
            "p.yaml:12:79: error: 'with' of step 'generate': 'provider' must be one of \"default\", \"offline\", not \"nope\"",
        ])
        #expect(diagnostics(base.replacingOccurrences(of: "with: {model: m, output: canvas_objects}", with: "with: {output: text}")) == [
            "p.yaml:12:11: error: 'with' of step 'generate': missing required key 'model'",
        ])
    }

    @Test("duplicate step ids, missing keys, malformed steps")
    func structure() {
        let yaml = base.replacingOccurrences(of: "id: generate", with: "id: prompt") + "\n  - stage: notify\n  - just a string"
        #expect(diagnostics(yaml) == [
            "p.yaml:10:9: error: duplicate step id 'prompt' (first used at line 7, column 9)",
            "p.yaml:13:5: error: a step is missing required key 'id'",
            "p.yaml:13:5: error: 'with' of step 3: missing required key 'event'",
            "p.yaml:14:5: error: a step must be a mapping, not a string",
        ])
        #expect(diagnostics("name: x\nsteps: []\n") == ["p.yaml:2:8: error: a pipeline needs at least one step"])
        #expect(diagnostics("steps: [{id: a, stage: notify, with: {event: e}}]\n") == ["p.yaml:1:1: error: a pipeline is missing required key 'name'"])
    }

    @Test("a template value that is exactly one reference passes a typed field; mixed text does not")
    func templatesInTypedFields() {
        let step = "\n  - id: debit\n    stage: tokens.debit\n    with: {amount: AMOUNT, reason: r}"
        #expect(diagnostics(base + step.replacingOccurrences(of: "AMOUNT", with: "\"{{ steps.generate.output.usage.total_tokens }}\"")) == [])
        #expect(diagnostics(base + step.replacingOccurrences(of: "AMOUNT", with: "\"{{steps.generate.output.usage.total_tokens}} tokens\"")) == [
            "p.yaml:15:20: error: 'with' of step 'debit': 'amount' must be an integer or a list, not text with a template (only a value that is exactly one {{reference}} keeps its type)",
        ])
    }

    @Test("on_invalid must name an earlier step")
    func onInvalid() {
        let parse = "\n  - id: objects\n    stage: parse_canvas_objects\n    with: {text: \"{{steps.generate.output.text}}\"}\n    on_invalid: {retry_step: TARGET, max: 1}"
        #expect(diagnostics(base + parse.replacingOccurrences(of: "TARGET", with: "generate")) == [])
        #expect(diagnostics(base + parse.replacingOccurrences(of: "TARGET", with: "generat")) == [
            "p.yaml:16:30: error: unknown step 'generat' in 'generat'; did you mean 'generate'? (upstream of this step: prompt, generate)",
        ])
        #expect(diagnostics(base + parse.replacingOccurrences(of: "TARGET", with: "objects")) == [
            "p.yaml:16:30: error: on_invalid.retry_step 'objects' is this step; name an earlier step to run again",
        ])
    }

    @Test("an empty with: means no settings; a stage with required settings still says which are missing")
    func emptyWith() {
        #expect(diagnostics(base + "\n  - id: save\n    stage: persist.canvas\n    with:") == [])
        #expect(diagnostics(base + "\n  - id: done\n    stage: notify\n    with:") == [
            "p.yaml:15:10: error: 'with' of step 'done': missing required key 'event'",
        ])
    }

    @Test("an interval mistake in defaults is reported once, at defaults")
    func defaultsIntervals() {
        let yaml = base.replacingOccurrences(of: "steps:", with: "defaults:\n  retry: {initial_interval: 1m, max_interval: 10s}\nsteps:")
        #expect(diagnostics(yaml) == ["p.yaml:7:10: error: max_interval (10s) of defaults is shorter than its initial_interval (1m)"])
    }

    @Test("malformed template tags are errors at their position")
    func malformedTags() {
        let yaml = base.replacingOccurrences(of: "\"Draw {{input.instructions}}\"", with: "\"Draw {{input.instructions\"")
        #expect(diagnostics(yaml) == ["p.yaml:9:28: error: unclosed tag '{{input.instructions' (expected '}}')"])
        let partial = base.replacingOccurrences(of: "\"Draw {{input.instructions}}\"", with: "\"{{> header}}\"")
        #expect(diagnostics(partial) == ["p.yaml:9:23: error: partials ('{{>header}}') are not available in pipeline templates"])
        let pragma = base.replacingOccurrences(of: "\"Draw {{input.instructions}}\"", with: "\"{{% CONTENT_TYPE: HTML}}{{input.instructions}}\"")
        #expect(diagnostics(pragma) == ["p.yaml:9:23: error: pragmas ('{{%CONTENT_TYPE: HTML}}') are not available in pipeline templates"])
    }

    @Test("the input schema is checked: unknown keywords and types, required names, bad defaults")
    func inputSchema() {
        let yaml = """
            name: x
            input:
              required: [promt]
              properties:
                prompt: {type: strng, maxLenght: 4}
                n: {type: integer, minimum: 1, default: 0}
            steps: [{id: a, stage: notify, with: {event: e}}]
            """
        #expect(diagnostics(yaml) == [
            "p.yaml:3:14: error: required key 'promt' is not among the properties; did you mean 'prompt'?",
            "p.yaml:5:20: error: unknown type 'strng'; did you mean 'string'? (types: string, integer, number, boolean, object, array, null)",
            "p.yaml:5:27: error: unknown key 'maxLenght' in property 'prompt'; did you mean 'maxLength'?",
            "p.yaml:6:45: error: default of property 'n': must be at least 1, not 0",
        ])
    }

    @Test("the version is a hash of the canonical form: formatting and comments do not change it")
    func versions() throws {
        let a = try loader.load(source: base, file: "a.yaml")
        let reformatted = "# a comment\n" + base.replacingOccurrences(of: "with: {model: m, output: canvas_objects}", with: "with:\n      output: canvas_objects   # trailing\n      model: m")
        let b = try loader.load(source: reformatted, file: "b.yaml")
        let c = try loader.load(source: base.replacingOccurrences(of: "model: m", with: "model: n"), file: "c.yaml")
        #expect(a.version == b.version)
        #expect(a.version != c.version)
        #expect(a.version.allSatisfy { $0.isHexDigit })
    }

    @Test("two files defining one pipeline name: the second is an error")
    func duplicateNames() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-dup-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try base.write(toFile: directory + "/a.yaml", atomically: true, encoding: .utf8)
        try base.write(toFile: directory + "/b.yaml", atomically: true, encoding: .utf8)
        let (pipelines, failures) = loader.load(directory: directory)
        #expect(pipelines.map(\.file) == [directory + "/a.yaml"])
        #expect(failures.flatMap(\.diagnostics).map(\.description) == ["\(directory)/b.yaml:1:7: error: pipeline 'demo' is already defined in \(directory)/a.yaml:1:7"])
    }
}

import Foundation
