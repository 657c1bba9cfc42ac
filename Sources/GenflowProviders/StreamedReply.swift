public import GenflowCore
internal import GenflowHTTPClient
internal import Synchronization

/// A streamed chat reply (server-sent events) read as its bytes arrive, for any kind: the
/// events' `data:` payloads go to the kind's `read`, which updates the reply so far and returns
/// the payload's piece of text, if any; the pieces go to `onText` (on the HTTP thread).
final class StreamedReply: Sendable {
    struct Reply {
        var text = ""
        var usage: JSON = [:]
        var model: String?
        var finishReason: String?
        var isDone = false
        var failure: String?
    }

    typealias Read = @Sendable (_ payload: String, _ reply: inout Reply) -> String?

    private let state = Mutex((buffer: [UInt8](), reply: Reply()))
    private let read: Read
    private let onText: @Sendable (String) -> Void

    init(read: @escaping Read, onText: @escaping @Sendable (String) -> Void) {
        self.read = read
        self.onText = onText
    }

    /// POSTs a chat request (`ProviderFailure.post`); with `streams`, the answer's events go
    /// through `read` as they arrive, and the returned reader holds the reply.
    static func post(
        _ client: HTTPClient, _ url: String, body: JSON, headers: [(String, String)], timeout: Duration, streams: Bool,
        read: @escaping Read, onText: @escaping @Sendable (String, Double?) -> Void
    ) async throws(StepError) -> (response: HTTPResponse, stream: StreamedReply) {
        let stream = StreamedReply(read: read) { onText($0, nil) }
        let feed: @Sendable ([UInt8]) -> Void = { bytes in stream.feed(bytes) }
        let response = try await ProviderFailure.post(client, url, body: body, headers: headers, timeout: timeout, onData: streams ? feed : nil)
        return (response, stream)
    }

    func feed(_ bytes: [UInt8]) {
        var pieces: [String] = []
        state.withLock { state in
            state.buffer += bytes
            while let end = Self.eventEnd(state.buffer) {
                let event = String(decoding: state.buffer[..<end.start], as: UTF8.self)
                state.buffer.removeFirst(end.after)
                for line in event.split(separator: "\n") where line.hasPrefix("data:") {
                    var payload = line.dropFirst(5)
                    while payload.first == " " { payload.removeFirst() }
                    while payload.last == "\r" || payload.last == " " { payload.removeLast() }
                    if let piece = read(String(payload), &state.reply), !piece.isEmpty {
                        state.reply.text += piece
                        pieces.append(piece)
                    }
                }
            }
        }
        pieces.forEach(onText)
    }

    /// The reply once the stream ended: an error event, or a stream cut before its end
    /// (`done` says how), is retryable.
    func result(model: String, done: String) throws(StepError) -> ChatResult {
        let reply = state.withLock { $0.reply }
        if let failure = reply.failure { throw StepError(.serverError, "the provider sent an error inside the stream: \(failure)") }
        guard reply.isDone else { throw StepError(.serverError, done) }
        return ChatResult(text: reply.text, usage: reply.usage, model: reply.model ?? model, finishReason: reply.finishReason ?? "stop")
    }

    /// Where the first blank line ends an event: (index of the separator, index after it).
    private static func eventEnd(_ buffer: [UInt8]) -> (start: Int, after: Int)? {
        var index = 0
        while index + 1 < buffer.count {
            if buffer[index] == 10, buffer[index + 1] == 10 { return (index, index + 2) }
            if index + 3 < buffer.count, buffer[index] == 13, buffer[index + 1] == 10, buffer[index + 2] == 13, buffer[index + 3] == 10 {
                return (index, index + 4)
            }
            index += 1
        }
        return nil
    }
}
