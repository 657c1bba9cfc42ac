package import Foundation
package import GenflowCore
package import Synchronization

/// A real WebSocket client (Tests/Fixtures/ws_client.py on the `websockets` library) driven over
/// its stdin and stdout: `send` writes a message, `next` reads the next one received. Other drivers
/// of the same line protocol run through it too (`init(script:arguments:)`).
package final class WebSocketClient: Sendable {
    private let process: Process
    private let input = Pipe()
    private let lines = Mutex<(items: [JSON], ended: Bool)>(([], false))

    package convenience init(_ url: String) throws {
        try self.init(script: "Tests/Fixtures/ws_client.py", arguments: [url])
    }

    /// Another line-protocol driver of the same shape (one JSON message a line each way), such as
    /// Tests/Fixtures/client_browser.py.
    package init(script: String, arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = input
        try process.run()
        self.process = process
        let reader = output.fileHandleForReading
        Thread { [weak self] in
            var buffer = Data()
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let end = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = buffer[buffer.startIndex..<end]
                    buffer = Data(buffer[buffer.index(after: end)...])
                    if let message = try? JSON(parsing: Data(line)) { self?.lines.withLock { $0.items.append(message) } }
                }
            }
            self?.lines.withLock { $0.ended = true }
        }.start()
    }

    package func send(_ message: JSON) {
        input.fileHandleForWriting.write(Data((message.description + "\n").utf8))
    }

    /// The next message, or nil after `timeout` (a guard against a hang, not a timing check).
    package func next(timeout: Duration = .seconds(15)) async -> JSON? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (message, ended) = lines.withLock { state -> (JSON?, Bool) in
                // Spelled out: JSON is ExpressibleByNilLiteral, so a bare nil here would be JSON.null.
                state.items.isEmpty ? (JSON?.none, state.ended) : (state.items.removeFirst(), false)
            }
            if let message { return message }
            if ended { return nil }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// Messages until one satisfies `last` (included), or nil if none does in time.
    package func messages(through last: (JSON) -> Bool, timeout: Duration = .seconds(30)) async -> [JSON]? {
        var received: [JSON] = []
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let message = await next(timeout: deadline - ContinuousClock.now) else { return nil }
            received.append(message)
            if last(message) { return received }
        }
        return nil
    }

    /// Closes the connection (end of stdin) and waits for the client to exit.
    package func close() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    deinit {
        try? input.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
    }
}

extension DaemonProcess {
    /// A WebSocket client on the daemon's `/v1/events?query`.
    package func socket(_ query: String) throws -> WebSocketClient {
        try WebSocketClient("ws://127.0.0.1:\(port)/v1/events?\(query)")
    }
}
