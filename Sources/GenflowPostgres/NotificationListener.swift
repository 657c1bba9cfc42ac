internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// LISTENs on channels with a connection and thread of its own and reports each notification.
///
/// After (re)connecting it reports every channel once, since notifications sent while it was
/// disconnected are lost: whoever listens must then look at the database itself.
public final class NotificationListener: @unchecked Sendable {
    // `lock` guards `isStopped`.
    private let lock = NSLock()
    private var isStopped = false
    private let thread: Thread

    /// Starts listening. `onNotification` is called on the listener's thread with the channel name.
    public init(connectionString: String, channels: [String], onNotification: @escaping @Sendable (String) -> Void) {
        let state = ListenerState(connectionString: connectionString, channels: channels, onNotification: onNotification)
        thread = Thread { [state] in state.run() }
        thread.name = "genflow-listen"
        state.owner = self
        thread.start()
    }

    /// Stops within a poll interval.
    public func stop() {
        lock.lock()
        isStopped = true
        lock.unlock()
    }

    var stopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return isStopped
    }
}

private final class ListenerState: @unchecked Sendable {
    let connectionString: String
    let channels: [String]
    let onNotification: @Sendable (String) -> Void
    /// Set once before the thread starts.
    weak var owner: NotificationListener?

    init(connectionString: String, channels: [String], onNotification: @escaping @Sendable (String) -> Void) {
        self.connectionString = connectionString
        self.channels = channels
        self.onNotification = onNotification
    }

    func run() {
        var backoff = 0.05
        while let owner, !owner.stopped {
            do {
                let connection = try PostgresConnection(connectionString)
                for channel in channels { try connection.execute("LISTEN \(channel)") }
                backoff = 0.05
                channels.forEach(onNotification)
                while !(self.owner?.stopped ?? true) {
                    var descriptor = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
                    let ready = poll(&descriptor, 1, 200)
                    if ready < 0 && errno != EINTR { break }
                    for channel in try connection.consumeNotifications() { onNotification(channel) }
                    if !connection.isHealthy { break }
                }
            } catch {
                Thread.sleep(forTimeInterval: backoff)
                backoff = min(backoff * 2, 2)
            }
        }
    }
}
