import Foundation
import GenflowConfig
import GenflowCore
import GenflowQueue
import GenflowTestHarness
import GenflowTestSupport
import Testing

@Suite("Traces over OTLP/HTTP", .serialized, .timeLimit(.minutes(3)))
struct TelemetryTests {
    @Test("a job is one trace (its id): root, run, a span per step attempt, model and HTTP calls under their steps; traceparent goes out; log lines carry the trace id")
    func jobTrace() async throws {
        let server = try FakeServer()
        let yaml = """
            name: traced
            steps:
              - id: flaky
                stage: test.step
                with: {fail_attempts: 1, fail_class: server_error, output: ok}
                # Long enough that the retry cannot come due before the run looks again, even on a
                # loaded machine (with 10 ms it once did in CI, and the retry ran in the first run);
                # the test makes it due once the job waits.
                retry: {max_attempts: 3, initial_interval: 60s, max_interval: 60s, jitter: 0}
              - id: ask
                stage: call_model
                with: {provider: remote, model: ok, prompt: "a flowchart with 2 steps"}
              - id: hook
                stage: http.request
                with: {method: POST, url: "\(server.url("/hook?key=secret"))", body: {answer: "{{steps.ask.output.text}}"}}
              - id: plugin
                stage: chaos.call
                with: {mode: ok, marker: /dev/null}
            """
        let harness = try await Harness.make(pipelines: ["traced": yaml], providers: [
            "remote": ProviderConfig.openai(baseURL: server.url("/v1"), apiKey: Secret("sk-test")),
        ], inProcess: false)
        let daemon = try await DaemonProcess(harness: harness, extraConfig: """
            providers: {remote: {kind: openai, base_url: "\(server.url("/v1"))", api_key: sk-test}}
            telemetry: {otlp_endpoint: "\(server.url(""))", service_name: genflow-test}
            """, plugins: FileManager.default.currentDirectoryPath + "/Tests/Fixtures/plugins", logLevel: "info")
        let submitted = try await daemon.call("POST", "/v1/jobs", token: userToken("ann"), body: ["pipeline": "traced"])
        let id = try #require(submitted.json["job"]?["id"]?.stringValue)
        try await harness.wait(for: id, [.waitingRetry])
        #expect(try await harness.store.write { try $0.runNow(jobID: id) })
        let finished = try await harness.wait(for: id)
        #expect(finished.status == .completed)
        #expect(await daemon.terminate() == 0, "the exporter sends what is left at shutdown")

        let spans = try await server.json("/traces").arrayValue ?? []
        let trace = id.replacingOccurrences(of: "-", with: "").lowercased()
        #expect(!spans.isEmpty && spans.allSatisfy { $0["traceId"]?.stringValue == trace }, "every span in the job's trace: \(spans)")
        func named(_ name: String) -> [JSON] { spans.filter { $0["name"]?.stringValue == name } }
        func attribute(_ span: JSON?, _ key: String) -> JSON? {
            span?["attributes"]?.arrayValue?.first { $0["key"]?.stringValue == key }?["value"]
        }

        let root = try #require(named("job traced").first)
        #expect(root["spanId"]?.stringValue == String(trace.suffix(16)) && root["parentSpanId"] == nil)
        #expect(attribute(root, "genflow.status")?["stringValue"] == "completed")
        // Two runs: the first ends when the job waits for its retry in the database.
        let runs = named("job.run")
        #expect(runs.count == 2 && runs.allSatisfy { $0["parentSpanId"] == root["spanId"] })
        #expect(attribute(runs.first, "genflow.pipeline")?["stringValue"] == "traced")
        #expect(attribute(runs.first, "genflow.pipeline_version")?["stringValue"]?.stringValue?.count == 64)
        let runIDs = Set(runs.compactMap { $0["spanId"] })

        let flaky = named("step flaky")
        #expect(flaky.count == 2 && Set(flaky.compactMap { $0["parentSpanId"] }) == runIDs, "one attempt in each run")
        #expect(flaky.compactMap { attribute($0, "genflow.error_class")?["stringValue"]?.stringValue } == ["server_error"])
        #expect(Set(flaky.compactMap { attribute($0, "genflow.attempt")?["intValue"]?.stringValue }) == ["1", "2"])
        let ask = try #require(named("step ask").first)
        #expect(attribute(ask, "genflow.stage")?["stringValue"] == "call_model")
        let model = try #require(named("model remote").first)
        #expect(model["parentSpanId"] == ask["spanId"] && model["kind"] == 3)
        #expect(attribute(model, "genflow.model")?["stringValue"] == "ok")
        #expect(attribute(model, "genflow.tokens.output")?["intValue"] != nil)
        let hook = try #require(named("step hook").first)
        let http = try #require(named("http POST").first)
        #expect(http["parentSpanId"] == hook["spanId"])
        #expect(attribute(http, "http.response.status_code")?["intValue"] == "200")
        #expect(attribute(http, "url.full")?["stringValue"]?.stringValue?.contains("secret") == false, "no query string in traces")
        #expect(root["resource"]?["attributes"]?.arrayValue?.contains { $0["key"] == "service.name" && $0["value"]?["stringValue"] == "genflow-test" } == true)

        // The provider and the hook saw the span that called them as their parent.
        let seen = try await server.json("/seen").arrayValue ?? []
        let chat = seen.first { $0["path"]?.stringValue?.hasSuffix("/chat/completions") == true }
        #expect(chat?["traceparent"]?.stringValue == "00-\(trace)-\(model["spanId"]?.stringValue ?? "")-01")
        let posted = seen.first { $0["path"]?.stringValue?.hasPrefix("/hook") == true }
        #expect(posted?["traceparent"]?.stringValue == "00-\(trace)-\(http["spanId"]?.stringValue ?? "")-01")
        #expect(seen.filter { $0["path"] == "/v1/traces" }.allSatisfy { $0["traceparent"] == .null }, "the exporter's own calls are not traced")

        // The plugin's invoke carries the span of the plugin call.
        let plugin = try #require(named("plugin chaos.call").first)
        #expect(plugin["parentSpanId"] == named("step plugin").first?["spanId"])
        #expect(attribute(plugin, "genflow.plugin")?["stringValue"] == "chaos")
        #expect(finished.result?["plugin"]?["context"]?["traceparent"]?.stringValue == "00-\(trace)-\(plugin["spanId"]?.stringValue ?? "")-01")

        // Log lines inside the job's trace name it.
        let retryLine = daemon.output.split(separator: "\n").first { $0.contains("retry scheduled") }
        #expect(retryLine?.contains("trace_id=\(trace)") == true, "\(retryLine ?? "no retry line")")
    }
}
