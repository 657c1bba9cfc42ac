import Foundation
import GenflowCore
import GenflowHTTPClient
import GenflowProviders
import GenflowTestSupport
import Synchronization
import Testing

@Suite("OpenAI-compatible provider against a local server that speaks its wire format", .timeLimit(.minutes(3)))
struct OpenAIProviderTests {
    func chat(_ model: String, stream: Bool = false, timeout: Duration = .seconds(10), expectsJSON: Bool = true,
              on server: FakeServer, client: HTTPClientSource, onText: @escaping @Sendable (String) -> Void = { _ in }) async throws(StepError) -> ChatResult {
        let provider = OpenAIProvider(http: client, baseURL: server.url("/v1"), apiKey: Secret("sk-test"))
        let request = ChatRequest(model: model, messages: [["role": "user", "content": "draw"]], stream: stream, expectsJSON: expectsJSON)
        return try await provider.chat(request, timeout: timeout) { text, _ in onText(text) }
    }

    func failure(_ model: String, stream: Bool = false, timeout: Duration = .seconds(10), server: FakeServer, client: HTTPClientSource) async -> StepError? {
        do {
            _ = try await chat(model, stream: stream, timeout: timeout, on: server, client: client)
            return nil
        } catch {
            return error
        }
    }

    @Test("a JSON reply and a streamed reply with usage and [DONE] give the same text")
    func replies() async throws {
        let server = try FakeServer()
        let client = HTTPClientSource()
        defer { client.client.close() }
        let plain = try await chat("ok", on: server, client: client)
        let pieces = Mutex<Int>(0)
        let streamed = try await chat("ok", stream: true, on: server, client: client) { _ in pieces.withLock { $0 += 1 } }
        #expect(plain.text == streamed.text)
        #expect(plain.text.contains("\"objects\""))
        #expect(streamed.usage == ["prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42])
        #expect(streamed.finishReason == "stop")
        #expect(pieces.withLock { $0 } > 2, "the text did not arrive piece by piece")
    }

    @Test("HTTP failures map to the error classes the retry policy knows")
    func errorMapping() async throws {
        let server = try FakeServer()
        let client = HTTPClientSource()
        defer { client.client.close() }
        let limited = await failure("rate-limit", server: server, client: client)
        #expect(limited?.errorClass == .rateLimited)
        #expect(limited?.retryAfter == .milliseconds(150))
        #expect(await failure("rate-limit-seconds", server: server, client: client)?.retryAfter == .seconds(2))
        #expect(await failure("server-error", server: server, client: client)?.errorClass == .serverError)
        #expect(await failure("auth", server: server, client: client)?.errorClass == .auth)
        #expect(await failure("bad", server: server, client: client)?.errorClass == .invalidRequest)
        #expect(await failure("missing", server: server, client: client)?.errorClass == .invalidRequest)
        #expect(await failure("garbage", server: server, client: client)?.errorClass == .serverError)
        #expect(await failure("length", server: server, client: client)?.errorClass == .outputInvalid)
        // A stream cut mid-way: curl sees the chunked body end early, a network failure (retried).
        let cut = await failure("cut", stream: true, server: server, client: client)
        #expect(cut?.errorClass == .network, "\(String(describing: cut))")
        #expect(cut.map { RetryPolicy.standard.isRetryable($0.errorClass) } == true)
        let inStream = await failure("error-event", stream: true, server: server, client: client)
        #expect(inStream?.errorClass == .serverError)
        #expect(inStream?.message.contains("overloaded") == true)
        #expect(await failure("slow", timeout: .milliseconds(500), server: server, client: client)?.errorClass == .timeout)
        let refused = OpenAIProvider(http: client, baseURL: "http://127.0.0.1:1/v1", apiKey: nil)
        do {
            _ = try await refused.chat(ChatRequest(model: "ok", messages: [], stream: false), timeout: .seconds(2)) { _, _ in }
            Issue.record("expected a network error")
        } catch {
            #expect(error.errorClass == .network)
        }
        // The retry policy then decides: a 429 waits what the server asked, an auth failure is final.
        let policy = RetryPolicy(maxAttempts: 5, jitter: 0)
        #expect(policy.decide(after: try #require(limited), attempt: 1, elapsed: .zero, random: 0.5) == .retry(after: .milliseconds(150)))
        #expect(policy.decide(after: StepError(.auth, "x"), attempt: 1, elapsed: .zero, random: 0.5) == .giveUp(.nonRetryable))
    }
}

@Suite("The built-in anthropic provider against a local server that speaks the Messages API", .timeLimit(.minutes(3)))
struct AnthropicProviderTests {
    func chat(_ model: String, stream: Bool, expectsJSON: Bool = false, on server: FakeServer, client: HTTPClientSource,
              onText: @escaping @Sendable (String) -> Void = { _ in }) async throws(StepError) -> ChatResult {
        let provider = AnthropicProvider.kind.make(["base_url": .string(server.url("/"))], secrets: ["api_key": Secret("sk-ant")], http: client)
        let request = ChatRequest(
            model: model, messages: [["role": "system", "content": "be brief"], ["role": "user", "content": "draw a cat"]], stream: stream,
            responseFormat: expectsJSON ? ["type": "json_object"] : nil, expectsJSON: expectsJSON
        )
        return try await provider.chat(request, timeout: .seconds(10)) { text, _ in onText(text) }
    }

    @Test("plain and streamed replies give the same text, usage in OpenAI's terms; system messages go in `system`")
    func replies() async throws {
        let server = try FakeServer()
        let client = HTTPClientSource()
        defer { client.client.close() }
        let plain = try await chat("claude-plain", stream: false, on: server, client: client)
        let pieces = Mutex<Int>(0)
        let streamed = try await chat("claude-streamed", stream: true, on: server, client: client) { _ in pieces.withLock { $0 += 1 } }
        #expect(plain.text == "echo: draw a cat" && streamed.text == plain.text)
        #expect(plain.usage == ["prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16] && streamed.usage == plain.usage)
        #expect(streamed.model == "claude-streamed" && streamed.finishReason == "stop")
        #expect(pieces.withLock { $0 } > 2, "the text did not arrive piece by piece")
        let sent = try await server.json("/last?model=claude-streamed")
        #expect(sent["version"] == "2023-06-01" && sent["key"] == "sk-ant")
        #expect(sent["request"]?["system"] == "be brief" && sent["request"]?["messages"]?.arrayValue?.count == 1)
        #expect(sent["request"]?["max_tokens"] == 4_096 && sent["request"]?["stream"] == true)
    }

    @Test("its failures take the same classes: 529 overloaded, 429 with retry-after-ms, an error event, a cut stream, max_tokens on JSON")
    func failures() async throws {
        let server = try FakeServer()
        let client = HTTPClientSource()
        defer { client.client.close() }
        func failure(_ model: String, stream: Bool = false, expectsJSON: Bool = false) async -> StepError? {
            do {
                _ = try await chat(model, stream: stream, expectsJSON: expectsJSON, on: server, client: client)
                return nil
            } catch {
                return error
            }
        }
        #expect(await failure("overloaded")?.errorClass == .serverError)
        let limited = await failure("rate-limit")
        #expect(limited?.errorClass == .rateLimited && limited?.retryAfter == .milliseconds(120))
        let inStream = await failure("error-event", stream: true)
        #expect(inStream?.errorClass == .serverError && inStream?.message.contains("Overloaded") == true)
        #expect(await failure("cut", stream: true)?.message.contains("message_stop") == true)
        #expect(await failure("max-tokens", stream: true, expectsJSON: true)?.errorClass == .outputInvalid)
        #expect(await failure("max-tokens", stream: false, expectsJSON: false) == nil)
    }
}
