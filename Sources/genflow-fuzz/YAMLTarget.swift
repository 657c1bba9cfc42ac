import Foundation
import GenflowConfig
import GenflowCore
import GenflowPipeline
import GenflowStages
import GenflowYAML

/// The YAML loader and pipeline validation. Each input goes through `YAMLParser.parse(bytes:file:)`,
/// `PipelineLoader.load(source:file:)` (or `load(file:)` when it is not UTF-8) and
/// `DaemonConfig.load(file:)`; a rejection must come with diagnostics that have a message and a
/// position inside the input. "Accepted" counts the inputs that loaded as a pipeline.
struct YAMLTarget: FuzzTarget {
    /// The name diagnostics must carry for text handed over as a string.
    static let fileName = "fuzz.yaml"
    /// The environment `${VAR}` expands from in the daemon config: fixed, so runs are reproducible.
    static let environment = ["HOME": "/home/fuzz", "GENFLOW_FUZZ": "on", "EMPTY": ""]

    let name = "yaml"
    let loader: PipelineLoader
    /// Where the campaign writes each input before it runs: read by the entry points that take a file.
    let inputFile: String
    let seeds: [[UInt8]]
    let mutator: Mutator
    let generator: PipelineGenerator

    /// - Parameter seedFiles: YAML files to start mutating from (the shipped pipelines, the daemon config).
    init(inputFile: String, seedFiles: [String]) {
        let registry = BuiltinStages.makeRegistry(providers: [:], testStages: false)
        loader = PipelineLoader(registry: registry)
        self.inputFile = inputFile
        seeds = seedFiles.compactMap { FileManager.default.contents(atPath: $0).map(Array.init) } + Self.handwrittenSeeds.map { Array($0.utf8) }
        let keys = Self.keys + registry.descriptors.flatMap { $0.config.properties.map(\.name) } + registry.names
        mutator = Mutator(
            tokens: Self.tokens, values: Self.oddValues, keys: keys, nestings: [("[", "]"), ("{a: ", "}"), ("- ", ""), ("[{a: ", "}]"), ("{{#a}}", "{{/a}}")])
        generator = PipelineGenerator(stages: registry.descriptors, keys: keys, oddValues: Self.oddValues, faultRate: 1)
    }

    func input(replaying bytes: [UInt8]) -> [UInt8] { bytes }

    func bytes(of input: [UInt8]) -> [UInt8] { input }

    /// A mutated seed 45% of the time; a generated pipeline (clean, a little or very faulty, mutated
    /// one time in three) 30%; arbitrary YAML 10%; token soup 10%; a pathological document 5%.
    func makeInput(using rng: inout SplitMix64) -> [UInt8] {
        switch rng.below(100) {
        case 0..<45:
            return mutator.mutate(rng.pick(seeds), donors: seeds, using: &rng)
        case 45..<75:
            var generator = generator
            generator.faultRate = rng.pick([0, 0.2, 1])
            let text = Array(generator.makePipeline(using: &rng).yaml(flowChance: rng.pick([0, 0.2, 0.6]), using: &rng).utf8)
            return rng.chance(0.3) ? mutator.mutate(text, donors: seeds, using: &rng) : text
        case 75..<85:
            return Array(generator.makeTree(depth: rng.size(upTo: 6), using: &rng).yaml(flowChance: 0.3, using: &rng).utf8)
        case 85..<95:
            return makeSoup(using: &rng)
        default:
            return makePathological(using: &rng)
        }
    }

    // MARK: Running and checking

    func run(_ input: [UInt8]) -> Verdict {
        var verdict = Verdict()
        let lines = LineCount(input)
        do throws(Diagnostic) {
            let root = try YAMLParser.parse(bytes: input, file: Self.fileName)
            verdict.fingerprint.append("parsed \(root.hashValue)")
        } catch {
            check([error], from: "YAMLParser.parse(bytes:file:)", file: Self.fileName, lines: lines, into: &verdict)
            verdict.fingerprint.append(error.description)
        }

        let text = String(validating: input, as: UTF8.self)
        let pipelineFile = text == nil ? inputFile : Self.fileName
        do throws(DiagnosticsError) {
            let pipeline = if let text { try loader.load(source: text, file: pipelineFile) } else { try loader.load(file: pipelineFile) }
            verdict.isAccepted = true
            verdict.fingerprint.append("pipeline \(pipeline.name) \(pipeline.version) \(pipeline.steps.map(\.id))")
        } catch {
            let entry = text == nil ? "PipelineLoader.load(file:)" : "PipelineLoader.load(source:file:)"
            check(error.diagnostics, from: entry, file: pipelineFile, lines: lines, into: &verdict)
            verdict.messages = error.diagnostics.map { "\($0.location.line):\($0.location.column): \($0.message)" }
            verdict.fingerprint.append(error.description)
        }

        do throws(DiagnosticsError) {
            let config = try DaemonConfig.load(file: inputFile, required: true, environment: Self.environment)
            verdict.fingerprint.append("config \(config)")
        } catch {
            check(error.diagnostics, from: "DaemonConfig.load(file:)", file: inputFile, lines: lines, into: &verdict)
            verdict.fingerprint.append(error.description)
        }
        return verdict
    }

    /// A rejection has at least one error, and every diagnostic has a message and a position in the
    /// input (the given file, line 1 to one past the last, column from 1).
    private func check(_ diagnostics: [Diagnostic], from entry: String, file: String, lines: LineCount, into verdict: inout Verdict) {
        if !diagnostics.contains(where: { $0.severity == .error }) {
            verdict.fail("\(entry) rejected the input without an error diagnostic (\(diagnostics.count) diagnostics)")
        }
        for diagnostic in diagnostics {
            let location = diagnostic.location
            if diagnostic.message.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                verdict.fail("\(entry): a diagnostic at \(location) has an empty message")
            }
            if location.file != file {
                verdict.fail("\(entry): diagnostic names file '\(location.file)', not '\(file)': \(diagnostic)")
            }
            if location.line < 1 || location.line > lines.count + 1 || location.column < 1 {
                verdict.fail("\(entry): diagnostic at line \(location.line), column \(location.column) is outside the input's \(lines.count) lines: \(diagnostic.message)")
            }
        }
    }

    // MARK: Generators

    /// Tokens, keys and values run together: text no grammar made.
    private func makeSoup(using rng: inout SplitMix64) -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<rng.size(upTo: 80) {
            switch rng.below(6) {
            case 0: bytes += Array(rng.pick(Self.tokens).utf8)
            case 1: bytes += Array(rng.pick(mutator.keys).utf8)
            case 2: bytes += Array(rng.pick(Self.oddValues).utf8)
            case 3: bytes += Array(rng.pick(["\n", " ", ": ", "\n  - ", "\n  ", ", "]).utf8)
            case 4: bytes.append(UInt8(rng.below(256)))
            default: bytes += rng.pick(Mutator.invalidUTF8)
            }
        }
        return bytes
    }

    /// Deep nesting, alias bombs, huge mappings, long scalars, many steps and many tags.
    private func makePathological(using rng: inout SplitMix64) -> [UInt8] {
        let size = rng.size(upTo: 20_000)
        let text: String
        switch rng.below(9) {
        case 0:
            text = "name: deep\nsteps: " + String(repeating: "[", count: size * 5) + String(repeating: "]", count: rng.chance(0.5) ? size * 5 : 0) + "\n"
        case 1:
            let depth = min(size, 400)
            text = (0..<depth).map { String(repeating: "  ", count: $0) + "a:" }.joined(separator: "\n") + " 1\n"
        case 2:
            text = "steps:\n" + String(repeating: "- ", count: size * 5) + "x\n"
        case 3:
            let width = 2 + rng.below(9)
            var lines = ["l0: &l0 [" + Array(repeating: "\"lol\"", count: width).joined(separator: ", ") + "]"]
            for level in 1...(2 + rng.below(8)) {
                lines.append("l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: width).joined(separator: ", ") + "]")
            }
            text = lines.joined(separator: "\n") + "\n"
        case 4:
            text = "name: many\n" + (0..<size).map { "k\($0 % (size * 4 / 5 + 1)): \($0)" }.joined(separator: "\n") + "\n"
        case 5:
            text = "name: long\ndescription: \"" + String(repeating: rng.pick(["a", "\\u00e9", "\\\"", "é"]), count: size * 10) + "\"\nsteps: []\n"
        case 6:
            let steps = (0..<size / 10 + 1).map { "  - {id: s\($0), stage: prepare_instructions, with: {template: \"{{steps.s\(max(0, $0 - 1)).output.text}} {{input.x}}\"}}" }
            text = "name: wide\ninput: {properties: {x: {type: string}}}\nsteps:\n" + steps.joined(separator: "\n") + "\n"
        case 7:
            text = "name: tags\nsteps:\n  - id: a\n    stage: prepare_instructions\n    with:\n      template: \""
                + String(repeating: rng.pick(["{{input.x}}", "{{#input.x}}", "{{/input.x}}", "{{steps.a.output}}", "{{"]), count: size) + "\"\n"
        default:
            text = "name: " + String(repeating: rng.pick(["a", "é", "-"]), count: size * 10) + "\nsteps: [{id: " + String(repeating: "b", count: size) + ", stage: notify}]\n"
        }
        return Array(text.utf8)
    }

    // MARK: Vocabulary

    /// Tokens that mean something to YAML, mustache or `${VAR}` expansion.
    static let tokens: [String] = [
        ":", ": ", "- ", "-", "{{", "}}", "{{{", "}}}", "{{#", "{{/", "{{^", "{{>", "{{=", "{{!", "&a ", "*a", "&b ", "*b", "<<: *a\n",
        "<<: ", "!!binary ", "!!str ", "!!int ", "!!float ", "!!map ", "!!seq ", "!custom ", "!<tag:yaml.org,2002:str> ", "? ", "\t",
        "---", "---\n", "...", "\n...\n", "\"", "'", "\\u0000", "\\x00", "\\", "\\U0010FFFF", "#", " # ", "|", "|-\n", ">", ">+\n", "%YAML 1.2\n",
        "%TAG ! tag:x,2000:\n", "[", "]", "{", "}", ",", "\r", "\r\n", "\n", "\n  ", "\u{85}", "\u{2028}", "\u{FEFF}", "\0", "~", "null",
        "${HOME}", "${UNSET}", "${", "${EMPTY:-x}", "${1BAD}", "$$", "@", "`", "%",
    ]

    /// Values that stress a reader: huge, negative and NaN-like numbers, odd durations, wrong types.
    static let oddValues: [String] = [
        "0", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1e308", "1e309", "-1e309", "1e-400", "-0",
        ".nan", ".NaN", ".inf", "-.inf", "NaN", "Infinity", "0x7fffffffffffffff", "0xffffffffffffffffff", "0o777", "0b101", "1_000",
        "true", "false", "yes", "null", "~", "\"\"", "''", "[]", "{}", "[1, 2]", "{a: 1}", "\"5\"", "1s", "0s", "-1s", "1e3s", "1.5.5s",
        "9999999999999999999999h", "100000d", ".5s", "s", "ms", "\"{{input.x}}\"", "\"{{steps.nope.output}}\"", "'{{job.id}}'", "*a", "&a",
        "!!binary aGk=", "|\n  block\n", ">\n  folded\n", "\"\\u0000\"", "\"\\uD800\"", "\"\\x\"",
    ]

    /// Keys: the pipeline's and the daemon config's, misspellings, and the merge key.
    static let keys: [String] = [
        "name", "description", "input", "defaults", "steps", "id", "stage", "with", "retry", "timeout", "deadline", "on_invalid",
        "max_attempts", "initial_interval", "backoff", "max_interval", "jitter", "non_retryable", "retry_step", "max", "type",
        "properties", "required", "enum", "default", "minLength", "maxLength", "minimum", "maximum", "items", "additionalProperties",
        "minItems", "maxItems", "format", "nmae", "stpes", "Steps", "stage_", "retyr", "<<", "\"quoted key\"", "? complex", "[a, b]",
        "listen", "database", "url", "pool_size", "workers", "auth", "jwt_secret", "admin_token", "providers", "kind", "base_url",
        "api_key", "limits", "retention", "log", "level", "queue", "lease", "poll_interval", "cors_origins", "state_dir",
    ]

    /// Small documents for what the shipped files do not show: anchors and merge keys, sections,
    /// flow style, a daemon config with `${VAR}`.
    static let handwrittenSeeds: [String] = [
        """
        name: merged
        defaults: &defaults
          retry: {max_attempts: 2, initial_interval: 1s, max_interval: 10s}
          timeout: 30s
        steps:
          - &base
            id: first
            stage: prepare_instructions
            with: {template: "Hello {{input.who}}"}
          - <<: *base
            id: second
            with:
              template: "{{#input.items}}{{.}} {{/input.items}}{{steps.first.output.messages}}"
            on_invalid: {retry_step: first, max: 2}
        input:
          required: [who]
          properties:
            who: {type: string, minLength: 1}
            items: {type: array, items: {type: string}}

        """,
        """
        {name: flow, steps: [{id: a, stage: tokens.require, with: {minimum: 1}}, {id: b, stage: notify, with: {event: done, data: {x: "{{steps.a.output}}"}}}]}

        """,
        """
        name: http
        steps:
          - id: fetch
            stage: http.request
            with:
              method: POST
              url: "https://example.com/{{input.path}}"
              headers: {Authorization: "Bearer x"}
              body: {q: "{{input.q}}", n: 3}
              expect_status: [200, 201]
            retry:
              max_attempts: 3
              non_retryable: [invalid_request]
            deadline: 5m

        """,
        """
        listen: ${GENFLOW_LISTEN:-127.0.0.1:8080}
        database: {url: "${DATABASE_URL:-}", pool_size: 8}
        workers: 4
        auth: {jwt_secret: "${HOME}-0123456789abcdef0123456789abcdef", admin_token: $$literal}
        providers:
          default: {kind: offline}
          openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY:-}"}
        limits: {running_per_user: 2, submit_per_minute: 60, max_body_bytes: 65536}
        retention: 30d
        log: {level: debug}
        queue: {lease: 30s, poll_interval: 250ms, max_rescues: 3, shutdown_grace: 10s}
        cors_origins: ["https://app.example"]

        """,
    ]
}

/// The number of lines in an input, counted as libyaml counts them: a line ends at LF, CR, CR LF,
/// NEL, LS or PS, and the text after the last break is a line too.
struct LineCount {
    let count: Int

    init(_ bytes: [UInt8]) {
        var breaks = 0
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case 0x0A:
                breaks += 1
            case 0x0D:
                breaks += 1
                if index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
            case 0xC2 where index + 1 < bytes.count && bytes[index + 1] == 0x85:
                breaks += 1
                index += 1
            case 0xE2 where index + 2 < bytes.count && bytes[index + 1] == 0x80 && (bytes[index + 2] == 0xA8 || bytes[index + 2] == 0xA9):
                breaks += 1
                index += 2
            default:
                break
            }
            index += 1
        }
        count = breaks + 1
    }
}
