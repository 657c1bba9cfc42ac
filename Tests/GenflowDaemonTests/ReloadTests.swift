import Foundation
import GenflowCore
import GenflowTestHarness
import Testing

private func steps(_ names: [String], sleep: String) -> String {
    """
    name: sleepy
    steps:
    \(names.map { "  - id: \($0)\n    stage: test.step\n    with: {sleep: \(sleep)}" }.joined(separator: "\n"))
    """
}

extension DaemonProcess {
    /// Polls `GET /v1/pipelines/{name}` until its version is not `old` (a guard of 10 s).
    func waitForVersion(_ name: String, notEqual old: String?) async throws -> APIReply {
        for _ in 0..<1_000 {
            let reply = try await call("GET", "/v1/pipelines/\(name)", token: userToken("ann"))
            if reply.json["version"]?.stringValue != old { return reply }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("pipeline \(name) still at \(old ?? "none")")
        return try await call("GET", "/v1/pipelines/\(name)", token: userToken("ann"))
    }
}

@Suite("Live reload of pipelines", .serialized, .timeLimit(.minutes(3)))
struct ReloadTests {
    @Test("an edit while a job runs: the running job ends on its version, a job submitted after runs the new one")
    func editWhileRunning() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": steps(["a", "b", "c"], sleep: "400ms")])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        let token = userToken("ann")
        let old = try await daemon.call("GET", "/v1/pipelines/sleepy", token: token).json["version"]?.stringValue
        let first = try #require(try await daemon.call("POST", "/v1/jobs", token: token, body: ["pipeline": "sleepy"]).json["job"]?["id"]?.stringValue)
        try await harness.waitForRuns(of: first, "a first attempt") { !$0.isEmpty }

        try steps(["x", "y"], sleep: "1ms").write(toFile: harness.path("sleepy.yaml"), atomically: true, encoding: .utf8)
        let new = try await daemon.waitForVersion("sleepy", notEqual: old).json["version"]?.stringValue
        #expect(new != nil && new != old)
        let second = try #require(try await daemon.call("POST", "/v1/jobs", token: token, body: ["pipeline": "sleepy"]).json["job"]?["id"]?.stringValue)

        let firstJob = try await daemon.finished(first, token: token), secondJob = try await daemon.finished(second, token: token)
        #expect(firstJob["status"] == "completed" && firstJob["pipeline_version"] == old.map(JSON.string))
        #expect(firstJob["steps"]?.arrayValue?.map { $0["id"] } == ["a", "b", "c"], "the running job kept its version")
        #expect(secondJob["pipeline_version"] == new.map(JSON.string))
        #expect(secondJob["steps"]?.arrayValue?.map { $0["id"] } == ["x", "y"])
    }

    @Test("an invalid edit keeps the old version, reports file:line:col at /v1/pipelines and to operators; a deleted file unloads")
    func invalidEdit() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": steps(["a"], sleep: "1ms")])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        let token = userToken("ann")
        let watcher = try daemon.socket("token=\(DaemonProcess.adminToken)")
        defer { watcher.close() }
        #expect(await watcher.next()?["op"] == "_open")
        let old = try await daemon.call("GET", "/v1/pipelines/sleepy", token: token).json["version"]?.stringValue

        try steps(["a"], sleep: "1ms").replacingOccurrences(of: "stage: test.step", with: "stage: test.stpe")
            .write(toFile: harness.path("sleepy.yaml"), atomically: true, encoding: .utf8)
        let rejected = try #require(await watcher.messages(through: { $0["type"] == "pipeline.rejected" }, timeout: .seconds(10))?.last)
        let error = try #require(rejected["data"]?["error"]?.stringValue)
        #expect(error.contains("sleepy.yaml:4:12: error: unknown stage 'test.stpe'"), "\(error)")
        let listed = try await daemon.call("GET", "/v1/pipelines", token: token).json["items"]?.arrayValue?.first
        #expect(listed?["version"] == old.map(JSON.string), "the old version stays active")
        #expect(listed?["error"]?.stringValue?.contains("sleepy.yaml:4:12") == true)
        let job = try #require(try await daemon.call("POST", "/v1/jobs", token: token, body: ["pipeline": "sleepy"]).json["job"]?["id"]?.stringValue)
        #expect(try await daemon.finished(job, token: token)["pipeline_version"] == old.map(JSON.string))

        try FileManager.default.removeItem(atPath: harness.path("sleepy.yaml"))
        let removed = try #require(await watcher.messages(through: { $0["type"] == "pipeline.removed" }, timeout: .seconds(10))?.last)
        #expect(removed["data"]?["name"] == "sleepy")
        #expect(try await daemon.call("GET", "/v1/pipelines/sleepy", token: token).status == 404)
        #expect(try await daemon.call("POST", "/v1/jobs", token: token, body: ["pipeline": "sleepy"]).status == 404)
    }
}
