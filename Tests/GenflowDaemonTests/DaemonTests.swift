import Foundation
import GenflowConfig
import GenflowCore
import GenflowHTTPClient
import GenflowQueue
import GenflowRecords
import GenflowTestSupport
import GenflowTestHarness
import Testing

@Suite("Daemons as processes", .serialized, .timeLimit(.minutes(3)))
struct DaemonTests {
    @Test("SIGKILL while a step runs: another daemon reclaims the job after the lease and finishes it; completed steps do not run again")
    func crashRecovery() async throws {
        let record = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-crash-\(UUID().uuidString)").path
        let yaml = """
            name: crashy
            steps:
              - id: first
                stage: test.step
                with: {record: \(record), output: kept}
              - id: slow
                stage: test.step
                with: {record: \(record), sleep: 6s}
              - id: last
                stage: test.step
                with: {record: \(record), output: "{{steps.first.output.output}}"}
            """
        let harness = try await Harness.make(pipelines: ["crashy": yaml])
        let first = try await DaemonProcess(harness: harness, lease: "2s")
        let job = try await harness.submit("crashy")
        // Wait until the slow step is running on the first daemon, then kill it. Its row shows
        // `running` as its start commits, a moment before the stage writes its record line (under
        // a full test run's load the kill once fell between the two).
        try await harness.waitForRuns(of: job.id, "the slow step running") { $0.contains { $0.stepID == "slow" && $0.status == .running } }
        let deadline = ContinuousClock.now + .seconds(10)
        while (try? String(contentsOfFile: record, encoding: .utf8))?.contains(" slow ") != true && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        await first.kill()
        let second = try await DaemonProcess(harness: harness, lease: "2s")
        let finished = try await harness.wait(for: job.id)
        await second.terminate()

        #expect(finished.status == .completed)
        #expect(finished.rescues == 1)
        #expect(finished.result?["last"]?["output"] == "kept")
        let lines = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ")[1] }
        #expect(lines.filter { $0 == "first" }.count == 1, "the checkpointed step ran again: \(lines)")
        #expect(lines.filter { $0 == "slow" }.count == 2)
        #expect(lines.filter { $0 == "last" }.count == 1)
        let runs = try await harness.runs(job.id)
        #expect(runs.filter { $0.stepID == "slow" }.map(\.status) == [.interrupted, .completed])
    }

    @Test("a daemon killed after the model call: the restarted one resumes from the checkpoint, the model is not called again, tokens are debited once")
    func noSecondModelCall() async throws {
        let server = try FakeServer()
        let yaml = """
            name: paid
            steps:
              - id: generate
                stage: call_model
                with: {provider: remote, model: ok, output: canvas_objects}
              - id: pause
                stage: test.step
                with: {sleep: 3s}
              - id: objects
                stage: parse_canvas_objects
                with: {text: "{{steps.generate.output.text}}"}
              - id: debit
                stage: tokens.debit
                with: {amount: "{{steps.generate.output.usage.total_tokens}}", reason: generation}
            """
        let harness = try await Harness.make(pipelines: ["paid": yaml], providers: [
            "remote": ProviderConfig.openai(baseURL: server.url("/v1"), apiKey: Secret("sk-test")),
        ])
        let providers = "providers: {remote: {kind: openai, base_url: \"\(server.url("/v1"))\", api_key: sk-test}}"
        let first = try await DaemonProcess(harness: harness, lease: "2s", extraConfig: providers)
        let job = try await harness.submit("paid", user: "payer")
        try await harness.waitForRuns(of: job.id, "the pause step running") { $0.contains { $0.stepID == "pause" && $0.status == .running } }
        await first.kill()
        let second = try await DaemonProcess(harness: harness, lease: "2s", extraConfig: providers)
        let finished = try await harness.wait(for: job.id)
        await second.terminate()
        #expect(finished.status == .completed)
        let calls = try await server.calls("ok")
        #expect(calls == 1, "the model was called \(calls) times")
        let ledger = try await harness.store.read { try $0.ledger(userID: "payer") }
        #expect(ledger.map(\.change) == [-42])
        #expect(try await harness.runs(job.id).filter { $0.stepID == "generate" }.map(\.status) == [.completed])
    }

    @Test("kill -9 at random moments during canvas jobs: no saved canvas without its checkpoint, no checkpoint without its canvas, no debit twice, no event missing from replay")
    func killDuringCanvasJobs() async throws {
        let yaml = try String(contentsOfFile: "pipelines/canvas-generation.yaml", encoding: .utf8)
        let harness = try await Harness.make(pipelines: ["canvas-generation": yaml])
        let users = (0..<8).map { "painter\($0)" }
        try await harness.store.write { session in
            for user in users { _ = try session.recordTokens(userID: user, change: 100_000, reason: "credit", idempotencyKey: "credit:\(user)") }
        }
        let total = 96
        var jobs: [String] = []
        for index in 0..<total {
            jobs.append(try await harness.submit("canvas-generation", input: ["instructions": .string("a house with \(index) windows")], user: users[index % users.count]).id)
        }
        // Slow enough that every kill lands while jobs run: each chunk of the offline model's reply waits 50 ms.
        let providers = "providers: {default: {kind: offline, delay: 50ms}}"
        var random = SplitMix64(seed: 20261205)
        var runningAtKills: [Int] = []
        for _ in 0..<4 {
            let daemon = try await DaemonProcess(harness: harness, workers: 8, lease: "1s", extraConfig: providers)
            func running() async throws -> Int {
                try await harness.query(
                    "SELECT count(*)::int AS n FROM genflow.jobs WHERE status = 'running' AND lease_owner = $1", [daemon.owner]
                ).first?.decode("n", as: Int.self) ?? 0
            }
            // Its first claim may be slow on a loaded machine: the random moment counts from it.
            let deadline = ContinuousClock.now + .seconds(30)
            while try await running() == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            try await Task.sleep(for: .milliseconds(200 + Int(random.next() % 400)))
            runningAtKills.append(try await running())
            await daemon.kill()
            try await Self.expectCanvasInvariants(harness)
        }
        #expect(runningAtKills.allSatisfy { $0 > 0 }, "jobs the killed daemon was running, at each kill: \(runningAtKills)")
        let last = try await DaemonProcess(harness: harness, workers: 8, lease: "1s", extraConfig: providers)
        for id in jobs { #expect(try await harness.wait(for: id).status == .completed) }
        await last.terminate()
        try await Self.expectCanvasInvariants(harness)
        #expect(try await harness.query("SELECT count(*)::int AS n FROM genflow.jobs WHERE rescues > 0").first?.decode("n", as: Int.self) ?? 0 > 0,
                "no kill landed while a job ran")
        let debits = try await harness.query("SELECT count(*)::int AS n, count(DISTINCT job_id)::int AS jobs FROM genflow.token_ledger WHERE change < 0").first
        #expect(debits?.decode("n", as: Int.self) == total && debits?.decode("jobs", as: Int.self) == total)
        let steps = ["balance", "prompt", "record", "generate", "objects", "save", "done", "debit"]
        for id in jobs {
            let replay = try await harness.events(id)
            for step in steps {
                #expect(replay.filter { $0.type == "step.completed" && $0.step == step }.count == 1, "job \(id), step \(step)")
            }
            #expect(replay.filter { $0.type == "job.completed" }.count == 1)
            #expect(replay.filter { $0.type == "ai_generation_completed" }.count == 1, "the notify step's event, once")
            #expect(replay.filter { $0.type == "token_balance_updated" }.count == 1)
        }
    }

    /// What must hold at any moment, a kill included: a saved canvas and its step's checkpoint
    /// exist together or not at all, no job is debited twice, every checkpoint has its event.
    static func expectCanvasInvariants(_ harness: Harness) async throws {
        func count(_ sql: String) async throws -> Int {
            try await harness.query(sql).first?.decode("n", as: Int.self) ?? -1
        }
        #expect(try await count("""
            SELECT count(*)::int AS n FROM (SELECT DISTINCT job_id FROM genflow.canvas_objects) o
            WHERE NOT EXISTS (SELECT 1 FROM genflow.step_runs r WHERE r.job_id = o.job_id AND r.step_id = 'save' AND r.status = 'completed')
            """) == 0, "a canvas was saved without its step's checkpoint")
        #expect(try await count("""
            SELECT count(*)::int AS n FROM genflow.step_runs r WHERE r.step_id = 'save' AND r.status = 'completed'
              AND NOT EXISTS (SELECT 1 FROM genflow.canvas_objects o WHERE o.job_id = r.job_id)
            """) == 0, "a checkpoint of the save step has no canvas")
        #expect(try await count("""
            SELECT count(*)::int AS n FROM (SELECT job_id FROM genflow.token_ledger WHERE change < 0 GROUP BY job_id HAVING count(*) > 1) twice
            """) == 0, "a job was debited twice")
        #expect(try await count("""
            SELECT count(*)::int AS n FROM genflow.step_runs r WHERE r.status = 'completed' AND NOT EXISTS (
                SELECT 1 FROM genflow.event_log e WHERE e.job_id = r.job_id AND e.step = r.step_id AND e.type = 'step.completed')
            """) == 0, "a checkpoint without its step.completed event")
        #expect(try await count("""
            SELECT count(*)::int AS n FROM genflow.step_runs r WHERE r.step_id = 'done' AND r.status = 'completed' AND (
                SELECT count(*) FROM genflow.event_log e WHERE e.job_id = r.job_id AND e.type = 'ai_generation_completed') <> 1
            """) == 0, "the notify step's event is not there exactly once with its checkpoint")
        #expect(try await count("""
            SELECT count(*)::int AS n FROM genflow.event_log e WHERE e.type = 'ai_generation_completed' AND NOT EXISTS (
                SELECT 1 FROM genflow.step_runs r WHERE r.job_id = e.job_id AND r.step_id = 'done' AND r.status = 'completed')
            """) == 0, "the notify step's event without its checkpoint")
    }

    @Test("a job that kills its daemon again and again fails as poisoned instead of looping")
    func poisoned() async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-crash-marker-\(UUID().uuidString)").path
        let yaml = """
            name: crasher
            steps:
              - id: boom
                stage: test.step
                with: {crash: \(marker)}
            """
        let harness = try await Harness.make(pipelines: ["crasher": yaml])
        let job = try await harness.submit("crasher")
        // Pretend it was rescued too often already: the next takeover is one too many.
        _ = try await harness.query("UPDATE genflow.jobs SET rescues = 5 WHERE id = $1::uuid", [job.id])
        let daemon = try await DaemonProcess(harness: harness, lease: "1s")
        while daemon.process.isRunning { try await Task.sleep(for: .milliseconds(20)) }  // it crashed once
        let rescuer = try await DaemonProcess(harness: harness, lease: "1s")
        let finished = try await harness.wait(for: job.id)
        await rescuer.terminate()
        #expect(finished.status == .failed)
        #expect(finished.error?["reason"] == "poisoned")
        #expect(try await harness.runs(job.id).map(\.status) == [.interrupted])
    }

    @Test("two daemons on one database drain 2,000 jobs, every job completed exactly once")
    func twoDaemons() async throws {
        let record = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-two-\(UUID().uuidString)").path
        let yaml = """
            name: tiny
            steps:
              - id: only
                stage: test.step
                with: {record: \(record)}
            """
        let harness = try await Harness.make(pipelines: ["tiny": yaml])
        let pipeline = try #require(harness.catalog.pipeline(named: "tiny"))
        try await harness.store.write { session in
            try session.recordPipelineVersion(name: pipeline.name, version: pipeline.version, definition: pipeline.canonical, file: pipeline.file)
            for index in 0..<2_000 {
                _ = try session.submit(JobSubmission(pipeline: "tiny", pipelineVersion: pipeline.version, userID: "u\(index % 7)", input: [:]))
            }
        }
        let a = try await DaemonProcess(harness: harness, workers: 32)
        let b = try await DaemonProcess(harness: harness, workers: 32)
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            let left = try await harness.query("SELECT count(*) AS n FROM genflow.jobs WHERE status <> 'completed'").first?.decode("n", as: Int.self)
            if left == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        await a.terminate()
        await b.terminate()
        let completed = try await harness.query("SELECT count(*) AS n FROM genflow.jobs WHERE status = 'completed'").first?.decode("n", as: Int.self)
        #expect(completed == 2_000)
        let lines = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n").map { String($0.split(separator: " ")[0]) }
        #expect(lines.count == 2_000, "step runs recorded: \(lines.count)")
        #expect(Set(lines).count == 2_000, "some job ran twice")
        let runs = try await harness.query("SELECT count(*) AS n, count(DISTINCT job_id) AS jobs FROM genflow.step_runs").first
        #expect(runs?.decode("n", as: Int.self) == 2_000)
        #expect(runs?.decode("jobs", as: Int.self) == 2_000)
        // Both daemons took part.
        #expect(a.output.contains("genflow ready") && b.output.contains("genflow ready"))
    }

    @Test("with running_per_user 2, one user's 50 jobs never hold more than 2 workers, and another user's later job starts at once")
    func perUserCap() async throws {
        let yaml = """
            name: nap
            steps:
              - id: only
                stage: test.step
                with: {sleep: 150ms}
            """
        let harness = try await Harness.make(pipelines: ["nap": yaml])
        var heavy: [String] = []
        for _ in 0..<50 { heavy.append(try await harness.submit("nap", user: "heavy").id) }
        let daemon = try await DaemonProcess(harness: harness, workers: 10, runningPerUser: 2)
        var most = 0
        var light: String?
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            let row = try await harness.query("""
                SELECT count(*) FILTER (WHERE status = 'running' AND user_id = 'heavy') AS running,
                       count(*) FILTER (WHERE status <> 'completed') AS left FROM genflow.jobs
                """).first
            most = max(most, row?.decode("running", as: Int.self) ?? 0)
            if light == nil, (row?.decode("left", as: Int.self) ?? 0) < 45 {
                light = try await harness.submit("nap", user: "light").id
            }
            if row?.decode("left", as: Int.self) == 0 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        await daemon.terminate()
        #expect(most <= 2, "user 'heavy' had \(most) jobs running at once")
        #expect(most == 2)
        let lightJob = try await harness.job(try #require(light))
        #expect(lightJob.status == .completed)
        // It did not wait behind the heavy user's queue: it started while heavy jobs were still queued.
        let queuedBehind = try await harness.query(
            "SELECT count(*) AS n FROM genflow.jobs WHERE user_id = 'heavy' AND started_at > $1::timestamptz", [lightJob.startedAt]
        ).first?.decode("n", as: Int.self) ?? 0
        #expect(queuedBehind > 10, "only \(queuedBehind) heavy jobs started after the light one")
    }

    @Test("SIGTERM drains: a step past the grace period is released, and another daemon finishes the job")
    func gracefulShutdown() async throws {
        let yaml = """
            name: long
            steps:
              - id: nap
                stage: test.step
                with: {sleep: "{{input.sleep}}"}
            input:
              properties:
                sleep: {type: string}
            """
        let harness = try await Harness.make(pipelines: ["long": yaml])
        let daemon = try await DaemonProcess(harness: harness, grace: "300ms")
        let quick = try await harness.submit("long", input: ["sleep": "100ms"])
        try await harness.wait(for: quick.id)
        // Long enough to be still running at SIGTERM + the grace period on a loaded machine.
        let slow = try await harness.submit("long", input: ["sleep": "6s"])
        try await harness.wait(for: slow.id, [.running])
        try await harness.waitForRuns(of: slow.id, "its first attempt running") { $0.first?.status == .running }
        #expect(await daemon.terminate() == 0)
        let released = try await harness.job(slow.id)
        #expect(released.status == .queued)
        #expect(try await harness.runs(slow.id).map(\.status) == [.interrupted])
        #expect(daemon.output.contains("releasing jobs still running after the grace period"))
        let next = try await DaemonProcess(harness: harness)
        let finished = try await harness.wait(for: slow.id)
        await next.terminate()
        #expect(finished.status == .completed)
        #expect(finished.rescues == 0, "a released job is not a rescue")
        #expect(try await harness.runs(slow.id).map(\.status) == [.interrupted, .completed])
    }
}
