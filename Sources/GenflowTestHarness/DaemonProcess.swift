package import Foundation
internal import GenflowCore
package import Synchronization

/// The daemons tests started and have not stopped: SIGKILLed when the test process exits, so a
/// test that loses track of one (a thrown error before its `defer`) leaves no daemon behind.
private let runningDaemons: Mutex<Set<Int32>> = {
    atexit { runningDaemons.withLock { $0.forEach { _ = Foundation.kill($0, SIGKILL) } } }
    return Mutex([])
}()

/// A `genflow serve` process of its own, on a harness's database, with test stages enabled.
package final class DaemonProcess {
    package let process = Process()
    /// Signalled when the process exits (its termination handler).
    private let ended = Broadcast()
    package let log: String
    package let config: String

    /// Starts the daemon and waits until it says it is ready.
    /// - Parameter plugins: the plugins directory (none by default: a test names the plugins it runs).
    /// - Parameter developmentAuth: no secrets in the config: the daemon makes (or reads) them in
    ///   its own state directory, as `make run` does.
    /// - Parameter environment: variables added to the test process's own.
    /// - Parameter installed: an installed genflow and its config as `make install` wrote it (the
    ///   test only points it at the harness's database, a free port and the test secrets).
    /// - Parameter lease: 30 s unless a test is about takeovers: a heartbeat stalled on a loaded
    ///   machine must not let another daemon take a job over in a test that does not expect it.
    package init(harness: Harness, workers: Int = 8, lease: String = "30s", runningPerUser: Int? = nil, grace: String = "5s", extraConfig: String = "",
         plugins: String? = nil, developmentAuth: Bool = false, environment extra: [String: String] = [:],
         installed: (binary: String, config: String)? = nil, logLevel: String = "notice", maxRescues: Int = 5,
         clockSkew: String = "30s", listen: String = "127.0.0.1:0", auth: String = "", pollInterval: String = "100ms") async throws {
        let name = UUID().uuidString.prefix(8)
        // Beside the pipelines directory, not in it: the daemon loads every YAML file there.
        log = harness.directory + "-daemon-\(name).log"
        config = installed?.config ?? harness.directory + "-daemon-\(name).yaml"
        var yaml = """
            listen: \(listen)
            \(developmentAuth ? "state_dir: \(harness.directory)-state" : "auth: {jwt_secret: \(DaemonProcess.jwtSecret), admin_token: \(DaemonProcess.adminToken), clock_skew: \(clockSkew)\(auth.isEmpty ? "" : ", " + auth)}")
            workers: \(workers)
            database: {pool_size: 4}
            queue: {lease: \(lease), poll_interval: \(pollInterval), shutdown_grace: \(grace), max_rescues: \(maxRescues)}
            log: {level: \(logLevel)}
            """
        if let runningPerUser { yaml += "\nlimits: {running_per_user: \(runningPerUser)}" }
        if !extraConfig.isEmpty { yaml += "\n" + extraConfig }
        if installed == nil { try yaml.write(toFile: config, atomically: true, encoding: .utf8) }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.terminationHandler = { [ended] process in
            runningDaemons.withLock { _ = $0.remove(process.processIdentifier) }
            ended.signal()
        }
        process.executableURL = installed.map { URL(fileURLWithPath: $0.binary) } ?? DaemonProcess.binaryDirectory.appendingPathComponent("genflow")
        process.arguments = ["serve", "--config", config]
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = harness.url
        if installed == nil {
            environment["GENFLOW_PIPELINES_DIR"] = harness.directory
            environment["GENFLOW_TEST_STAGES"] = "1"
            environment["GENFLOW_PLUGINS_DIR"] = plugins ?? harness.directory + "-no-plugins"
        } else {
            environment["GENFLOW_LISTEN"] = "127.0.0.1:0"
            environment["GENFLOW_JWT_SECRET"] = DaemonProcess.jwtSecret
            environment["GENFLOW_ADMIN_TOKEN"] = DaemonProcess.adminToken
        }
        environment.merge(extra) { $1 }
        process.environment = environment
        let handle = FileHandle(forWritingAtPath: log)
        process.standardError = handle
        process.standardOutput = handle
        try process.run()
        let pid = process.processIdentifier
        runningDaemons.withLock { _ = $0.insert(pid) }
        let deadline = ContinuousClock.now + .seconds(30)
        while !output.contains("genflow ready") {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw HarnessError("daemon did not start within 30 s: \(output)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Where the test binary is, and the genflow binaries built with it.
    package static var binaryDirectory: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    package var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    package static let jwtSecret = "test-secret-0123456789-0123456789-abcdef"
    package static let adminToken = "test-admin-token"

    /// The port the daemon's listener took (it asks the kernel for a free one), from its ready line.
    package var port: Int {
        guard let range = output.range(of: "genflow.listen=127.0.0.1:") else { return 0 }
        return Int(output[range.upperBound...].prefix(while: \.isNumber)) ?? 0
    }

    /// The daemon's owner id (`host:pid:random`), as its steps record it.
    package var owner: String {
        guard let range = output.range(of: "genflow.owner=") else { return "" }
        return String(output[range.upperBound...].prefix(while: { !$0.isWhitespace }))
    }

    package func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// SIGKILL: no chance to clean up, as when a machine dies. Returns once the process is gone,
    /// without holding a thread of the cooperative pool while it goes.
    package func kill() async {
        Foundation.kill(process.processIdentifier, SIGKILL)
        await ended.wait { !process.isRunning }
    }

    /// SIGTERM, then waits for the process to exit (its graceful shutdown); returns its status.
    @discardableResult
    package func terminate() async -> Int32 {
        process.terminate()
        await ended.wait { !process.isRunning }
        return process.terminationStatus
    }

    /// SIGTERM without waiting, for `defer`: the daemon shuts down on its own (and is killed at
    /// the latest when the test process exits).
    package func stop() {
        if process.isRunning { process.terminate() }
    }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}
