public import GenflowHTTPServer
public import ServiceLifecycle
internal import Logging

/// The listener and the event reader as one service: started with the daemon, and at graceful
/// shutdown the listener drains (`HTTPServer.drain`) and stops.
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
        // New requests get 503, WebSockets are closed with 1001 (going away), and the requests in
        // flight answer before the listener goes away.
        await server.drain(timeout: .seconds(5))
        server.stop()
    }
}
