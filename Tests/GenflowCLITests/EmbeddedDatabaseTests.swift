import Foundation
import GenflowTestHarness
import Testing

@Suite("genflow serve on its embedded PostgreSQL", .timeLimit(.minutes(3)))
struct EmbeddedDatabaseTests {
    @Test("with no database configured, serve starts PostgreSQL under state_dir, other commands use it, SIGTERM stops both")
    func embedded() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let config = try directory.write("genflow.yaml", """
            state_dir: \(directory.path)/state
            pipelines_dir: pipelines
            queue: {poll_interval: 100ms}
            log: {level: notice}
            providers: {default: {kind: offline, delay: 300ms}}   # slow enough to watch a step run
            """)
        let environment = ["GENFLOW_LISTEN": "127.0.0.1:0", "DATABASE_URL": "", "GENFLOW_STATE_DIR": "", "GENFLOW_PIPELINES_DIR": "", "PGHOST": "", "PGDATABASE": ""]
        let log = directory.path + "/serve.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: genflowBinary)
        serve.arguments = ["serve", "--config", config]
        serve.environment = commandEnvironment(environment)
        serve.standardError = FileHandle(forWritingAtPath: log)
        serve.standardOutput = FileHandle.nullDevice
        try serve.run()
        defer { if serve.isRunning { kill(serve.processIdentifier, SIGKILL) } }
        func output() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let deadline = ContinuousClock.now + .seconds(90)
        while !output().contains("genflow ready"), serve.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let ready = output()
        #expect(ready.contains("genflow.database=embedded"), "\(ready)")
        #expect(FileManager.default.fileExists(atPath: directory.path + "/state/postgres/data/PG_VERSION"))
        let socket = directory.path + "/state/postgres/.s.PGSQL.5432"
        #expect(FileManager.default.fileExists(atPath: socket))

        // The shipped pipeline runs through the daemon with the offline provider. Without tokens it
        // stops at its balance check; with tokens it draws, saves and debits.
        let input = #"{"instructions": "a house"}"#
        let poor = try await genflow("submit", "canvas-generation", "--config", config, "--input", input, "--follow", environment: environment)
        #expect(poor.status == 1, "\(poor.stdout)\(poor.stderr)")
        #expect(poor.stdout.contains("step balance started (attempt 1)"))
        #expect(poor.stdout.contains("job.failed balance: insufficient_tokens: balance 0 is below the 50 tokens this pipeline requires"))
        let credited = try await genflow("credit", "--config", config, "--user", "local", "--amount", "100", environment: environment)
        #expect(credited.stdout == "credited 100 tokens to local; balance 100\n", "\(credited.stderr)")
        let paid = try await genflow("submit", "canvas-generation", "--config", config, "--input", input, "--follow", environment: environment)
        #expect(paid.status == 0, "\(paid.stdout)\(paid.stderr)")
        #expect(paid.stdout.contains("step generate started (attempt 1)"))
        #expect(paid.stdout.contains("canvas.objects generate"))
        #expect(paid.stdout.contains("token_balance_updated debit"))
        #expect(paid.stdout.hasSuffix("job.completed\n"))
        // Branches side by side: plain lines through a pipe; on a terminal (script(1) gives it one)
        // the steps running now are lines under the events, redrawn in place.
        _ = try await genflow("credit", "--config", config, "--user", "local", "--amount", "2000", environment: environment)
        let piped = try await genflow("submit", "illustrated-canvas", "--config", config, "--input", input, "--follow", environment: environment)
        #expect(piped.status == 0, "\(piped.stdout)\(piped.stderr)")
        #expect(piped.stdout.contains("step picture started (attempt 1)") && piped.stdout.contains("step generate started (attempt 1)"))
        #expect(piped.stdout.contains("\u{1B}[") == false, "no terminal escapes through a pipe")
        let command = ([genflowBinary, "submit", "illustrated-canvas", "--config", config, "--input", input, "--follow"])
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let terminal = try await run("/usr/bin/script", ["-qfec", command, "/dev/null"], environment: environment)
        #expect(terminal.status == 0, "\(terminal.stdout)\(terminal.stderr)")
        #expect(terminal.stdout.contains("  ▸ generate  "), "the running step's line: \(terminal.stdout)")
        #expect(terminal.stdout.contains("\u{1B}[1A\u{1B}[2K"), "the board is redrawn in place")
        #expect(terminal.stdout.contains("job.completed"))
        let listed = try await genflow("jobs", "list", "--config", config, "--json", environment: environment)
        #expect(listed.status == 0)
        #expect(listed.stdout.contains(#""status":"failed""#) && listed.stdout.contains(#""status":"completed""#))

        // The operator's view and controls, through the CLI.
        let items = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]] ?? []
        let failedID = try #require(items.first { $0["status"] as? String == "failed" }?["id"] as? String)
        let completedID = try #require(items.first { $0["status"] as? String == "completed" }?["id"] as? String)
        let shown = try await genflow("jobs", "show", failedID, "--config", config, "--json", environment: environment)
        let job = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any]
        #expect((job?["error"] as? [String: Any])?["class"] as? String == "insufficient_tokens")
        #expect((job?["steps"] as? [[String: Any]])?.map { $0["status"] as? String } == ["failed"] + Array(repeating: "pending", count: 7))
        // What each job cost (nothing here: the offline model has no price), in the list and in one job.
        let plain = try await genflow("jobs", "list", "--config", config, environment: environment)
        #expect(plain.stdout.contains("  cost $0  created "), "\(plain.stdout)")
        let detail = try await genflow("jobs", "show", completedID, "--config", config, environment: environment)
        #expect(detail.stdout.contains("   cost $0\n"), "\(detail.stdout)")
        let refused = try await genflow("jobs", "cancel", completedID, "--config", config, environment: environment)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("is completed; only queued, waiting_retry or running jobs can be cancelled"))
        let retried = try await genflow("jobs", "retry", failedID, "--config", config, environment: environment)
        #expect(retried.status == 0 && retried.stdout == "queued job \(failedID) again\n", "\(retried.stderr)")
        let missing = try await genflow("jobs", "show", "00000000-0000-0000-0000-000000000000", "--config", config, environment: environment)
        #expect(missing.status == 1)

        serve.terminate()
        serve.waitUntilExit()
        #expect(serve.terminationStatus == 0)
        #expect(output().contains("stopping the embedded PostgreSQL"))
        #expect(!FileManager.default.fileExists(atPath: socket), "the embedded server is still running")
    }
}
