import Foundation
import GenflowCore
import GenflowHTTPClient
import GenflowProviders
import GenflowTestSupport
import Synchronization
import Testing

@Suite("OpenAI-compatible provider against a local server that speaks its wire format")
struct OpenAIProviderTests {
    func chat(_ model: String, stream: Bool = false, timeout: Duration = .seconds(10), expectsJSON: Bool = true,
              on server: FakeServer, client: HTTPClient, onText: @escaping @Sendable (String) -> Void = { _ in }) async throws(StepError) -> ChatResult {
        let provider = OpenAIProvider(client: client, baseURL: server.url("/v1"), apiKey: Secret("sk-test"))
        let request = ChatRequest(model: model, messages: [["role": "user", "content": "draw"]], stream: stream, expectsJSON: expectsJSON)
        return try await provider.chat(request, timeout: timeout, onText: onText)
    }

    func failure(_ model: String, stream: Bool = false, timeout: Duration = .seconds(10), server: FakeServer, client: HTTPClient) async -> StepError? {
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
        let client = HTTPClient()
        defer { client.close() }
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
        let client = HTTPClient()
        defer { client.close() }
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
        let refused = OpenAIProvider(client: client, baseURL: "http://127.0.0.1:1/v1", apiKey: nil)
        do {
            _ = try await refused.chat(ChatRequest(model: "ok", messages: [], stream: false), timeout: .seconds(2))
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
