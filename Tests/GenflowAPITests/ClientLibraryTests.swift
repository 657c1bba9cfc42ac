import Foundation
import GenflowCore
import GenflowQueue
import GenflowTestHarness
import Testing

private let slow3 = """
    name: slow3
    steps:
      - id: first
        stage: test.step
        with: {output: one}
      - id: slow
        stage: test.step
        with: {sleep: 1500ms, output: two}
      - id: last
        stage: test.step
        with: {output: three}
    """

/// clients/js/genflow.js in headless Chromium, on a page of another origin that uses the module
/// alone (Tests/Fixtures/client_browser.py drives it). Part of the dashboard's serialized suite, so
/// that two browsers never share the machine's two cores: the dashboard's tests must see a job
/// while it runs.
extension DashboardTests {
    @Test("genflow.js follows jobs across a daemon killed and restarted, a dropped socket and expired tokens, each event once and in order; its REST helpers")
    func followsJobs() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"), "chromium is not installed: run scripts/install-deps.sh")
        let harness = try await Harness.make(pipelines: ["slow3": slow3])
        // A fixed port, so the restarted daemon is where the page's client reconnects; no clock skew,
        // so a socket closes the moment its 4-second token expires.
        let port = try freePort()
        var daemon = try await DaemonProcess(harness: harness, lease: "1s", clockSkew: "0s", listen: "127.0.0.1:\(port)")
        let page = try WebSocketClient(script: "Tests/Fixtures/client_browser.py", arguments: ["http://127.0.0.1:\(port)", DaemonProcess.jwtSecret, "ann", "4"])
        defer {
            page.close()
            daemon.stop()
        }
        #expect(await page.next(timeout: .seconds(60))?["ready"] == true)

        // 1. A job whose daemon is killed mid-step: the next daemon takes it over after the lease.
        page.send(["cmd": "submit", "pipeline": "slow3"])
        let first = try #require(await page.next()?["job_id"]?.stringValue)
        try await harness.waitForRuns(of: first, "the slow step running") { $0.contains { $0.stepID == "slow" && $0.status == .running } }
        await daemon.kill()
        daemon = try await DaemonProcess(harness: harness, lease: "1s", clockSkew: "0s", listen: "127.0.0.1:\(port)")
        try await expectWhole(first, on: page, harness: harness)

        // 2. A socket dropped under the client, then a job.
        page.send(["cmd": "drop"])
        #expect(await page.next()?["error"] == nil)
        page.send(["cmd": "submit", "pipeline": "slow3"])
        let second = try #require(await page.next()?["job_id"]?.stringValue)
        try await expectWhole(second, on: page, harness: harness)

        // 3. By now the first token has expired: the socket was closed with 4401 and the client
        // asked its token function again; a job submitted after that is followed whole too.
        page.send(["cmd": "submit", "pipeline": "slow3"])
        let third = try #require(await page.next()?["job_id"]?.stringValue)
        try await expectWhole(third, on: page, harness: harness)
        // Every token lives 4 s: whatever the timing of the steps above, the open socket's token
        // expires within 4 s of now at the latest (a loaded machine may not have got there yet).
        var log: JSON = [:]
        var closes: [Int] = []
        for _ in 0..<30 where !closes.contains(4401) {
            page.send(["cmd": "log"])
            log = try #require(await page.next())
            closes = (log["states"]?.arrayValue ?? []).compactMap { $0["code"]?.intValue }
            if !closes.contains(4401) { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(closes.contains(4401) && closes.contains(1006), "a token expiry and the killed daemon: \(closes)")
        #expect((log["token_fetches"]?.intValue ?? 0) >= 2, "\(log)")
        let ids = (log["events"]?.arrayValue ?? []).compactMap { $0["id"]?.intValue }
        #expect(Set(ids).count == ids.count, "no event delivered twice: \(ids)")

        // 4. REST helpers: a job, a page of history, the balance, an error as GenflowError.
        page.send(["cmd": "rest", "job_id": .string(first)])
        let rest = try #require(await page.next())
        #expect(rest["job"]?["status"] == "completed" && rest["listed"]?.arrayValue?.count == 3, "\(rest)")
        #expect(rest["balance"]?["user_id"] == "ann")
        #expect(rest["cancel_error"] == ["name": "GenflowError", "status": 409, "code": "not_cancellable"])
    }

    /// The page received every stored event of `job`, once each, in the stored order.
    private func expectWhole(_ job: String, on page: WebSocketClient, harness: Harness) async throws {
        page.send(["cmd": "wait_end", "job_id": .string(job)])
        let answer = try #require(await page.next(timeout: .seconds(90)))
        let received = (answer["events"]?.arrayValue ?? []).compactMap { $0["id"]?.intValue }
        let stored = try await harness.events(job).map { Int($0.id) }
        #expect(received == stored, "job \(job): \(answer)")
    }
}
