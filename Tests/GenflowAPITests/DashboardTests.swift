import Foundation
import GenflowConfig
import GenflowCore
import GenflowTestSupport
import GenflowTestHarness
import Testing

private let repository = FileManager.default.currentDirectoryPath

/// Where tests leave files for people to look at (screenshots): `.build/test-artifacts`, or
/// `GENFLOW_TEST_ARTIFACTS`.
let testArtifacts = ProcessInfo.processInfo.environment["GENFLOW_TEST_ARTIFACTS"] ?? "\(repository)/.build/test-artifacts"

@Suite("The dashboard", .serialized, .timeLimit(.minutes(3)))
struct DashboardTests {
    @Test("GET / serves the page, its script and style sheet from the daemon, with a content security policy; nothing else is served")
    func files() async throws {
        let harness = try await Harness.make(pipelines: [:], inProcess: false)
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        let page = try await daemon.call("GET", "/")
        let html = String(decoding: page.body, as: UTF8.self)
        #expect(page.status == 200 && page.headers["content-type"] == "text/html; charset=utf-8")
        #expect(html.contains("/dashboard/dashboard.js") && html.contains("<canvas id=\"canvas\""))
        #expect(!html.contains("src=\"http") && !html.contains("href=\"http"), "no CDN: every file comes from the daemon")
        #expect(page.headers["content-security-policy"]?.contains("default-src 'self'") == true)
        let script = try await daemon.call("GET", "/dashboard/dashboard.js")
        #expect(script.status == 200 && script.headers["content-type"]?.hasPrefix("text/javascript") == true && script.body.count > 10_000)
        #expect(try await daemon.call("GET", "/dashboard/dashboard.css").headers["content-type"]?.hasPrefix("text/css") == true)
        for path in ["/dashboard/missing.js", "/dashboard/..%2FDashboard.swift", "/dashboard/"] {
            #expect(try await daemon.call("GET", path).status == 404, "\(path)")
        }
        #expect(try await daemon.call("POST", "/").status == 405)
    }

    @Test("make run's welcome: with development secrets the daemon prints the dashboard's address with a token for dev, credited once")
    func developmentWelcome() async throws {
        let harness = try await Harness.make(pipelines: [:], inProcess: false)
        for start in 1...2 {
            let daemon = try await DaemonProcess(harness: harness, developmentAuth: true)
            defer { daemon.stop() }
            // Printed just after the ready line.
            var line: Substring?
            for _ in 0..<500 where line == nil {
                line = daemon.output.split(separator: "\n").first { $0.contains("/?token=") }
                try await Task.sleep(for: .milliseconds(20))
            }
            let address = try #require(line, "\(daemon.output)").trimmingCharacters(in: .whitespaces)
            #expect(address.hasPrefix("http://127.0.0.1:\(daemon.port)/?token="))
            let token = String(address.split(separator: "=", maxSplits: 1)[1])
            let balance = try await daemon.call("GET", "/v1/tokens/balance", token: token).json
            #expect(balance == ["user_id": "dev", "balance": 10_000], "start \(start): \(balance)")
            #expect(try await daemon.call("GET", "/", token: nil).status == 200)
        }
    }

    /// Headless Chromium (Debian's `chromium`) driven over the DevTools protocol by
    /// Tests/Fixtures/dashboard_browser.py: it types and clicks like a user and reports what the page shows.
    @Test("in a real browser: submit a canvas job from the page; it completes, the canvas is drawn, the balance drops by the debit")
    func browser() async throws {
        let chromium = "/usr/bin/chromium"
        try #require(FileManager.default.isExecutableFile(atPath: chromium), "chromium is not installed: run scripts/install-deps.sh")
        let harness = try await Harness.make(pipelines: ["canvas-generation": try String(contentsOfFile: "pipelines/canvas-generation.yaml", encoding: .utf8)], inProcess: false)
        // Slow enough chunks that the page is seen mid-job, with some objects drawn.
        let daemon = try await DaemonProcess(harness: harness, extraConfig: "providers: {default: {kind: offline, delay: 150ms}}")
        defer { daemon.stop() }
        let credit = try await daemon.operatorCall("POST", "/v1/tokens/credit", body: ["user_id": "browser", "amount": 1_000])
        #expect(credit.status == 201)

        let seen = try await browse(daemon.url("/"), token: userToken("browser"), instructions: "a house with a sun and two trees")

        let job = try #require(seen["job_id"]?.stringValue)
        #expect(seen["status"] == "completed", "\(seen)")
        let document = try await daemon.call("GET", "/v1/jobs/\(job)", token: userToken("browser")).json
        #expect(document["status"] == "completed" && document["pipeline"] == "canvas-generation")
        #expect((seen["drawn_pixels"]?.intValue ?? 0) > 2_000, "the canvas has drawn objects: \(seen)")
        #expect(seen["steps_shown"] == ["balance", "prompt", "record", "generate", "objects", "save", "done", "debit"])

        // The balance shown moved by exactly the debit the ledger recorded for this job.
        let ledger = try await daemon.call("GET", "/v1/tokens/ledger", token: userToken("browser")).json["items"]?.arrayValue ?? []
        let debit = try #require(ledger.first { $0["job_id"]?.stringValue == job }?["change"]?.intValue)
        #expect(debit < 0)
        #expect(seen["balance_before"] == 1_000 && seen["balance_after"]?.intValue == 1_000 + debit, "\(seen)")
        #expect(seen["balance_change_shown"]?.stringValue == "−\(-debit)")

        #expect(seen["connection"] == "live" && seen["token_in_address_bar"] == false)
        // Dropped, it showed so, came back by itself with `since`, and missed nothing of a job that
        // was queued while it was away.
        let reconnect = try #require(seen["reconnect"])
        #expect(reconnect["states"] == ["reconnecting", "connecting", "live"], "\(reconnect)")
        #expect(reconnect["url"]?.stringValue?.contains("since=") == true)
        #expect(reconnect["event_types"]?.arrayValue?.first == "job.queued" && reconnect["event_types"]?.arrayValue?.last == "job.completed", "\(reconnect)")
        let shots = seen["screenshots"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(shots.contains { $0.hasSuffix("dashboard-completed.png") })
        for shot in shots {
            let bytes = try #require(FileManager.default.contents(atPath: shot))
            #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) && bytes.count > 20_000, "\(shot) is a PNG screenshot")
        }
    }

    @Test("in a real browser: a pipeline with branches shows its steps by level, two side by side, and a running step's progress bar")
    func branches() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"), "chromium is not installed: run scripts/install-deps.sh")
        let harness = try await Harness.make(pipelines: ["illustrated-canvas": try String(contentsOfFile: "pipelines/illustrated-canvas.yaml", encoding: .utf8)], inProcess: false)
        // Chunks slow enough that a loaded machine's browser still sees a running step's bar.
        let daemon = try await DaemonProcess(harness: harness, extraConfig: "providers: {default: {kind: offline, delay: 1s}}")
        defer { daemon.stop() }
        #expect(try await daemon.operatorCall("POST", "/v1/tokens/credit", body: ["user_id": "browser", "amount": 1_000]).status == 201)

        let seen = try await browse(daemon.url("/"), token: userToken("browser"), instructions: "a lighthouse", pipeline: "illustrated-canvas")

        #expect(seen["status"] == "completed", "\(seen)")
        #expect(seen["levels_shown"] == [
            "level 1", "level 2", "level 3 · 2 side by side", "level 4 · 2 side by side", "level 5", "level 6", "level 7", "level 8",
        ], "\(seen)")
        #expect(seen["steps_shown"] == ["balance", "prompt", "record", "picture", "generate", "picture_saved", "objects", "save", "done", "debit"])
        #expect((seen["step_bars_seen"]?.intValue ?? 0) >= 1, "a running step showed its progress: \(seen)")
    }

    @Test("in a real browser, an operator's panels: the providers' targets with their calls and state, and the jobs' cost")
    func operatorPanels() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"), "chromium is not installed: run scripts/install-deps.sh")
        let server = try FakeServer()
        let yaml = """
            name: priced
            steps:
              - id: generate
                stage: call_model
                with: {provider: a, model: ok, output: canvas_objects, fallbacks: [{model: server-error}]}
            """
        let harness = try await Harness.make(pipelines: ["priced": yaml], providers: ["a": .openai(baseURL: server.url("/v1"))], inProcess: false)
        let config = """
            providers:
              a: {kind: openai, base_url: "\(server.url("/v1"))", cooldown: {}, pricing: {ok: {input_per_mtok: 0.15, output_per_mtok: 0.6}}}
            """
        let daemon = try await DaemonProcess(harness: harness, extraConfig: config)
        defer { daemon.stop() }
        let job = try await harness.submit("priced", user: "ann")
        #expect(try await harness.wait(for: job.id).status == .completed)

        let seen = try await browse(daemon.url("/?user=ann"), token: DaemonProcess.adminToken, panelsOnly: true)
        let rows = seen["providers"]?.arrayValue?.compactMap { $0.arrayValue?.compactMap(\.stringValue) } ?? []
        #expect(rows.contains(["a (openai)", "ok", "ok", "1 / 0"]), "\(rows)")
        #expect(seen["cost"] == "$0.0000198", "\(seen)")
    }

    /// What Tests/Fixtures/dashboard_browser.py reports of `page` signed in with `token`: after
    /// submitting `instructions` from the page, or (`panelsOnly`) an operator's panels alone.
    func browse(_ page: String, token: String, instructions: String = "-", pipeline: String = "canvas-generation", panelsOnly: Bool = false) async throws -> JSON {
        var environment = ProcessInfo.processInfo.environment
        environment["DASHBOARD_PIPELINE"] = pipeline
        if panelsOnly { environment["DASHBOARD_PANELS"] = "1" }
        let run = try await runProgram(
            "/usr/bin/python3", ["Tests/Fixtures/dashboard_browser.py", page, token, testArtifacts + "/dashboard", instructions], environment: environment
        )
        try #require(run.status == 0, "the browser run failed: \(run.stderr)")
        return try JSON(parsing: run.stdout)
    }
}
