internal import Foundation
internal import Glibc
internal import Logging
internal import ServiceLifecycle

/// systemd's notification protocol (`Type=notify`, sd_notify(3)): datagrams of `KEY=value` lines to
/// the socket in `NOTIFY_SOCKET` (a path, or an abstract name written `@name`).
struct ServiceManagerSocket: Sendable {
    let address: String

    /// The manager's socket, when the daemon runs under one.
    static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> ServiceManagerSocket? {
        guard let address = environment["NOTIFY_SOCKET"], address.count > 1, address.hasPrefix("/") || address.hasPrefix("@") else { return nil }
        return ServiceManagerSocket(address: address)
    }

    /// How often the manager wants a `WATCHDOG=1`: half its `WATCHDOG_USEC`, when that is meant for
    /// this process (`WATCHDOG_PID` unset or ours).
    static func watchdogInterval(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let microseconds = Int64(text), microseconds > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], pid != String(getpid()) { return nil }
        return .microseconds(microseconds / 2)
    }

    /// Sends one message; an error says why (the manager gone, a bad address).
    func send(_ message: String) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SystemCallError(errno, "socket") }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(self.address.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { throw SystemCallError(ENAMETOOLONG, "NOTIFY_SOCKET") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let sent = Array(message.utf8).withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, bytes.baseAddress, bytes.count, 0, $0, length) }
            }
        }
        guard sent >= 0 else { throw SystemCallError(errno, "sendto \(self.address)") }
    }
}

struct SystemCallError: Error, CustomStringConvertible {
    let code: Int32
    let call: String
    init(_ code: Int32, _ call: String) { (self.code, self.call) = (code, call) }
    var description: String { "\(call): \(String(cString: strerror(code)))" }
}

/// Tells the service manager the daemon is ready (`READY=1` with a `STATUS=` line), sends
/// `WATCHDOG=1` at half the unit's `WatchdogSec` while the daemon runs, and `STOPPING=1` as soon as a
/// graceful shutdown starts (it is the last service of the group, so the first one told to stop).
struct ServiceManagerNotifier: Service {
    let socket: ServiceManagerSocket
    let status: String
    let watchdog: Duration?
    let logger: Logger

    func run() async throws {
        notify("READY=1\nSTATUS=\(status)\nMAINPID=\(getpid())")
        await cancelWhenGracefulShutdown {
            guard let watchdog else { return await sleepUntilCancelled() }
            while !Task.isCancelled {
                notify("WATCHDOG=1")
                try? await Task.sleep(for: watchdog)
            }
        }
        notify("STOPPING=1\nSTATUS=draining: finishing running steps, then stopping")
    }

    private func sleepUntilCancelled() async {
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3_600)) }
    }

    private func notify(_ message: String) {
        do {
            try socket.send(message)
        } catch {
            logger.warning("cannot notify the service manager", metadata: ["genflow.error": "\(error)"])
        }
    }
}
