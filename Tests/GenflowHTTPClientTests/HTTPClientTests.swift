import Foundation
import GenflowHTTPClient
import GenflowTestSupport
import Synchronization
import Testing

@Suite("HTTP client on libcurl multi", .timeLimit(.minutes(3)))
struct HTTPClientTests {
    @Test("GET and POST against a local server: status, headers, body")
    func basics() async throws {
        let server = try FakeServer()
        let client = HTTPClient()
        defer { client.close() }
        let hello = try await client.perform(HTTPRequest(url: server.url("/hello")))
        #expect(hello.status == 200)
        #expect(hello.headers["content-type"] == "text/plain")
        #expect(String(decoding: hello.body, as: UTF8.self) == "hello")
        let posted = try await client.perform(HTTPRequest(
            method: "POST", url: server.url("/echo"), headers: [("Content-Type", "application/json")], body: Array(#"{"a":1}"#.utf8)
        ))
        let echo = try JSONSerialization.jsonObject(with: Data(posted.body)) as? [String: Any]
        #expect(echo?["body"] as? String == #"{"a":1}"#)
        #expect(echo?["content_type"] as? String == "application/json")
        let limited = try await client.perform(HTTPRequest(url: server.url("/status/429?retry_after=7")))
        #expect(limited.status == 429)
        #expect(limited.headers["retry-after"] == "7")
    }

    @Test("a handle used again carries nothing of its last request: no body, no headers, no HEAD")
    func handlesReused() async throws {
        let server = try FakeServer()
        let client = HTTPClient()
        defer { client.close() }
        // One request at a time: each takes the handle the last one gave back.
        for _ in 0..<3 {
            let posted = try await client.perform(HTTPRequest(
                method: "POST", url: server.url("/echo"), headers: [("Content-Type", "application/json"), ("X-Once", "1")], body: Array(#"{"a":1}"#.utf8)
            ))
            #expect((try JSONSerialization.jsonObject(with: Data(posted.body)) as? [String: Any])?["length"] as? Int == 7)
            let bare = try JSONSerialization.jsonObject(with: Data(try await client.perform(HTTPRequest(method: "PUT", url: server.url("/echo"))).body)) as? [String: Any]
            #expect(bare?["length"] as? Int == 0)
            #expect(bare?["content_type"] is NSNull)
            #expect((bare?["headers"] as? [String: String])?["X-Once"] == nil)
            _ = try await client.perform(HTTPRequest(method: "HEAD", url: server.url("/hello")))
            let hello = try await client.perform(HTTPRequest(url: server.url("/hello")))
            #expect(String(decoding: hello.body, as: UTF8.self) == "hello")
        }
    }

    @Test("a streamed body arrives in pieces as it is sent")
    func streaming() async throws {
        let server = try FakeServer()
        let client = HTTPClient()
        defer { client.close() }
        let pieces = Mutex<[String]>([])
        let response = try await client.perform(HTTPRequest(url: server.url("/stream?n=5"))) { bytes in
            pieces.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) }
        }
        #expect(String(decoding: response.body, as: UTF8.self) == (0..<5).map { "data: \($0)\n\n" }.joined())
        #expect(pieces.withLock { $0.count } >= 2, "the stream came in one piece")
    }

    @Test("timeouts, refused connections and cut bodies are classified")
    func failures() async throws {
        let server = try FakeServer()
        let client = HTTPClient()
        defer { client.close() }
        do {
            _ = try await client.perform(HTTPRequest(url: server.url("/slow?ms=3000"), timeout: .milliseconds(300)))
            Issue.record("expected a timeout")
        } catch {
            #expect(error.kind == .timeout)
        }
        do {
            _ = try await client.perform(HTTPRequest(url: "http://127.0.0.1:1/", connectTimeout: .seconds(2)))
            Issue.record("expected a refusal")
        } catch {
            #expect(error.kind == .network)
        }
        do {
            _ = try await client.perform(HTTPRequest(url: server.url("/cut")))
            Issue.record("expected a cut body")
        } catch {
            #expect(error.kind == .network)
        }
    }

    @Test("callers that each send one request after another keep their connections, whichever multi handle a request joins")
    func connectionsReused() async throws {
        let server = try FakeServer()
        let client = HTTPClient()
        defer { client.close() }
        let callers = 32
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    for round in 0..<4 {
                        // Staggered, so that requests end (and the next ones start) one at a time.
                        let milliseconds = 40 + (caller * 7 + round * 13) % 50
                        _ = try await client.perform(HTTPRequest(url: server.url("/slow?ms=\(milliseconds)")))
                    }
                }
            }
            try await group.waitForAll()
        }
        // `json` asks on a connection of its own, counted too.
        let accepted = try await server.json("/connections")["accepted"]?.intValue
        #expect(accepted == callers + 1)
    }

    @Test("200 requests in flight at once on one curl thread, and a cancelled one stops")
    func concurrency() async throws {
        let server = try FakeServer()
        let client = HTTPClient()
        defer { client.close() }
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<200 {
                group.addTask { try await client.perform(HTTPRequest(url: server.url("/slow?ms=300"))).status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.count == 200 && statuses.allSatisfy { $0 == 200 })
        let task = Task { try await client.perform(HTTPRequest(url: server.url("/slow?ms=10000"))) }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        let result = await task.result
        guard case .failure(let error as HTTPError) = result else {
            Issue.record("expected a cancellation, got \(result)")
            return
        }
        #expect(error.kind == .cancelled)
    }
}
