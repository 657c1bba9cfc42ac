internal import CCurl
internal import GenflowCore
internal import CGenflowShims
internal import Foundation
internal import Synchronization

/// An outbound HTTP request.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]?
    /// The whole exchange, connection to last byte.
    public var timeout: Duration
    public var connectTimeout: Duration
    /// Longest silence while the response streams in.
    public var idleTimeout: Duration

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
    public var status: Int
    /// Header names lowercased; the last value of a repeated header.
    public var headers: [String: String]
    public var body: [UInt8]
}

/// A transfer that did not complete.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case timeout, network, cancelled
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }
}

/// HTTP over libcurl's multi interface: one thread drives every transfer, so thousands can be in
/// flight without a thread each. Other threads hand it work through a locked queue and
/// `curl_multi_wakeup`; only that thread touches curl handles.
public final class HTTPClient: @unchecked Sendable {
    // `state` guards the queues shared with the curl thread; everything else is the curl thread's.
    private struct State {
        var adds: [Transfer] = []
        var cancels: [ObjectIdentifier] = []
        var isClosed = false
    }

    private let state = Mutex(State())
    private let multi: UnsafeMutableRawPointer
    private var active: [ObjectIdentifier: Transfer] = [:]
    private let thread: Thread

    public init() {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        multi = curl_multi_init()!
        let box = ThreadBox()
        thread = Thread { box.client?.loop() }
        thread.name = "genflow-curl"
        box.client = self
        thread.start()
    }

    /// Stops the curl thread; transfers in flight fail as cancelled.
    public func close() {
        state.withLock { $0.isClosed = true }
        curl_multi_wakeup(multi)
    }

    /// Performs `request`. `onData` gets each piece of the body as it arrives (on the curl thread:
    /// hand it on, do not block); the returned body holds all of it as well.
    public func perform(_ request: HTTPRequest, onData: (@Sendable ([UInt8]) -> Void)? = nil) async throws(HTTPError) -> HTTPResponse {
        let transfer = Transfer(request: request, onData: onData)
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<HTTPResponse, HTTPError>, Never>) in
                transfer.continuation = continuation
                let closed = state.withLock { state -> Bool in
                    if !state.isClosed { state.adds.append(transfer) }
                    return state.isClosed
                }
                if closed {
                    continuation.resume(returning: .failure(HTTPError(kind: .cancelled, message: "the HTTP client is closed")))
                } else {
                    curl_multi_wakeup(multi)
                }
            }
        } onCancel: {
            state.withLock { $0.cancels.append(ObjectIdentifier(transfer)) }
            curl_multi_wakeup(multi)
        }
        return try result.get()
    }

    private func loop() {
        while true {
            let (adds, cancels, isClosed) = state.withLock { state in
                defer {
                    state.adds.removeAll()
                    state.cancels.removeAll()
                }
                return (state.adds, state.cancels, state.isClosed)
            }
            for transfer in adds { start(transfer) }
            for id in cancels { finish(id, .failure(HTTPError(kind: .cancelled, message: "the request was cancelled"))) }
            if isClosed {
                for id in Array(active.keys) { finish(id, .failure(HTTPError(kind: .cancelled, message: "the HTTP client was closed"))) }
                curl_multi_cleanup(multi)
                return
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                var pointer: UnsafeMutableRawPointer?
                gf_curl_easy_getinfo_ptr(easy, CURLINFO_PRIVATE, &pointer)
                guard let pointer else { continue }
                let transfer = Unmanaged<Transfer>.fromOpaque(pointer).takeUnretainedValue()
                finish(ObjectIdentifier(transfer), transfer.outcome(message.pointee.data.result))
            }
            curl_multi_poll(multi, nil, 0, 1_000, nil)
        }
    }

    private func start(_ transfer: Transfer) {
        guard let easy = transfer.makeHandle() else {
            transfer.complete(.failure(HTTPError(kind: .network, message: "cannot create a curl handle")))
            return
        }
        active[ObjectIdentifier(transfer)] = transfer
        curl_multi_add_handle(multi, easy)
    }

    private func finish(_ id: ObjectIdentifier, _ result: Result<HTTPResponse, HTTPError>) {
        guard let transfer = active.removeValue(forKey: id) else { return }
        if let easy = transfer.easy { curl_multi_remove_handle(multi, easy) }
        transfer.complete(result)
    }
}

/// Lets the thread closure reach the client without capturing it strongly before init ends.
private final class ThreadBox: @unchecked Sendable {
    weak var client: HTTPClient?
}

/// One request in flight: owns its easy handle and header list (freed in `deinit`) and collects the
/// response. Touched only on the curl thread once started.
final class Transfer: @unchecked Sendable {
    let request: HTTPRequest
    let onData: (@Sendable ([UInt8]) -> Void)?
    var continuation: CheckedContinuation<Result<HTTPResponse, HTTPError>, Never>?
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var body: [UInt8] = []
    private var headers: [String: String] = [:]
    private var status = 0
    private var requestBody: UnsafeMutableBufferPointer<CChar>?

    init(request: HTTPRequest, onData: (@Sendable ([UInt8]) -> Void)?) {
        self.request = request
        self.onData = onData
    }

    deinit {
        if let easy { curl_easy_cleanup(easy) }
        if let headerList { curl_slist_free_all(headerList) }
        requestBody?.deallocate()
    }

    func makeHandle() -> UnsafeMutableRawPointer? {
        guard let easy = curl_easy_init() else { return nil }
        self.easy = easy
        let me = Unmanaged.passUnretained(self).toOpaque()
        gf_curl_easy_setopt_string(easy, CURLOPT_URL, request.url)
        gf_curl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method)
        // URLs may come from templates: never file://, gopher:// or anything but the web.
        gf_curl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        gf_curl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        gf_curl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(request.timeout.milliseconds))
        gf_curl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout.milliseconds))
        gf_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
        gf_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Int(request.idleTimeout.milliseconds / 1_000)))
        gf_curl_easy_setopt_ptr(easy, CURLOPT_PRIVATE, me)
        gf_curl_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, me)
        gf_curl_easy_setopt_write_function(easy, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            let bytes = Array(UnsafeRawBufferPointer(start: data, count: size * count))
            transfer.body += bytes
            transfer.onData?(bytes)
            return size * count
        }
        gf_curl_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, me)
        gf_curl_easy_setopt_write_function(easy, CURLOPT_HEADERFUNCTION) { data, size, count, context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
            transfer.header(line)
            return size * count
        }
        for (name, value) in request.headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        headerList = curl_slist_append(headerList, "Expect:")
        gf_curl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList)
        if let body = request.body {
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(body.count, 1))
            body.withUnsafeBytes { raw in
                for (index, byte) in raw.enumerated() { buffer[index] = CChar(bitPattern: byte) }
            }
            requestBody = buffer
            gf_curl_easy_setopt_long(easy, CURLOPT_POSTFIELDSIZE, body.count)
            gf_curl_easy_setopt_ptr(easy, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(buffer.baseAddress))
        }
        return easy
    }

    private func header(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("HTTP/") {
            status = Int(trimmed.split(separator: " ").dropFirst().first ?? "") ?? 0
            headers = [:]
        } else if let colon = trimmed.firstIndex(of: ":") {
            headers[trimmed[..<colon].lowercased()] = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }

    func outcome(_ code: CURLcode) -> Result<HTTPResponse, HTTPError> {
        switch code {
        case CURLE_OK:
            return .success(HTTPResponse(status: status, headers: headers, body: body))
        case CURLE_OPERATION_TIMEDOUT:
            return .failure(HTTPError(kind: .timeout, message: "timed out: \(String(cString: curl_easy_strerror(code)))"))
        default:
            return .failure(HTTPError(kind: .network, message: String(cString: curl_easy_strerror(code))))
        }
    }

    func complete(_ result: Result<HTTPResponse, HTTPError>) {
        continuation?.resume(returning: result)
        continuation = nil
    }
}
