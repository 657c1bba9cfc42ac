internal import CCurl
internal import Foundation
internal import Instrumentation

/// An outbound HTTP request.
public struct HTTPRequest: Sendable {
    /// Sent as is (`CURLOPT_CUSTOMREQUEST`): `GET`, `POST`, …
    public var method: String
    /// An `http` or `https` URL; other schemes are refused.
    public var url: String
    /// Name and value pairs, sent in order.
    public var headers: [(String, String)]
    public var body: [UInt8]?
    /// The whole exchange, connection to last byte.
    public var timeout: Duration
    /// Until the TCP (and TLS) connection is up.
    public var connectTimeout: Duration
    /// Longest silence while the response streams in.
    public var idleTimeout: Duration

    /// A request with the defaults: 60 s in all, 10 s to connect, 30 s of silence at most.
    public init(
        method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        timeout: Duration = .seconds(60), connectTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(30)
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }
}

/// What came back.
public struct HTTPResponse: Sendable {
    /// The final status code (after any 1xx).
    public var status: Int
    /// Header names lowercased; the last value of a repeated header.
    public var headers: [String: String]
    /// The whole body, as received.
    public var body: [UInt8]
}

/// A transfer that did not complete.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    /// Why: a timeout (total, connect or idle), any other transport failure, or a cancellation
    /// (the caller's task, or `HTTPClient.close()`).
    public enum Kind: Sendable {
        case timeout, network, cancelled
    }

    public var kind: Kind
    /// curl's description of the failure, or ours.
    public var message: String
    public var description: String { message }
}

/// HTTP over libcurl's multi interface: one thread drives every transfer, so thousands can be in
/// flight without a thread each.
///
/// Callers build each transfer's easy handle on their own thread and hand it over through an
/// `Inbox` (a locked queue plus an eventfd); the curl thread (`CurlLoop`) waits on one epoll set for
/// that eventfd and curl's sockets and drives curl with `curl_multi_socket_action`, so each wake-up
/// costs in proportion to the sockets that are ready, not to the transfers in flight. Only that
/// thread touches the multi handle.
public final class HTTPClient: Sendable {
    private let inbox: Inbox
    private let handles = EasyHandles()

    /// Starts the curl thread (named `genflow-curl`). If it cannot start (no file descriptors left),
    /// every `perform` fails with a `.network` error saying why.
    public init() {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        let inbox = Inbox()
        self.inbox = inbox
        guard inbox.isAccepting else { return }
        let thread = Thread { CurlLoop.run(inbox: inbox) }
        thread.start()
    }

    deinit {
        close()
    }

    /// Stops the curl thread; transfers in flight fail as cancelled.
    public func close() {
        inbox.close()
    }

    /// Performs `request`. `onData` gets each piece of the body as it arrives (on the curl thread:
    /// hand it on, do not block); the returned body holds all of it as well.
    ///
    /// Cancelling the calling task stops the transfer and throws `.cancelled`.
    /// Inside a trace, the request carries the current span as `traceparent`.
    public func perform(_ request: HTTPRequest, onData: (@Sendable ([UInt8]) -> Void)? = nil) async throws(HTTPError) -> HTTPResponse {
        var request = request
        if let context = InstrumentationContext.current {
            InstrumentationSystem.instrument.inject(context, into: &request.headers, using: HeaderListInjector())
        }
        guard let transfer = Transfer(request: request, onData: onData, handles: handles) else {
            throw HTTPError(kind: .network, message: "cannot create a curl handle")
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<HTTPResponse, HTTPError>, Never>) in
                transfer.continuation = continuation
                if let refusal = inbox.submit(transfer) {
                    transfer.complete(.failure(refusal))
                }
            }
        } onCancel: {
            transfer.markCancelled()
            inbox.cancel(transfer)
        }
        return try result.get()
    }
}

/// Writes trace headers into a request's header list.
struct HeaderListInjector: Injector {
    func inject(_ value: String, forKey key: String, into headers: inout [(String, String)]) {
        headers.removeAll { $0.0.lowercased() == key }
        headers.append((key, value))
    }
}
