public import GenflowHTTPServer
public import ServiceLifecycle
internal import Logging

/// The listener and the event reader as one service: started with the daemon, and at graceful
/// shutdown the WebSockets are closed with 1001 (going away) and the listener stops.
public struct APIService: Service {
    let server: HTTPServer
    let hub: EventHub

    public init(server: HTTPServer, hub: EventHub) {
        self.server = server
        self.hub = hub
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await hub.run()
        }
        server.closeWebSockets()
        // Give the close frames a moment to go out before the listener goes away.
        try? await Task.sleep(for: .milliseconds(100))
        server.stop()
    }
}
