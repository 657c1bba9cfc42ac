package import Foundation
internal import GenflowCore

/// Debian's nginx in front of a daemon, with `etc/nginx/genflow.conf` as shipped: only the upstream's
/// port and the listening address are rewritten, and nginx runs in a folder of its own (pid, logs,
/// temporary files). nginx connects to the daemon from `upstreamSource` (127.0.0.2), so the daemon
/// can tell the proxy (trusted) from the test's own clients (127.0.0.1).
package final class ReverseProxy {
    package static let upstreamSource = "127.0.0.2"
    package let port: Int
    private let process = Process()
    private let directory: String

    package init(daemonPort: Int, shippedConfig: String = "etc/nginx/genflow.conf") async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-nginx-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        port = try freePort()
        let site = try String(contentsOfFile: shippedConfig, encoding: .utf8)
            .replacingOccurrences(of: "server 127.0.0.1:8080;", with: "server 127.0.0.1:\(daemonPort);")
            .replacingOccurrences(of: "listen 80;", with: "listen 127.0.0.1:\(port);")
        try site.write(toFile: "\(directory)/genflow.conf", atomically: true, encoding: .utf8)
        let main = """
            \(getuid() == 0 ? "user root;" : "")
            worker_processes 1;
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log notice;
            events { worker_connections 512; }
            http {
                access_log \(directory)/access.log;
                client_body_temp_path \(directory)/body;
                proxy_temp_path \(directory)/proxy;
                fastcgi_temp_path \(directory)/fastcgi;
                uwsgi_temp_path \(directory)/uwsgi;
                scgi_temp_path \(directory)/scgi;
                proxy_bind \(ReverseProxy.upstreamSource);
                include \(directory)/genflow.conf;
            }
            """
        try main.write(toFile: "\(directory)/nginx.conf", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        process.arguments = ["-p", directory, "-c", "\(directory)/nginx.conf", "-e", "\(directory)/error.log", "-g", "daemon off;"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(10)
        while !isListening(port) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw HarnessError("nginx did not start: \(errors)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// nginx's error log (why it refused to start, upstream errors).
    package var errors: String { (try? String(contentsOfFile: "\(directory)/error.log", encoding: .utf8)) ?? "" }

    package func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// SIGTERM without waiting (nginx stops on its own): a test's `defer` must not block a thread
    /// of the cooperative pool.
    package func stop() {
        if process.isRunning { process.terminate() }
    }

    deinit { stop() }
}

/// A TCP port nobody listens on now (the kernel's choice for a socket bound to port 0).
package func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw HarnessError("cannot find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Whether something accepts connections on 127.0.0.1:`port`.
func isListening(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopback(port: port)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// 127.0.0.1:`port` as a socket address.
private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}
