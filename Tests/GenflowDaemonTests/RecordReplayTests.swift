import Foundation
import GenflowCore
import GenflowTestSupport
import GenflowTestHarness
import Testing

/// Runs the `genflow` binary beside the test bundle; returns its exit status and its output.
private func genflow(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
    let run = try await runProgram(
        genflowBinary, arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, mergingOutput: true
    )
    return (run.status, run.stdout)
}

@Suite("Recording a real run and replaying it in a pipeline test", .timeLimit(.minutes(3)))
struct RecordReplayTests {
    @Test("genflow submit --record writes the provider's replies; a test case with replies_from reproduces the run without calling it")
    func recordAndReplay() async throws {
        let server = try FakeServer()
        let pipeline = try String(contentsOfFile: "pipelines/canvas-generation.yaml", encoding: .utf8)
        let harness = try await Harness.make(pipelines: ["canvas-generation": pipeline], inProcess: false)
        let daemon = try await DaemonProcess(harness: harness, extraConfig: """
            providers: {default: {kind: openai, base_url: "\(server.url("/v1"))", api_key: sk-test}}
            """)
        defer { daemon.stop() }
        #expect(try await daemon.operatorCall("POST", "/v1/tokens/credit", body: ["user_id": "ann", "amount": 1_000]).status == 201)

        // A real run through the daemon against the local OpenAI-compatible server, recorded.
        let recording = harness.directory + "-recorded.json"
        let environment = ["DATABASE_URL": harness.url, "GENFLOW_PIPELINES_DIR": harness.directory, "GENFLOW_PLUGINS_DIR": harness.directory + "-no-plugins"]
        let submitted = try await genflow(["submit", "canvas-generation", "--input", #"{"instructions": "a red square"}"#, "--user", "ann",
                                     "--record", recording, "--config", daemon.config], environment: environment)
        #expect(submitted.status == 0, "\(submitted.output)")
        #expect(submitted.output.contains("recorded the replies of 1 steps to \(recording)"))
        let recorded = try JSON(parsing: try #require(FileManager.default.contents(atPath: recording)))
        let reply = try #require(recorded["replies"]?["generate"]?.arrayValue?.first)
        #expect(reply["text"]?.stringValue?.contains("\"r1\"") == true && reply["usage"]?["total_tokens"] == 42, "\(recorded)")
        let calls = try await server.calls("gpt-4o-mini")
        #expect(calls == 1)

        // The recorded run, replayed by a test case: same objects, same debit, no call to the server.
        let test = harness.directory + "-replay.test.yaml"
        try """
            pipeline: \(harness.directory)/canvas-generation.yaml
            cases:
              - name: replays the recorded run
                input: {instructions: "a red square"}
                replies_from: \(recording)
                expect:
                  status: completed
                  canvas: {count: 1, types: [rectangle]}
                  events: [step.started, canvas.objects, job.completed]
                  debited: 42
            """.write(toFile: test, atomically: true, encoding: .utf8)
        let replayed = try await genflow(["test", test, "--config", daemon.config], environment: ["GENFLOW_PLUGINS_DIR": harness.directory + "-no-plugins"])
        #expect(replayed.status == 0, "\(replayed.output)")
        #expect(replayed.output.contains("1 passed, 0 failed"))
        #expect(try await server.calls("gpt-4o-mini") == calls, "the replay called no model")
    }
}
