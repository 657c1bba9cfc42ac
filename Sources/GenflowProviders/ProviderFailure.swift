public import GenflowCore
public import GenflowHTTPClient
internal import Foundation

/// The one place where a provider's HTTP answers and transport failures become SPEC §6's error
/// classes, for every kind (and for the plugins that call providers).
public enum ProviderFailure {
    /// POSTs `body` as JSON; a transport failure or an answer other than 200 is thrown as its class.
    public static func post(
        _ client: HTTPClient, _ url: String, body: JSON, headers: [(String, String)], timeout: Duration,
        onData: (@Sendable ([UInt8]) -> Void)?
    ) async throws(StepError) -> HTTPResponse {
        let request = HTTPRequest(
            method: "POST", url: url, headers: [("Content-Type", "application/json")] + headers, body: Array(body.description.utf8),
            timeout: timeout, connectTimeout: min(timeout, .seconds(10)), idleTimeout: min(timeout, .seconds(30))
        )
        let response: HTTPResponse
        do throws(HTTPError) {
            response = try await client.perform(request, onData: onData)
        } catch {
            throw failure(error)
        }
        guard response.status == 200 else { throw failure(response) }
        return response
    }

    /// A transport failure's class.
    public static func failure(_ error: HTTPError) -> StepError {
        switch error.kind {
        case .timeout: StepError(.timeout, "the provider did not answer in time: \(error.message)")
        case .cancelled: StepError(.cancelled, "the call was stopped")
        case .network: StepError(.network, "cannot reach the provider: \(error.message)")
        }
    }

    /// SPEC §6's mapping: 429 → rate_limited (with retry-after-ms / retry-after), 408/409/5xx
    /// (Anthropic's 529 overloaded included) → server_error, 401/403 → auth, other 4xx →
    /// invalid_request. The message is the provider's own (`error.message`, as OpenAI and
    /// Anthropic both send it), else the start of the body.
    public static func failure(_ response: HTTPResponse) -> StepError {
        let detail = (try? JSON(parsing: Data(response.body)))?["error"]?["message"]?.stringValue
            ?? String(decoding: response.body.prefix(200), as: UTF8.self)
        let message = "provider answered \(response.status): \(detail)"
        switch response.status {
        case 429:
            var delay: Duration?
            if let milliseconds = response.headers["retry-after-ms"].flatMap(Double.init) {
                delay = .milliseconds(Int64(milliseconds))
            } else if let seconds = response.headers["retry-after"].flatMap(Double.init) {
                delay = .milliseconds(Int64(seconds * 1_000))
            }
            return StepError(.rateLimited, message, retryAfter: delay)
        case 401, 403: return StepError(.auth, message)
        case 408, 409, 500...599: return StepError(.serverError, message)
        default: return StepError(.invalidRequest, message)
        }
    }
}
