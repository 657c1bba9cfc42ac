import Foundation
import Testing

/// A valid pipeline; each test breaks one thing in it.
private let valid = """
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
        timeout: 30s
      - id: done
        stage: notify
        with: {event: finished, data: {text: "{{steps.generate.output.text}}"}}
    """

@Suite("genflow validate", .timeLimit(.minutes(3)))
struct ValidateCommandTests {
    @Test("the shipped pipelines and config validate: exit 0")
    func shipped() async throws {
        let result = try await genflow("validate", "pipelines/")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr == "")
        #expect(result.stdoutLines.contains { $0.hasPrefix("ok  canvas-generation  version ") })
        #expect(result.stdoutLines.contains { $0.hasPrefix("ok  image-generation  version ") })
        #expect(result.stdoutLines.contains { $0.hasPrefix("ok  claude-canvas-generation  version ") }, "its plugin stages are known")
        #expect(result.stdoutLines.contains { $0.hasPrefix("ok  illustrated-canvas  version ") && $0.contains("10 steps in 8 levels") })
        let defaults = try await genflow("validate")
        #expect(defaults.status == 0, "\(defaults.stderr)")
        #expect(defaults.stdoutLines.last == "checked 4 pipeline files, 2 plugins and etc/genflow.yaml: no errors")
    }

    /// Each broken variant and the exact first line `genflow validate` must print for it.
    static let cases: [(name: String, yaml: String, line: String)] = [
        ("syntax", valid.replacingOccurrences(of: "    stage: call_model", with: "   stage: call_model"),
         "11:4: error: did not find expected '-' indicator while parsing a block collection (started at line 7, column 3)"),
        ("duplicate-key", valid.replacingOccurrences(of: "    timeout: 30s", with: "    timeout: 30s\n    timeout: 40s"),
         "14:5: error: duplicate key 'timeout' (first defined at line 13, column 5)"),
        ("unknown-key", valid.replacingOccurrences(of: "    timeout: 30s", with: "    timout: 30s"),
         "13:5: error: unknown key 'timout' in a step; did you mean 'timeout'?"),
        ("unknown-stage", valid.replacingOccurrences(of: "stage: notify", with: "stage: notfy"),
         "15:12: error: unknown stage 'notfy'; did you mean 'notify'? (`genflow stages` lists them)"),
        ("unknown-step-reference", valid.replacingOccurrences(of: "{{steps.generate.output.text}}", with: "{{steps.nope.output}}"),
         "16:43: error: unknown step 'nope' in '{{steps.nope.output}}' (upstream of this step: prompt, generate)"),
        ("later-step-reference", valid.replacingOccurrences(of: "\"Draw {{input.instructions}}\"", with: "\"{{steps.done.output}}\""),
         "9:23: error: '{{steps.done.output}}': step 'done' runs after this step (it needs this one); only upstream steps' outputs are available"),
        ("bad-duration", valid.replacingOccurrences(of: "timeout: 30s", with: "timeout: 30 secs"),
         "13:14: error: 'timeout' must be a duration such as 500ms, 2s, 1m30s or 1h, not '30 secs'"),
        ("schema", valid.replacingOccurrences(of: "output: canvas_objects", with: "output: canvas_objects, stream: maybe"),
         "12:54: error: 'with' of step 'generate': 'stream' must be a boolean, not the string \"maybe\""),
        ("retry-range", valid.replacingOccurrences(of: "    timeout: 30s", with: "    retry: {max_attempts: 1000}"),
         "13:27: error: 'max_attempts' must be between 1 and 100, not 1000"),
    ]

    @Test("each kind of error: exit 1 and a line `path:line:col: error:` at the right place", arguments: cases.indices)
    func errorKinds(index: Int) async throws {
        let testCase = Self.cases[index]
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let file = try directory.write("\(testCase.name).yaml", testCase.yaml)
        let result = try await genflow("validate", file)
        #expect(result.status == 1, "\(testCase.name): \(result.stderr)")
        #expect(result.stderrLines.first == "\(file):\(testCase.line)", "\(testCase.name)")
        // The snippet under the error shows the offending line with a caret.
        #expect(result.stderrLines.dropFirst().contains { $0.contains("^") }, "\(testCase.name)")
        #expect(result.stdoutLines.last == "1 error (checked 1 pipeline file, 2 plugins and etc/genflow.yaml)", "\(testCase.name): \(result.stdout)")
    }

    @Test("--graph prints each pipeline's steps as DOT; a cycle in needs is an error with its path")
    func graph() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let branching = valid.replacingOccurrences(of: "  - id: done\n", with: "  - id: done\n    needs: [prompt]\n")
            .replacingOccurrences(of: "{{steps.generate.output.text}}", with: "{{steps.prompt.output}}")
        let file = try directory.write("branching.yaml", branching)
        let result = try await genflow("validate", "--graph", file)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdoutLines.first == "digraph \"demo\" {")
        #expect(result.stdoutLines.contains("  \"prompt\" -> \"generate\";"))
        #expect(result.stdoutLines.contains("  \"prompt\" -> \"done\";"))
        #expect(result.stdoutLines.contains("  \"generate\" [label=\"generate\\ncall_model\"];"))
        #expect(try await genflow("validate", file).stdoutLines.first?.contains("3 steps in 2 levels") == true)

        let cyclic = try directory.write("cyclic.yaml", branching.replacingOccurrences(of: "    stage: prepare_instructions\n", with: "    stage: prepare_instructions\n    needs: [done]\n"))
        let refused = try await genflow("validate", "--brief", "--graph", cyclic)
        #expect(refused.status == 1)
        #expect(refused.stderrLines == ["\(cyclic):9:12: error: the steps' needs form a cycle: prompt needs done needs prompt; no step of it could ever run"])
        #expect(refused.stdout.contains("digraph") == false)
    }

    @Test("--brief prints exactly one line per error; every error in a file is reported")
    func brief() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let broken = valid
            .replacingOccurrences(of: "stage: notify", with: "stage: notfy")
            .replacingOccurrences(of: "timeout: 30s", with: "timeout: forever")
            .replacingOccurrences(of: "{{input.instructions}}", with: "{{input.instruction}}")
        let file = try directory.write("broken.yaml", broken)
        let good = try directory.write("good.yaml", valid.replacingOccurrences(of: "name: demo", with: "name: good"))
        let result = try await genflow("validate", "--brief", directory.path)
        #expect(result.status == 1)
        #expect(result.stderrLines == [
            "\(file):9:28: error: unknown input 'instruction' in '{{input.instruction}}'; did you mean 'instructions'? (inputs: instructions)",
            "\(file):13:14: error: 'timeout' must be a duration such as 500ms, 2s, 1m30s or 1h, not 'forever'",
            "\(file):15:12: error: unknown stage 'notfy'; did you mean 'notify'? (`genflow stages` lists them)",
        ])
        #expect(!result.stderr.contains(good))
    }

    @Test("a missing file, a missing --config and a broken config are errors too")
    func missingFiles() async throws {
        let missing = try await genflow("validate", "/nonexistent/pipeline.yaml")
        #expect(missing.status == 1)
        #expect(missing.stderrLines.first == "/nonexistent/pipeline.yaml:1:1: error: cannot read file: no such file")

        let noConfig = try await genflow("validate", "--config", "/nonexistent/genflow.yaml", "pipelines/")
        #expect(noConfig.status == 1)
        #expect(noConfig.stderrLines.first == "/nonexistent/genflow.yaml:1:1: error: config file not found")

        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let config = try directory.write("genflow.yaml", "workers: lots\n")
        let broken = try await genflow("validate", "--config", config, "pipelines/")
        #expect(broken.status == 1)
        #expect(broken.stderrLines.first == "\(config):1:10: error: 'workers' must be an integer between 1 and 100000, not 'lots'")
    }

    @Test("a missing pipelines_dir is an error; a plugin manifest is skipped with a note")
    func missingDirectory() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let config = try directory.write("genflow.yaml", "pipelines_dir: \(directory.path)/nope\n")
        let result = try await genflow("validate", "--config", config)
        #expect(result.status == 1)
        #expect(result.stderrLines.first == "\(config):1:1: error: pipelines directory '\(directory.path)/nope' (pipelines_dir) does not exist")
        let manifest = try directory.write("plugin.yaml", "name: x\n")
        let skipped = try await genflow("validate", manifest)
        #expect(skipped.stderr.contains("not a pipeline file"))
    }

    @Test("call_model's provider must be one the config defines")
    func providers() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let config = try directory.write("genflow.yaml", "providers:\n  fast: {kind: offline, delay: 0ms}\n")
        let file = try directory.write("p.yaml", valid.replacingOccurrences(of: "{model: m,", with: "{provider: fast, model: m,"))
        #expect(try await genflow("validate", "--config", config, file).status == 0)
        let other = try await genflow("validate", "--config", "etc/genflow.yaml", file)
        #expect(other.status == 1)
        #expect(other.stderrLines.first == "\(file):12:22: error: 'with' of step 'generate': 'provider' must be one of \"default\", \"offline\", not \"fast\"")
    }
}

@Suite("genflow stages", .timeLimit(.minutes(3)))
struct StagesCommandTests {
    static let builtins = [
        "prepare_instructions", "call_model", "parse_canvas_objects", "persist.canvas", "persist.image", "notify",
        "tokens.require", "tokens.debit", "http.request",
    ]

    /// What `genflow stages` lists from the repository: the built-ins and the shipped plugins' stages.
    static let listed = builtins + ["anthropic.messages", "moderation.check"]

    @Test("lists every built-in stage of SPEC §6 and the shipped plugins' stages with their config fields")
    func listing() async throws {
        let result = try await genflow("stages")
        #expect(result.status == 0, "\(result.stderr)")
        let headers = result.stdoutLines.filter { !$0.hasPrefix(" ") }.map { $0.components(separatedBy: "  ").first ?? "" }
        #expect(Set(headers) == Set(Self.listed))
        #expect(result.stdout.contains("moderation.check  (plugin moderation)"))
        #expect(result.stdout.contains("    minimum  integer ≥ 0, required — Smallest balance that lets the job go on."))
        #expect(result.stdout.contains("    amount  integer|array of integer ≥ 0, required"))
        #expect(result.stdout.contains("    template  string, required"))
    }

    @Test("--json gives each stage's config as JSON Schema")
    func json() async throws {
        let result = try await genflow("stages", "--json")
        #expect(result.status == 0)
        let stages = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        #expect(Set(stages.compactMap { $0["name"] as? String }) == Set(Self.listed))
        let debit = try #require(stages.first { $0["name"] as? String == "tokens.debit" })
        let config = try #require(debit["config"] as? [String: Any])
        #expect(config["required"] as? [String] == ["amount", "reason"])
        #expect(config["additionalProperties"] as? Bool == false)
    }
}
