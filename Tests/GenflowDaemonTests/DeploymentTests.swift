import Foundation
import GenflowCore
import GenflowTestHarness
import Testing

/// What an operator deploys: `make install`'s files, the systemd unit and its notifications, and
/// nginx in front (etc/nginx/genflow.conf as shipped).
@Suite("Deployment", .serialized, .timeLimit(.minutes(3)))
struct DeploymentTests {
    @Test("scripts/install.sh installs binaries, dashboard, pipelines, plugins, config and unit; the installed daemon serves them; a reinstall keeps edits; uninstall removes what install put")
    func installAndUninstall() async throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-prefix-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        var environment = ProcessInfo.processInfo.environment
        environment["PREFIX"] = prefix
        environment["STATEDIR"] = "\(prefix)/var/lib/genflow"
        environment["BINARIES"] = DaemonProcess.binaryDirectory.path
        let install = try await runProgram("/bin/bash", ["scripts/install.sh", "install"], environment: environment)
        #expect(install.status == 0, "\(install.stderr)")

        let version = try await runProgram("\(prefix)/bin/genflow", ["--version"])
        #expect(version.stdout.hasPrefix("genflow \(GenflowVersion.version) (commit "), "\(version.stdout)")
        let config = "\(prefix)/etc/genflow/genflow.yaml"
        let validate = try await runProgram("\(prefix)/bin/genflow", ["validate", "--config", config])
        #expect(validate.status == 0 && validate.stdout.contains("4 pipeline files, 2 plugins"), "\(validate.stdout) \(validate.stderr)")
        let unit = "\(prefix)/lib/systemd/system/genflow.service"
        let verify = try await runProgram("/usr/bin/systemd-analyze", ["verify", unit], mergingOutput: true)
        #expect(verify.status == 0 && verify.stdout.isEmpty, "systemd-analyze verify: \(verify.stdout)")
        #expect(try String(contentsOfFile: unit, encoding: .utf8).contains("ExecStart=\(prefix)/bin/genflow serve --config \(config)"))

        // The installed daemon: its pipelines (one needs the Swift plugin beside the binary) and the dashboard.
        let harness = try await Harness.make(pipelines: [:])
        let daemon = try await DaemonProcess(harness: harness, installed: (binary: "\(prefix)/bin/genflow", config: config))
        let pipelines = try await daemon.operatorCall("GET", "/v1/pipelines")
        let names = Set((pipelines.json["items"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue })
        #expect(names == ["canvas-generation", "claude-canvas-generation", "illustrated-canvas", "image-generation"], "\(pipelines.json)")
        let page = try await daemon.call("GET", "/")
        #expect(page.status == 200 && String(decoding: page.body, as: UTF8.self).contains("<html"))
        #expect(await daemon.terminate() == 0)

        // An operator's edit survives a reinstall; uninstall leaves the configuration.
        try "# edited\n".appending(String(contentsOfFile: config, encoding: .utf8)).write(toFile: config, atomically: true, encoding: .utf8)
        let again = try await runProgram("/bin/bash", ["scripts/install.sh", "install"], environment: environment)
        #expect(again.status == 0 && again.stdout.contains("kept \(config)"))
        #expect(try String(contentsOfFile: config, encoding: .utf8).hasPrefix("# edited"))
        let uninstall = try await runProgram("/bin/bash", ["scripts/install.sh", "uninstall"], environment: environment)
        #expect(uninstall.status == 0)
        for gone in ["bin/genflow", "bin/genflow-plugin-anthropic", "share/genflow", "lib/systemd/system/genflow.service"] {
            #expect(!FileManager.default.fileExists(atPath: "\(prefix)/\(gone)"), "\(gone) is still there")
        }
        #expect(FileManager.default.fileExists(atPath: config))
    }

    @Test("a rolling upgrade: a daemon on a database a newer release migrated runs, and warns that it should be upgraded")
    func newerSchema() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        _ = try await harness.query("INSERT INTO genflow.schema_migrations (version, name) VALUES (100000, 'from a newer release')")
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        #expect(daemon.output.contains("genflow.schema_version=100000") && daemon.output.contains("the database schema is newer than this daemon"))
        let job = try await harness.submit("sleepy", input: ["ms": "1ms"])
        #expect(try await harness.wait(for: job.id).status == .completed)
    }

    @Test("a rolling upgrade: a job whose pipeline version this daemon cannot load (a newer release's) is left to its lease for another daemon, and fails as poisoned when none can load it")
    func unloadablePipelineVersion() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let job = try await harness.submit("sleepy", input: ["ms": "1ms"])
        // As a newer release would have stored it: a stage this daemon does not know. And its file
        // is not in this daemon's pipelines directory.
        _ = try await harness.query("UPDATE genflow.pipeline_versions SET definition = jsonb_set(definition, '{steps,0,stage}', '\"future.stage\"') WHERE name = 'sleepy'")
        try FileManager.default.removeItem(atPath: harness.path("sleepy.yaml"))
        let daemon = try await DaemonProcess(harness: harness, lease: "1s", maxRescues: 1)
        defer { daemon.stop() }
        let ended = try await harness.wait(for: job.id)
        #expect(ended.status == .failed && ended.rescues == 2, "claimed, left to its lease, taken over once, then poisoned: \(ended)")
        #expect(daemon.output.contains("cannot load the job's pipeline version") && daemon.output.contains("future.stage"))
    }

    @Test("under systemd (NOTIFY_SOCKET): READY=1 once serving, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 when SIGTERM starts the drain")
    func serviceManagerNotifications() async throws {
        let manager = try NotifySocket()
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness, environment: ["NOTIFY_SOCKET": manager.path, "WATCHDOG_USEC": "400000"])
        var received: [String] = []
        while received.filter({ $0 == "WATCHDOG=1" }).count < 2, let message = try await manager.receive() {
            received.append(message)
        }
        #expect(received.first?.hasPrefix("READY=1\nSTATUS=serving on 127.0.0.1:\(daemon.port)") == true, "\(received)")
        #expect(received.dropFirst().allSatisfy { $0 == "WATCHDOG=1" }, "\(received)")
        #expect(await daemon.terminate() == 0)
        var stopping: String?
        while let message = try await manager.receive(timeout: .seconds(2)) {
            if message != "WATCHDOG=1" { stopping = message }
        }
        #expect(stopping?.hasPrefix("STOPPING=1\n") == true)
    }

    @Test("through nginx: REST, a WebSocket that reconnects with since and misses nothing, the dashboard's files; WebSockets and bad tokens are limited by the forwarded client address")
    func reverseProxy() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness, extraConfig: """
            listener: {trusted_proxies: ["\(ReverseProxy.upstreamSource)/32"], max_connections_per_address: 2}
            limits: {auth_failures_per_minute: 3}
            """)
        defer { daemon.stop() }
        let proxy = try await ReverseProxy(daemonPort: daemon.port)
        defer { proxy.stop() }
        let token = userToken("ann")

        let first = try WebSocketClient("ws://127.0.0.1:\(proxy.port)/v1/events?token=\(token)")
        #expect(await first.next()?["op"] == "_open")
        let submitted = try await callAPI("POST", proxy.url("/v1/jobs"), token: token, body: ["pipeline": "sleepy", "input": ["ms": "1ms"]])
        #expect(submitted.status == 202, "\(submitted.json) \(proxy.errors)")
        let id = try #require(submitted.json["job"]?["id"]?.stringValue)
        let before = try #require(await first.messages(through: { $0["type"] == "job.completed" && $0["job_id"] == .string(id) }))
        first.close()
        // Missed while away: a second job, run to its end.
        let missed = try await callAPI("POST", proxy.url("/v1/jobs"), token: token, body: ["pipeline": "sleepy", "input": ["ms": "1ms"]])
        let missedID = try #require(missed.json["job"]?["id"]?.stringValue)
        #expect(try await harness.wait(for: missedID).status == .completed)
        let shown = try await callAPI("GET", proxy.url("/v1/jobs/\(missedID)"), token: token)
        #expect(shown.json["status"] == "completed")

        let lastSeen = try #require(before.last?["id"]?.intValue)
        let second = try WebSocketClient("ws://127.0.0.1:\(proxy.port)/v1/events?token=\(token)&since=\(lastSeen)")
        defer { second.close() }
        #expect(await second.next()?["op"] == "_open")
        let replayed = try #require(await second.messages(through: { $0["type"] == "job.completed" && $0["job_id"] == .string(missedID) }))
        let stored = try await harness.events(missedID).map { Int($0.id) }
        #expect(replayed.filter { $0["job_id"] == .string(missedID) }.compactMap { $0["id"]?.intValue } == stored, "no gap, no duplicate")

        // Two sockets for 127.0.0.1 through the proxy; a third is refused, whatever the client
        // writes in X-Forwarded-For (nginx replaces it).
        let third = try WebSocketClient("ws://127.0.0.1:\(proxy.port)/v1/events?token=\(token)")
        defer { third.close() }
        #expect(await third.next()?["op"] == "_open")
        let refused = try WebSocketClient("ws://127.0.0.1:\(proxy.port)/v1/events?token=\(token)")
        #expect(await refused.next()?["status"] == 429)
        // The proxy's own connections are not capped: the API still answers through it.
        let dashboard = try await callAPI("GET", proxy.url("/"))
        #expect(dashboard.status == 200 && dashboard.headers["content-type"]?.hasPrefix("text/html") == true)
        let script = try await callAPI("GET", proxy.url("/dashboard/dashboard.js"))
        #expect(script.status == 200 && script.headers["content-type"]?.hasPrefix("text/javascript") == true)
        // Direct clients are counted by their own address, apart from those behind the proxy.
        let direct = try daemon.socket("token=\(token)")
        defer { direct.close() }
        #expect(await direct.next()?["op"] == "_open")

        // Bad tokens count against the client the proxy forwarded (127.0.0.1), not against the
        // proxy: after three, that client is refused through the proxy and directly alike.
        for _ in 0..<3 { #expect(try await callAPI("GET", proxy.url("/v1/jobs"), token: "not-a-token").status == 401) }
        let limited = try await callAPI("GET", proxy.url("/v1/jobs"), token: token)
        #expect(limited.status == 429 && limited.json["error"]?["code"] == "too_many_failures" && Int(limited.headers["retry-after"] ?? "") ?? 0 >= 1)
        #expect(try await daemon.call("GET", "/v1/jobs", token: token).status == 429)
    }
}

/// The service manager's end of NOTIFY_SOCKET: a datagram socket the test reads.
private final class NotifySocket {
    let path: String
    private let descriptor: Int32

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-notify-\(UUID().uuidString.prefix(8)).sock").path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard descriptor >= 0, bound == 0 else { throw HarnessError("cannot bind \(path)") }
    }

    /// The next message, or nil after `timeout` (a guard against a hang, not a timing check).
    func receive(timeout: Duration = .seconds(15)) async throws -> String? {
        let descriptor = descriptor
        return try await onOwnThread {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(timeout.milliseconds)) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4_096)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil
        }
    }

    deinit {
        close(descriptor)
        unlink(path)
    }
}
