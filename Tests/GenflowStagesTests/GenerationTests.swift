import Foundation
import GenflowConfig
import GenflowAPI
import GenflowCore
import GenflowEngine
import GenflowProviders
import GenflowQueue
import GenflowRecords
import GenflowTestSupport
import GenflowTestHarness
import Testing

/// Runs `pipeline` once for `user` (credited first) on a fresh engine and returns the finished job.
private func runOnce(_ harness: Harness, _ pipeline: String, input: JSON, user: String = "ann") async throws -> Job {
    try await credit(harness, user)
    return try await harness.running(harness.engine()) {
        try await harness.wait(for: try await harness.submit(pipeline, input: input, user: user).id)
    }
}

private func credit(_ harness: Harness, _ user: String, _ amount: Int = 10_000) async throws {
    _ = try await harness.store.write { try $0.recordTokens(userID: user, change: amount, reason: "credit", idempotencyKey: "credit-\(user)") }
}

private func shipped(_ name: String) throws -> String {
    try String(contentsOfFile: "pipelines/\(name).yaml", encoding: .utf8)
}

@Suite("The shipped image pipeline", .serialized, .timeLimit(.minutes(3)))
struct ImagePipelineTests {
    @Test("against an OpenAI-compatible server: base64 images kept under the state directory, every image field recorded")
    func base64Images() async throws {
        let server = try FakeServer()
        let harness = try await Harness.make(pipelines: ["image-generation": try shipped("image-generation")], providers: [
            "default": ProviderConfig.openai(baseURL: server.url("/v1"), apiKey: Secret("sk-test")),
        ])
        let job = try await runOnce(harness, "image-generation", input: [
            "prompt": "a lighthouse at dusk", "style": "watercolour", "aspect_ratio": "16:9", "quality": "hd", "format": "webp",
            "dataset_id": "coast", "n": 2,
        ])
        #expect(job.status == .completed, "\(String(describing: job.error))")
        let sent = try await server.json("/last?model=gpt-image-1")
        #expect(sent["size"] == "1536x1024" && sent["n"] == 2 && sent["quality"] == "hd" && sent["output_format"] == "webp")
        #expect(sent["prompt"] == "a lighthouse at dusk. Style: watercolour.")

        let images = try await harness.store.read { try $0.images(userID: "ann") }.map(\.json)
        #expect(images.count == 2)
        for image in images {
            let id = try #require(image["id"]?.stringValue)
            #expect(image["prompt"] == "a lighthouse at dusk")
            #expect(image["full_prompt"] == "a lighthouse at dusk. Style: watercolour.")
            #expect(image["image_url"] == .string("/v1/images/\(id)/content"))
            #expect(image["dataset_id"] == "coast" && image["style"] == "watercolour" && image["aspect_ratio"] == "16:9")
            #expect(image["quality"] == "hd" && image["format"] == "webp" && image["resolution"] == "1536x1024")
            #expect(image["reference_images_count"] == 0 && image["created_at"]?.stringValue != nil)
            let file = try #require(try await harness.store.read { try $0.image(id: id, userID: "ann") }?.record.filePath)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: harness.path(file)))
            #expect(bytes.count == 69 && bytes.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "the bytes the server sent")
            #expect(image["bytes"] == 69)
            #expect(try await harness.store.read { try $0.image(id: id, userID: "bob") } == nil, "another user's image is not found")
        }
        let ledger = try await harness.store.read { try $0.ledger(userID: "ann") }
        #expect(ledger.first?.change == -(20 + 272 * 2), "the usage the server reported is debited")
        #expect(try await harness.events(job.id).contains { $0.type == "ai_generation_completed" })
    }

    @Test("a provider that answers with URLs: the URL is the image's location, nothing is written")
    func urlImages() async throws {
        let server = try FakeServer()
        let yaml = try shipped("image-generation").replacingOccurrences(of: "model: gpt-image-1", with: "model: dall-e-3")
        let harness = try await Harness.make(pipelines: ["image-generation": yaml], providers: [
            "default": ProviderConfig.openai(baseURL: server.url("/v1")),
        ])
        let job = try await runOnce(harness, "image-generation", input: ["prompt": "a fox", "aspect_ratio": "9:16"])
        #expect(job.status == .completed, "\(String(describing: job.error))")
        let sent = try await server.json("/last?model=dall-e-3")
        #expect(sent["output_format"] == nil, "only gpt-image models take output_format")
        let images = try await harness.store.read { try $0.images(userID: "ann") }.map(\.json)
        #expect(images.map { $0["image_url"] } == ["https://images.example/dall-e-3/0.png"])
        #expect(images.first?["resolution"] == "1024x1536" && images.first?["format"] == "png")
        #expect(!FileManager.default.fileExists(atPath: harness.path("images/\(job.id)")))
    }

    @Test("an answer without usage (as DALL·E 3 gives): the tokens are counted per image, the job completes and debits them")
    func withoutUsage() async throws {
        let server = try FakeServer()
        let yaml = try shipped("image-generation").replacingOccurrences(of: "model: gpt-image-1", with: "model: no-usage")
        let harness = try await Harness.make(pipelines: ["image-generation": yaml], providers: [
            "default": ProviderConfig.openai(baseURL: server.url("/v1")),
        ])
        let job = try await runOnce(harness, "image-generation", input: ["prompt": "a fox", "aspect_ratio": "9:16", "quality": "hd", "n": 2])
        #expect(job.status == .completed, "\(String(describing: job.error))")
        let usage = job.result?["generate"]?["usage"]
        // 1024x1536 at high quality: 6,240 tokens an image; the prompt "a fox. Style: …" a few more.
        #expect(usage?["estimated"] == true && usage?["completion_tokens"] == 12_480)
        let debited = try #require(usage?["total_tokens"]?.intValue)
        #expect(try await harness.store.read { try $0.ledger(userID: "ann") }.map(\.change) == [-debited, 10_000])
    }

    @Test("an image url that is not http(s), or b64_json that is not an image, is output_invalid", arguments: ["bad-url", "bad-b64"])
    func invalidImages(_ model: String) async throws {
        let server = try FakeServer()
        let yaml = try shipped("image-generation")
            .replacingOccurrences(of: "model: gpt-image-1", with: "model: \(model)")
            .replacingOccurrences(of: "retry: {max_attempts: 4, initial_interval: 2s", with: "retry: {max_attempts: 1, initial_interval: 10ms")
        let harness = try await Harness.make(pipelines: ["image-generation": yaml], providers: [
            "default": ProviderConfig.openai(baseURL: server.url("/v1")),
        ])
        let job = try await runOnce(harness, "image-generation", input: ["prompt": "a fox"])
        #expect(job.status == .failed)
        #expect(try await harness.runs(job.id).filter { $0.stepID == "generate" }.map(\.errorClass) == ["output_invalid"])
        #expect(try await harness.store.read { try $0.images(userID: "ann") }.map(\.json).isEmpty)
    }

    @Test("a server error is retried as the step's policy says, then the job fails with no image and no debit")
    func serverError() async throws {
        let server = try FakeServer()
        let yaml = try shipped("image-generation")
            .replacingOccurrences(of: "model: gpt-image-1", with: "model: server-error")
            .replacingOccurrences(of: "retry: {max_attempts: 4, initial_interval: 2s", with: "retry: {max_attempts: 2, initial_interval: 10ms")
        let harness = try await Harness.make(pipelines: ["image-generation": yaml], providers: [
            "default": ProviderConfig.openai(baseURL: server.url("/v1")),
        ])
        let job = try await runOnce(harness, "image-generation", input: ["prompt": "a fox"])
        #expect(job.status == .failed)
        #expect(job.error?["class"] == "attempts_exhausted" || job.error?["class"] == "server_error")
        #expect(try await harness.runs(job.id).filter { $0.stepID == "generate" }.count == 2)
        #expect(try await server.calls("server-error") == 2)
        #expect(try await harness.store.read { try $0.images(userID: "ann") }.map(\.json).isEmpty)
        #expect(try await harness.store.read { try $0.ledger(userID: "ann") }.map(\.change) == [10_000])
    }

    @Test("the offline provider draws real PNG files from the prompt's words")
    func offlineImages() async throws {
        let harness = try await Harness.make(pipelines: ["image-generation": try shipped("image-generation")])
        let job = try await runOnce(harness, "image-generation", input: ["prompt": "a house under the sun", "aspect_ratio": "4:3", "n": 2])
        #expect(job.status == .completed, "\(String(describing: job.error))")
        #expect(job.result?["generate"]?["model"]?.stringValue?.hasPrefix("offline") == true)
        let images = try await harness.store.read { try $0.images(userID: "ann") }.map(\.json)
        #expect(images.count == 2 && images.allSatisfy { $0["resolution"] == "256x192" && $0["format"] == "png" })
        let id = try #require(images.first?["id"]?.stringValue)
        let file = try #require(try await harness.store.read { try $0.image(id: id, userID: "ann") }?.record.filePath)
        // Python's zlib and struct read it back: a valid PNG of the size recorded, with the sun's yellow in it.
        let check = """
            import struct, sys, zlib
            data = open(sys.argv[1], 'rb').read()
            assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
            pos, raw, size = 8, b'', None
            while pos < len(data):
                length, kind = struct.unpack('>I4s', data[pos:pos + 8])
                body = data[pos + 8:pos + 8 + length]
                assert zlib.crc32(kind + body) == struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])[0]
                if kind == b'IHDR': size = struct.unpack('>II', body[:8])
                if kind == b'IDAT': raw += body
                pos += 12 + length
            pixels = zlib.decompress(raw)
            assert len(pixels) == size[1] * (size[0] * 3 + 1)
            print(size[0], size[1], len(set(pixels[i:i + 3] for i in range(1, len(pixels) - 3, 3))) > 2)
            """
        #expect(try await runPython(check, harness.path(file)) == "256 192 True\n")
    }
}

/// Runs a Python script with one argument and returns what it printed.
private func runPython(_ script: String, _ argument: String) async throws -> String {
    try await runProgram("/usr/bin/python3", ["-c", script, argument]).stdout
}

@Suite("The model response cache", .timeLimit(.minutes(3)))
struct ModelCacheTests {
    @Test("an identical request within the TTL reuses the stored reply, marked cached; a different one calls the model")
    func cache() async throws {
        let server = try FakeServer()
        let yaml = """
            name: cached
            input:
              properties:
                instructions: {type: string}
            steps:
              - id: prompt
                stage: prepare_instructions
                with: {template: "Draw {{input.instructions}}"}
              - id: generate
                stage: call_model
                with: {provider: remote, model: ok, output: canvas_objects, cache: {ttl: 1h}}
            """
        let harness = try await Harness.make(pipelines: ["cached": yaml], providers: [
            "remote": ProviderConfig.openai(baseURL: server.url("/v1"), apiKey: Secret("sk-one")),
        ])
        let jobs = try await harness.running(harness.engine()) {
            var jobs: [Job] = []
            for instructions in ["a box", "a box", "a circle"] {
                jobs.append(try await harness.wait(for: try await harness.submit("cached", input: ["instructions": .string(instructions)]).id))
            }
            return jobs
        }
        #expect(jobs.allSatisfy { $0.status == .completed })
        #expect(jobs.map { $0.result?["generate"]?["cached"] } == [false, true, false])
        #expect(jobs[1].result?["generate"]?["text"] == jobs[0].result?["generate"]?["text"])
        #expect(try await server.calls("ok") == 2, "the repeated request did not reach the provider")
        let replayed = try await harness.events(jobs[1].id).filter { $0.type == "canvas.objects" }
        #expect(replayed.count == 1 && replayed.first?.data["cached"] == true, "a cached reply still draws its objects")
        let stored = try await harness.query("SELECT count(*)::int AS n, bool_and(response::text NOT LIKE '%sk-one%') AS clean FROM genflow.model_cache")
        #expect(stored.first?["n"] == "2" && stored.first?["clean"] == "t", "the API key is not part of what is stored")
    }
}

@Suite("http.request", .timeLimit(.minutes(3)))
struct HTTPRequestStageTests {
    static func pipeline(_ with: String, retry: String = "{max_attempts: 2, initial_interval: 10ms, jitter: 0}") -> String {
        """
        name: call
        input:
          properties:
            name: {type: string, default: ada}
        steps:
          - id: call
            stage: http.request
            with: \(with)
            retry: \(retry)
        """
    }

    @Test("method, headers and a JSON body from templates go out; the response maps onto the output")
    func roundTrip() async throws {
        let server = try FakeServer()
        let with = """
            {method: PUT, url: "\(server.url("/things"))", headers: {X-User: "{{input.name}}"}, body: {name: "{{input.name}}", n: 3},
                   response: {method: /method, second: /data/items/1/id, type: /content_type}}
            """
        let harness = try await Harness.make(pipelines: ["call": Self.pipeline(with)])
        let job = try await runOnce(harness, "call", input: ["name": "grace"])
        #expect(job.status == .completed, "\(String(describing: job.error))")
        let output = try #require(job.result?["call"])
        #expect(output["status"] == 200 && output["method"] == "PUT" && output["second"] == "second" && output["type"] == "application/json")
        #expect(output["body"]?["headers"]?["X-User"] == "grace")
        #expect(try JSON(parsing: output["body"]?["body"]?.stringValue ?? "") == ["name": "grace", "n": 3])
    }

    @Test("failures take their classes: 404 fails at once, 503 is retried, a missing field is output_invalid, file:// is refused")
    func failures() async throws {
        let server = try FakeServer()
        let cases: [(with: String, errorClass: String, attempts: Int)] = [
            ("{url: \"\(server.url("/status/404"))\"}", "invalid_request", 1),
            ("{url: \"\(server.url("/status/503"))\"}", "server_error", 2),
            ("{url: \"\(server.url("/hello"))\", response: {id: /id}}", "output_invalid", 1),
            ("{method: POST, url: \"\(server.url("/x"))\", response: {id: /nothing/here}}", "output_invalid", 1),
            ("{url: \"file:///etc/passwd\"}", "invalid_request", 1),
        ]
        for (with, errorClass, attempts) in cases {
            let harness = try await Harness.make(pipelines: ["call": Self.pipeline(with, retry: "{max_attempts: 2, initial_interval: 10ms, jitter: 0, non_retryable: [invalid_request, output_invalid]}")])
            let job = try await runOnce(harness, "call", input: [:])
            #expect(job.status == .failed, "\(with)")
            #expect(job.error?["class"] == .string(errorClass), "\(with): \(String(describing: job.error))")
            #expect(try await harness.runs(job.id).count == attempts, "\(with)")
        }
    }
}

@Suite("Prompt history", .serialized, .timeLimit(.minutes(3)))
struct PromptHistoryTests {
    @Test("a prompt is processing while its job runs, failed with the error when the job fails, processing again on retry")
    func failedPrompt() async throws {
        let server = try FakeServer()
        let yaml = try shipped("canvas-generation")
            .replacingOccurrences(of: "model: gpt-4o-mini", with: "model: bad")
        let harness = try await Harness.make(pipelines: ["canvas-generation": yaml], providers: [
            "default": ProviderConfig.openai(baseURL: server.url("/v1")),
        ])
        let job = try await runOnce(harness, "canvas-generation", input: ["instructions": "a red square"])
        #expect(job.status == .failed)
        let prompt = try #require(try await harness.store.read { try $0.prompts(userID: "ann") }.map(\.json).first)
        #expect(prompt["status"] == "failed")
        #expect(prompt["error"]?.stringValue?.hasPrefix("invalid_request: provider answered 400") == true, "\(prompt)")
        #expect(prompt["canvases"] == [])
        _ = try await harness.store.write { try $0.retryJob(id: job.id) }
        #expect(try await harness.store.read { try $0.prompts(userID: "ann") }.map(\.json).first?["status"] == "processing")
    }

    @Test("history pages by cursor, a prompt comes with its canvas and objects, stats count, delete removes")
    func history() async throws {
        let harness = try await Harness.make(pipelines: ["canvas-generation": try shipped("canvas-generation")])
        try await credit(harness, "ann")
        let jobs = try await harness.running(harness.engine()) {
            var jobs: [Job] = []
            for instructions in ["a flowchart with 3 steps", "a sun and a tree", "a house", "two boxes"] {
                jobs.append(try await harness.wait(for: try await harness.submit("canvas-generation", input: ["instructions": .string(instructions)], user: "ann").id))
            }
            return jobs
        }
        #expect(jobs.allSatisfy { $0.status == .completed })
        var seen: [String] = []
        var cursor: PageCursor?
        repeat {
            let page = try await harness.store.read { [cursor] in try $0.prompts(userID: "ann", before: cursor, limit: 3) }.map(\.json)
            seen += page.compactMap { $0["instructions"]?.stringValue }
            cursor = PageCursor.next(after: page, limit: 3)
            if let text = cursor?.text { #expect(PageCursor(text: text) == cursor) }
        } while cursor != nil
        #expect(seen == ["two boxes", "a house", "a sun and a tree", "a flowchart with 3 steps"], "newest first, each once")

        let first = try #require(try await harness.store.read { try $0.prompts(userID: "ann", limit: 10) }.map(\.json).last)
        let id = try #require(first["id"]?.stringValue)
        let prompt = try #require(try await harness.store.read { try $0.prompt(id: id, userID: "ann") }?.json)
        #expect(prompt["status"] == "completed" && prompt["style"] == "modern" && prompt["color_scheme"] == "default")
        let objects = try #require(prompt["canvases"]?.arrayValue?.first?["objects"]?.arrayValue)
        #expect(objects.filter { $0["type"] == "rectangle" }.count == 3)
        #expect(try await harness.store.read { try $0.prompt(id: id, userID: "bob") } == nil)
        #expect(try await harness.store.read { try $0.prompt(id: "not-a-uuid", userID: "ann") } == nil)

        let stats = try await harness.store.read { try $0.promptStats(userID: "ann") }.json
        #expect(stats["total"] == 4 && stats["by_status"]?["completed"] == 4 && stats["last_24h"] == 4)
        #expect(stats["success_rate"]?.doubleValue == 1.0)

        #expect(try await harness.store.write { try $0.deletePrompt(id: id, userID: "bob") } == false)
        #expect(try await harness.store.write { try $0.deletePrompt(id: id, userID: "ann") } == true)
        #expect(try await harness.store.read { try $0.prompts(userID: "ann") }.map(\.json).count == 3)
        let canvases = try await harness.query("SELECT count(*)::int AS n FROM genflow.canvases WHERE prompt_id = $1::uuid", [id])
        #expect(canvases.first?["n"] == "0", "the prompt's canvas and objects went with it")
        #expect(PageCursor(text: "2026-01-01T00:00:00Z,not-a-uuid") == nil && PageCursor(text: "x'; DROP TABLE x;--,\(id)") == nil)
    }
}

@Suite("Provider faults through a pipeline", .timeLimit(.minutes(3)))
struct ProviderFaultTests {
    /// One case per way an OpenAI-compatible server answers: the job's end state, the class of
    /// each attempt's error, and the delay before each retry where the server chose it.
    struct Case: Sendable, CustomStringConvertible {
        var model: String
        var stream: Bool
        var status: JobStatus
        var classes: [String?]
        var delays: [Int?]? = nil
        var description: String { "\(model)\(stream ? " (streamed)" : "")" }
    }

    static let cases: [Case] = [
        Case(model: "ok", stream: false, status: .completed, classes: [nil]),
        Case(model: "ok", stream: true, status: .completed, classes: [nil]),
        Case(model: "rate-limit", stream: false, status: .failed, classes: ["rate_limited", "rate_limited"], delays: [150, nil]),
        Case(model: "rate-limit-seconds", stream: false, status: .failed, classes: ["rate_limited", "rate_limited"], delays: [2_000, nil]),
        Case(model: "server-error", stream: false, status: .failed, classes: ["server_error", "server_error"]),
        Case(model: "garbage", stream: false, status: .failed, classes: ["server_error", "server_error"]),
        Case(model: "cut", stream: true, status: .failed, classes: ["network", "network"]),
        Case(model: "error-event", stream: true, status: .failed, classes: ["server_error", "server_error"]),
        Case(model: "slow", stream: false, status: .failed, classes: ["timeout", "timeout"]),
        Case(model: "length", stream: false, status: .failed, classes: ["output_invalid"]),
        Case(model: "auth", stream: false, status: .failed, classes: ["auth"]),
        Case(model: "bad", stream: false, status: .failed, classes: ["invalid_request"]),
        Case(model: "missing", stream: true, status: .failed, classes: ["invalid_request"]),
    ]

    @Test("each failure ends as the retry policy says, with every attempt recorded", arguments: cases)
    func fault(_ expected: Case) async throws {
        let server = try FakeServer()
        let yaml = """
            name: faults
            input:
              properties:
                model: {type: string}
                stream: {type: boolean}
            steps:
              - id: generate
                stage: call_model
                with: {provider: remote, model: "{{input.model}}", output: canvas_objects, stream: "{{input.stream}}"}
                retry: {max_attempts: 2, initial_interval: 10ms, jitter: 0, non_retryable: [output_invalid]}
                timeout: 5s   # the slow model answers after 8 s; 5 s leaves a loaded machine room for the others
            """
        let harness = try await Harness.make(pipelines: ["faults": yaml], providers: [
            "remote": ProviderConfig.openai(baseURL: server.url("/v1")),
        ])
        let job = try await runOnce(harness, "faults", input: ["model": .string(expected.model), "stream": .bool(expected.stream)])
        #expect(job.status == expected.status, "\(String(describing: job.error))")
        let runs = try await harness.runs(job.id)
        #expect(runs.map { $0.errorClass?.rawValue } == expected.classes)
        if let delays = expected.delays { #expect(runs.map(\.retryDelayMilliseconds) == delays) }
        #expect(try await server.calls(expected.model) == expected.classes.count, "one call per attempt")
        if expected.status == .failed {
            #expect(job.error?["class"] == .string(expected.classes.last!!))
        } else {
            #expect(job.result?["generate"]?["usage"]?["total_tokens"] == 42)
        }
    }
}

@Suite("The built-in anthropic provider through a pipeline", .timeLimit(.minutes(3)))
struct AnthropicPipelineTests {
    @Test("call_model with a kind: anthropic provider streams the reply as progress and records it like any provider's")
    func streamed() async throws {
        let server = try FakeServer()
        let yaml = """
            name: claude
            input:
              properties:
                prompt: {type: string}
            steps:
              - id: ask
                stage: call_model
                with:
                  provider: claude
                  model: claude-pipeline
                  stream: true
                  messages: [{role: system, content: be brief}, {role: user, content: "{{input.prompt}}"}]
            """
        let harness = try await Harness.make(pipelines: ["claude": yaml], providers: [
            "claude": ProviderConfig.anthropic(baseURL: server.url(""), apiKey: Secret("sk-ant")),
        ])
        let job = try await runOnce(harness, "claude", input: ["prompt": "a red kite"])
        #expect(job.status == .completed, "\(String(describing: job.error))")
        let answer = job.result?["ask"]
        #expect(answer?["text"] == "echo: a red kite" && answer?["model"] == "claude-pipeline" && answer?["finish_reason"] == "stop")
        #expect(answer?["usage"]?["total_tokens"] == 16)
        // Pieces that arrive while earlier ones are being written go out together: at least one event.
        #expect(try await harness.events(job.id).contains { $0.type == "step.progress" })
        let sent = try await server.json("/last?model=claude-pipeline")
        #expect(sent["key"] == "sk-ant" && sent["request"]?["system"] == "be brief")
    }
}

@Suite("Fallbacks and cooldowns", .serialized, .timeLimit(.minutes(3)))
struct FallbackTests {
    /// Provider `a` with the model the input names, then `b` with `ok`.
    static let yaml = """
        name: fallback
        input:
          properties:
            model: {type: string}
        steps:
          - id: generate
            stage: call_model
            with:
              provider: a
              model: "{{input.model}}"
              output: canvas_objects
              fallbacks: [{provider: b, model: ok}]
            retry: {max_attempts: 2, initial_interval: 10ms, jitter: 0}
        """

    func harness(_ server: FakeServer, cooldown: CooldownPolicy?, yaml: String = yaml) async throws -> Harness {
        var first = ProviderConfig.openai(baseURL: server.url("/v1"))
        first.cooldown = cooldown
        return try await Harness.make(pipelines: ["fallback": yaml], providers: ["a": first, "b": .openai(baseURL: server.url("/v1"))])
    }

    @Test("A always 500, B answers: one attempt and B's answer, A's error in `tried`; after `failures` such jobs, A is skipped while it cools down")
    func serverErrors() async throws {
        let server = try FakeServer()
        let harness = try await harness(server, cooldown: CooldownPolicy(failures: 2, window: .seconds(60), duration: .seconds(60)))
        var tried: [JSON] = []
        for _ in 0..<3 {
            let job = try await runOnce(harness, "fallback", input: ["model": "server-error"])
            #expect(job.status == .completed, "\(String(describing: job.error))")
            #expect(try await harness.runs(job.id).count == 1, "one attempt")
            let answer = job.result?["generate"]
            #expect(answer?["provider"] == "b" && answer?["model"] == "ok" && answer?["json"]?["objects"]?.arrayValue?.count == 1)
            tried.append(answer?["tried"]?.arrayValue?.first ?? .null)
        }
        #expect(tried[0]["provider"] == "a" && tried[0]["model"] == "server-error" && tried[0]["error"]?["class"] == "server_error")
        #expect(tried[1]["error"]?["class"] == "server_error")
        #expect(tried[2]["skipped"]?.stringValue?.contains("cooling down") == true, "\(tried[2])")
        #expect(try await server.calls("server-error") == 2, "the third job did not call A")
        #expect(try await server.calls("ok") == 3)
    }

    @Test("a 429 with Retry-After cools its target for that long, before any count of failures")
    func retryAfter() async throws {
        let server = try FakeServer()
        let harness = try await harness(server, cooldown: CooldownPolicy())
        // A minute, not seconds: under a full test run's load two jobs once took longer than a
        // Retry-After of 2 s, and the second job then rightly called A again.
        for _ in 0..<2 {
            let job = try await runOnce(harness, "fallback", input: ["model": "rate-limit-minute"])
            #expect(job.status == .completed && job.result?["generate"]?["provider"] == "b")
        }
        #expect(try await server.calls("rate-limit-minute") == 1, "the second job skipped A (Retry-After: 60)")
    }

    @Test("when every target fails, the step's retry policy decides once: its attempts, each trying every target")
    func everyTargetFails() async throws {
        let server = try FakeServer()
        let harness = try await harness(server, cooldown: nil, yaml: Self.yaml.replacingOccurrences(of: "model: ok", with: "model: server-error"))
        let job = try await runOnce(harness, "fallback", input: ["model": "server-error"])
        #expect(job.status == .failed)
        let runs = try await harness.runs(job.id)
        #expect(runs.map(\.errorClass) == ["server_error", "server_error"])
        #expect(runs.allSatisfy { $0.errorMessage?.hasPrefix("every target failed: a server-error: provider answered 500") == true }, "\(runs.map(\.errorMessage))")
        #expect(try await server.calls("server-error") == 4, "2 attempts × 2 targets")
    }

    @Test("a failure outside fallback_on fails the attempt at once, without a fallback")
    func outsideFallbackOn() async throws {
        let server = try FakeServer()
        let harness = try await harness(server, cooldown: nil)
        let job = try await runOnce(harness, "fallback", input: ["model": "auth"])
        #expect(job.status == .failed && job.error?["class"] == "auth")
        #expect(try await server.calls("ok") == 0)
    }
}

@Suite("Provider health through the daemon", .serialized, .timeLimit(.minutes(3)))
struct ProviderHealthAPITests {
    @Test("GET /v1/providers shows each provider's cooldown policy and its models' calls, failures and cooldown; /metrics counts them")
    func providersEndpoint() async throws {
        let server = try FakeServer()
        let harness = try await Harness.make(pipelines: ["fallback": FallbackTests.yaml], providers: [
            "a": .openai(baseURL: server.url("/v1")), "b": .openai(baseURL: server.url("/v1")),
        ], inProcess: false)
        let providers = """
            providers:
              a: {kind: openai, base_url: "\(server.url("/v1"))", api_key: sk-secret, cooldown: {failures: 2, for: 10m}}
              b: {kind: openai, base_url: "\(server.url("/v1"))"}
            """
        let daemon = try await DaemonProcess(harness: harness, extraConfig: providers)
        defer { daemon.stop() }
        for _ in 0..<3 {
            let job = try await harness.submit("fallback", input: ["model": "server-error"], user: "ann")
            #expect(try await harness.wait(for: job.id).status == .completed)
        }
        let reply = try await daemon.operatorCall("GET", "/v1/providers")
        #expect(!String(decoding: reply.body, as: UTF8.self).contains("sk-secret"), "no secret in the document")
        let items = reply.json["items"]?.arrayValue ?? []
        let a = try #require(items.first { $0["name"] == "a" })
        #expect(a["kind"] == "openai" && a["cooldown"] == ["failures": 2, "window": "1m", "for": "10m"])
        let target = try #require(a["targets"]?.arrayValue?.first)
        #expect(target["model"] == "server-error" && target["state"] == "cooling_down" && target["calls"] == 2 && target["failures"] == 2)
        #expect((target["cooling_down_ms"]?.intValue ?? 0) > 500_000)
        #expect(items.first { $0["name"] == "b" }?["targets"]?.arrayValue?.first?["calls"] == 3)
        #expect(try await daemon.call("GET", "/v1/providers", token: userToken("ann")).status == 403)
        let metrics = String(decoding: try await daemon.call("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("genflow_provider_cooldowns_total") && metrics.contains("genflow_provider_skipped_total"), "\(metrics)")
    }
}

/// A pipeline of one `call_model` step on provider `a` with `model` (`steps` of them, `one`, `two`, …).
private func pricedPipeline(model: String = "ok", steps: [String] = ["generate"], retry: String = "") -> String {
    "name: priced\nsteps:\n" + steps.map { step in
        "  - id: \(step)\n    stage: call_model\n    with: {provider: a, model: \(model), output: canvas_objects}\n" + (retry.isEmpty ? "" : "    retry: \(retry)\n")
    }.joined()
}

/// Provider `a` on `server`, `model` priced at $0.15 / $0.60 a million tokens: $0.0000198 a call of the local server.
private func pricedProvider(_ server: FakeServer, model: String = "ok") -> [String: ProviderConfig] {
    ["a": ProviderConfig(kind: "openai", settings: ["base_url": .string(server.url("/v1"))], pricing: [model: ModelPrice(["input_per_mtok": 0.15, "output_per_mtok": 0.6])])]
}

@Suite("Prices and costs", .serialized, .timeLimit(.minutes(3)))
struct CostTests {
    @Test("a priced model's answer carries its cost; the job sums its steps' costs (REST, job.completed, /v1/stats by pipeline, user and model)")
    func chatCosts() async throws {
        let server = try FakeServer()
        let harness = try await Harness.make(pipelines: ["priced": pricedPipeline(steps: ["one", "two"])], providers: pricedProvider(server))
        let job = try await runOnce(harness, "priced", input: [:])
        #expect(job.status == .completed, "\(String(describing: job.error))")
        // 12 prompt tokens at $0.15 and 30 completion tokens at $0.60 a million: $0.0000198 a call.
        #expect(job.result?["one"]?["cost"] == "0.0000198" && job.result?["two"]?["cost"] == "0.0000198")
        #expect(job.cost == Money("0.0000396"))
        #expect(job.json()["cost"] == "0.0000396")
        let completed = try await harness.events(job.id).first { $0.type == "job.completed" }
        #expect(completed?.data["cost"] == "0.0000396")
        let stats = try await harness.store.read { try $0.jobStats() }.json
        #expect(stats["cost"]?["total"] == "0.0000396" && stats["cost"]?["by_pipeline"]?["priced"] == "0.0000396")
        #expect(stats["cost"]?["by_user"]?["ann"] == "0.0000396" && stats["cost"]?["by_model"]?["a ok"] == "0.0000396")
    }

    @Test("images are priced per image, by size and quality, when the provider reports no usage")
    func imageCosts() async throws {
        let server = try FakeServer()
        let yaml = try shipped("image-generation").replacingOccurrences(of: "model: gpt-image-1", with: "model: no-usage")
        let prices = ModelPrice(["per_image": ["1024x1536": ["hd": 0.12, "default": 0.08], "default": 0.04]])
        let harness = try await Harness.make(pipelines: ["image-generation": yaml], providers: [
            "default": ProviderConfig(kind: "openai", settings: ["base_url": .string(server.url("/v1"))], pricing: ["no-usage": prices]),
        ])
        let job = try await runOnce(harness, "image-generation", input: ["prompt": "a fox", "aspect_ratio": "9:16", "quality": "hd", "n": 2])
        #expect(job.status == .completed, "\(String(describing: job.error))")
        #expect(job.result?["generate"]?["cost"] == "0.24" && job.cost == Money("0.24"))
    }
}

@Suite("Budgets through the daemon", .serialized, .timeLimit(.minutes(3)))
struct BudgetTests {
    @Test("limits.budget.per_user_daily: paid calls go on until the user's spend reaches the cap, then budget_exceeded, not retried; costs through the API")
    func dailyBudget() async throws {
        let server = try FakeServer()
        let yaml = pricedPipeline(retry: "{max_attempts: 3, initial_interval: 10ms}")
        let harness = try await Harness.make(pipelines: ["priced": yaml], providers: pricedProvider(server), inProcess: false)
        let config = """
            providers:
              a: {kind: openai, base_url: "\(server.url("/v1"))", pricing: {ok: {input_per_mtok: 0.15, output_per_mtok: 0.6}}}
            limits: {budget: {per_user_daily: 0.00003}}
            """
        let daemon = try await DaemonProcess(harness: harness, extraConfig: config)
        defer { daemon.stop() }
        let ann = userToken("ann")
        var jobs: [JSON] = []
        for _ in 0..<3 {
            let id = try #require(try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "priced"]).json["job"]?["id"]?.stringValue)
            jobs.append(try await daemon.finished(id, token: ann))
        }
        // $0.0000198 a call: after two the user has spent $0.0000396, past the $0.00003 cap.
        #expect(jobs.map { $0["status"] } == ["completed", "completed", "failed"])
        #expect(jobs.map { $0["cost"] } == ["0.0000198", "0.0000198", "0"])
        let error = jobs[2]["error"]
        #expect(error?["class"] == "budget_exceeded" && error?["message"]?.stringValue?.contains("per_user_daily ($0.00003)") == true, "\(String(describing: error))")
        #expect(jobs[2]["steps"]?.arrayValue?.first?["attempts"] == 1, "budget_exceeded is not retried")
        #expect(try await server.calls("ok") == 2)
        let stats = try await daemon.operatorCall("GET", "/v1/stats").json
        #expect(stats["cost"]?["by_user"]?["ann"] == "0.0000396")
        // Another user has a budget of their own.
        let bob = userToken("bob")
        let other = try #require(try await daemon.call("POST", "/v1/jobs", token: bob, body: ["pipeline": "priced"]).json["job"]?["id"]?.stringValue)
        #expect(try await daemon.finished(other, token: bob)["status"] == "completed")
    }
}

@Suite("Budgets across concurrent jobs", .serialized, .timeLimit(.minutes(3)))
struct ConcurrentBudgetTests {
    @Test("eight jobs of one user at once, each call 0.3 s: the budget holds for calls in flight, so the spend passes the cap by at most one call")
    func concurrentCalls() async throws {
        let server = try FakeServer()
        let harness = try await Harness.make(
            pipelines: ["priced": pricedPipeline(model: "sleep-0.3")], providers: pricedProvider(server, model: "sleep-0.3"),
            budget: SpendLimits(perUserDaily: Money("0.00003"))
        )
        let jobs = try await harness.running(harness.engine(workers: 8)) {
            var ids: [String] = []
            for _ in 0..<8 { ids.append(try await harness.submit("priced", user: "ann").id) }
            var finished: [Job] = []
            for id in ids { finished.append(try await harness.wait(for: id)) }
            return finished
        }
        let completed = jobs.filter { $0.status == .completed }
        // $0.0000198 a call, a cap of $0.00003: a second call may start once the first is checkpointed
        // ($0.0000198 < cap), a third never.
        #expect((1...2).contains(completed.count), "\(jobs.map(\.status))")
        #expect(jobs.filter { $0.status == .failed }.allSatisfy { $0.error?["class"] == "budget_exceeded" })
        #expect(try await server.calls("sleep-0.3") == completed.count)
        let holds = try await harness.query("SELECT count(*)::int AS n FROM genflow.spend_holds")
        #expect(holds.first?.decode("n", as: Int.self) == 0, "every hold ended with its call")
    }
}
