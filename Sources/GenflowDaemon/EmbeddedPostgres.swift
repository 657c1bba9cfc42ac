public import Logging
internal import CLinux
internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// A PostgreSQL server under the state directory, for `make run` and single-machine use: initdb on
/// first start, then pg_ctl, with Debian's server binaries. PostgreSQL refuses to run as root, so
/// as root the server runs as the `postgres` system user, which owns its directory. It listens on
/// a Unix socket in that directory only, never on TCP.
public struct EmbeddedPostgres: Sendable {
    /// `<state_dir>/postgres`: data in `data/`, the socket and the server log beside it.
    public let directory: String
    /// Whether this process stops the server when it is done.
    public let stopsOnClose: Bool

    /// The libpq URL of the `genflow` database.
    public var url: String { "postgresql:///genflow?host=\(directory)&user=genflow" }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts the server unless it runs already, creating the cluster and database on first use.
    /// - Parameter owns: stop the server at `stop` even if it was running already (the daemon owns
    ///   it); otherwise a server this call started is left running for the daemon or later commands.
    public static func start(stateDirectory: String, owns: Bool, logger: Logger) throws -> EmbeddedPostgres {
        let directory = URL(fileURLWithPath: stateDirectory).appendingPathComponent("postgres").standardizedFileURL.path
        let binaries = try serverBinaries()
        let isRoot = getuid() == 0
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if isRoot {
            try run(["/bin/chown", "postgres:postgres", directory])
            if (try? runAsServerUser(["/usr/bin/test", "-w", directory], isRoot: true)) == nil {
                throw Failure(description: """
                    the embedded PostgreSQL runs as the 'postgres' user, which cannot reach \(directory); \
                    set state_dir (GENFLOW_STATE_DIR) to a directory it can reach, such as /var/lib/genflow, \
                    or set DATABASE_URL
                    """)
            }
        }
        try run(["/bin/chmod", "700", directory])
        let data = directory + "/data"
        if !FileManager.default.fileExists(atPath: data + "/PG_VERSION") {
            logger.notice("creating the embedded PostgreSQL cluster", metadata: ["genflow.directory": "\(data)"])
            try runAsServerUser([binaries + "/initdb", "-D", data, "-U", "genflow", "-A", "trust", "-E", "UTF8"], isRoot: isRoot)
        }
        let status = (try? runAsServerUser([binaries + "/pg_ctl", "-D", data, "status"], isRoot: isRoot)) != nil
        if !status {
            logger.notice("starting the embedded PostgreSQL", metadata: ["genflow.directory": "\(directory)"])
            try runAsServerUser([
                binaries + "/pg_ctl", "-D", data, "-l", directory + "/server.log", "-w", "-t", "60",
                "-o", "-k \(directory) -c listen_addresses='' -c max_connections=200",
                "start",
            ], isRoot: isRoot)
        }
        let server = EmbeddedPostgres(directory: directory, stopsOnClose: owns)
        let exists = try runAsServerUser([
            binaries + "/psql", "-h", directory, "-U", "genflow", "-d", "postgres", "-tAc",
            "SELECT 1 FROM pg_database WHERE datname = 'genflow'",
        ], isRoot: isRoot)
        if exists.trimmingCharacters(in: .whitespacesAndNewlines) != "1" {
            try runAsServerUser([binaries + "/createdb", "-h", directory, "-U", "genflow", "genflow"], isRoot: isRoot)
        }
        return server
    }

    /// Stops the server if this process owns it.
    public func stop(logger: Logger) {
        guard stopsOnClose, let binaries = try? Self.serverBinaries() else { return }
        logger.notice("stopping the embedded PostgreSQL")
        _ = try? Self.runAsServerUser([binaries + "/pg_ctl", "-D", directory + "/data", "-m", "fast", "-w", "stop"], isRoot: getuid() == 0)
    }

    private static func serverBinaries() throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .filter { FileManager.default.fileExists(atPath: "\(root)/\($0)/bin/pg_ctl") }
            .sorted { (Int($0) ?? 0) < (Int($1) ?? 0) }
        guard let newest = versions.last else {
            throw Failure(description: "PostgreSQL server binaries not found under \(root): install the 'postgresql' package, or set DATABASE_URL")
        }
        return "\(root)/\(newest)/bin"
    }

    @discardableResult
    private static func runAsServerUser(_ arguments: [String], isRoot: Bool) throws -> String {
        try run(isRoot ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + arguments : arguments)
    }

    /// Runs a command without a shell and waits for it; returns its output, throws with its output
    /// on failure.
    ///
    /// posix_spawn and waitpid, not Foundation's `Process`: `pg_ctl start` leaves a server running
    /// that would inherit `Process`'s descriptors, and `waitUntilExit` then never returns. Here the
    /// child gets /dev/null, a temporary output file, and no other descriptor (closefrom).
    @discardableResult
    private static func run(_ arguments: [String]) throws -> String {
        let outputPath = NSTemporaryDirectory() + "genflow-cmd-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let pid = gf_spawn(argv, outputPath)
        guard pid > 0 else {
            throw Failure(description: "cannot run \(arguments[0]): \(String(cString: strerror(-pid)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard exitCode == 0 else {
            throw Failure(description: "\((arguments[0] as NSString).lastPathComponent) failed (exit \(exitCode)): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return text
    }
}
