internal import CCurl
internal import CCurlShims
internal import GenflowCore
internal import Synchronization

/// One request in flight: owns its easy handle, header list and request body (freed in `deinit`)
/// and collects the response.
///
/// Built on the caller's thread, then touched only on the curl thread once `Inbox` hands it over
/// (the inbox lock orders the two); `isCancelled` is the one field both sides use, and it is atomic.
/// The handle is not in the multi handle any more by the time `deinit` runs, on whatever thread.
final class Transfer: @unchecked Sendable {
    let easy: UnsafeMutableRawPointer
    private let handles: EasyHandles
    var continuation: CheckedContinuation<Result<HTTPResponse, HTTPError>, Never>?
    private let onData: (@Sendable ([UInt8]) -> Void)?
    private let cancelFlag = Atomic<Bool>(false)
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var requestBody: UnsafeMutableRawBufferPointer?
    private var head = ResponseHead()
    private var body: [UInt8] = []

    /// Configures an easy handle of `handles`; nil if curl cannot make one.
    init?(request: HTTPRequest, onData: (@Sendable ([UInt8]) -> Void)?, handles: EasyHandles) {
        guard let easy = handles.take() else { return nil }
        self.easy = easy
        self.handles = handles
        self.onData = onData
        configure(for: request)
    }

    deinit {
        // Reset first: the handle points at the header list and the body until then.
        handles.give(easy)
        if let headerList { curl_slist_free_all(headerList) }
        requestBody?.deallocate()
    }

    /// Set (from any thread) when the caller's task is cancelled; a transfer not started yet then never starts.
    var isCancelled: Bool { cancelFlag.load(ordering: .acquiring) }

    func markCancelled() {
        cancelFlag.store(true, ordering: .releasing)
    }

    /// The transfer that owns `easy` (its `CURLOPT_PRIVATE`).
    static func owning(_ easy: UnsafeMutableRawPointer) -> Transfer? {
        var pointer: UnsafeMutableRawPointer?
        gf_curl_easy_getinfo_ptr(easy, CURLINFO_PRIVATE, &pointer)
        return pointer.map { Unmanaged<Transfer>.fromOpaque($0).takeUnretainedValue() }
    }

    /// The result for curl's final code.
    func outcome(_ code: CURLcode) -> Result<HTTPResponse, HTTPError> {
        switch code {
        case CURLE_OK:
            return .success(HTTPResponse(status: head.status, headers: head.headers, body: body))
        case CURLE_OPERATION_TIMEDOUT:
            return .failure(HTTPError(kind: .timeout, message: "timed out: \(String(cString: curl_easy_strerror(code)))"))
        default:
            return .failure(HTTPError(kind: .network, message: String(cString: curl_easy_strerror(code))))
        }
    }

    /// Resumes the caller, once.
    func complete(_ result: Result<HTTPResponse, HTTPError>) {
        continuation?.resume(returning: result)
        continuation = nil
    }

    private func configure(for request: HTTPRequest) {
        let me = Unmanaged.passUnretained(self).toOpaque()
        gf_curl_easy_setopt_string(easy, CURLOPT_URL, request.url)
        gf_curl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method)
        // A HEAD answer has no body, whatever its Content-Length says.
        if request.method == "HEAD" { gf_curl_easy_setopt_long(easy, CURLOPT_NOBODY, 1) }
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
            Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().received(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        gf_curl_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, me)
        gf_curl_easy_setopt_write_function(easy, CURLOPT_HEADERFUNCTION) { data, size, count, context in
            guard let data, let context else { return 0 }
            Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().head.consume(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        for (name, value) in request.headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        headerList = curl_slist_append(headerList, "Expect:")
        gf_curl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList)
        if let body = request.body {
            // curl reads the body in place while the transfer runs: it lives as long as the handle.
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(body.count, 1), alignment: 1)
            body.withUnsafeBytes { buffer.copyMemory(from: $0) }
            requestBody = buffer
            gf_curl_easy_setopt_long(easy, CURLOPT_POSTFIELDSIZE, body.count)
            gf_curl_easy_setopt_ptr(easy, CURLOPT_POSTFIELDS, buffer.baseAddress)
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        body.append(contentsOf: bytes)
        if let onData { onData(Array(bytes)) }
    }
}
