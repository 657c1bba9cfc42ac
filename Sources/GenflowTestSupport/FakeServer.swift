public import Foundation
public import GenflowCore
internal import GenflowHTTPClient

/// The local test server (Tests/Fixtures/fake_provider.py) on a port of its own: plain, slow,
/// streamed and failing HTTP replies, and an OpenAI-compatible chat endpoint. For tests only;
/// run from the package root.
public final class FakeServer: Sendable {
    let process: Process
    public let port: Int
    /// Held open for the server's lifetime: the server exits when it closes.
    let lifeline = Pipe()

    /// - Parameter script: another local server that prints its port first (Tests/Fixtures/idp.py).
    public init(script: String = "Tests/Fixtures/fake_provider.py") throws {
        let process = Process()
        // Debian's python3 (scripts/install-deps.sh), whose packages the scripts import, whatever
        // else is first on PATH.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script]
        let output = Pipe()
        process.standardOutput = output
        // Not the test runner's stderr: swift test waits for every writer of it to close.
        process.standardError = FileHandle.nullDevice
        process.standardInput = lifeline
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            line.append(chunk)
        }
        self.process = process
        self.port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    public func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    deinit {
        try? lifeline.fileHandleForWriting.close()
        process.terminate()
    }
}

extension FakeServer {
    /// A JSON document the local server answers at `path` (its call counts, the last request).
    public func json(_ path: String) async throws -> JSON {
        let client = HTTPClient()
        defer { client.close() }
        return try JSON(parsing: Data(try await client.perform(HTTPRequest(url: url(path))).body))
    }

    /// How many times each model name was called.
    public func calls(_ model: String) async throws -> Int {
        try await json("/calls")[model]?.intValue ?? 0
    }
}
