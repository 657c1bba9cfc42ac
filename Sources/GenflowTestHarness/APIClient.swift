package import Foundation
package import GenflowAPI
package import GenflowCore
package import GenflowHTTPClient

/// A user's bearer token for the test daemons' secret.
package func userToken(_ user: String, lifetime: Duration = .seconds(600), now: Date = Date()) -> String {
    JWT.sign(subject: user, lifetime: lifetime, secret: Secret(DaemonProcess.jwtSecret), now: now)
}

/// One HTTP exchange with a daemon's API, over libcurl.
package struct APIReply {
    package var status: Int
    package var json: JSON
    package var headers: [String: String]
    package var body: [UInt8]
}

/// One request to `url` (a daemon's, or a proxy's in front of it), with a bearer token.
package func callAPI(_ method: String, _ url: String, token: String? = nil, body: JSON? = nil, raw: [UInt8]? = nil) async throws -> APIReply {
    let client = HTTPClient()
    defer { client.close() }
    var headers: [(String, String)] = [("Content-Type", "application/json")]
    if let token { headers.append(("Authorization", "Bearer \(token)")) }
    let response = try await client.perform(HTTPRequest(
        method: method, url: url, headers: headers, body: raw ?? body.map { Array($0.description.utf8) }, timeout: .seconds(30)
    ))
    return APIReply(status: response.status, json: (try? JSON(parsing: Data(response.body))) ?? .null, headers: response.headers, body: response.body)
}

extension DaemonProcess {
    package func call(_ method: String, _ path: String, token: String? = nil, body: JSON? = nil, raw: [UInt8]? = nil) async throws -> APIReply {
        try await callAPI(method, url(path), token: token, body: body, raw: raw)
    }

    /// The admin token's view.
    package func operatorCall(_ method: String, _ path: String, body: JSON? = nil) async throws -> APIReply {
        try await call(method, path, token: DaemonProcess.adminToken, body: body)
    }

    /// Polls `GET /v1/jobs/{id}` until the job has finished (a guard of 60 s, not a timing check).
    package func finished(_ id: String, token: String) async throws -> JSON {
        for _ in 0..<3_000 {
            let reply = try await call("GET", "/v1/jobs/\(id)", token: token)
            if ["completed", "failed", "cancelled"].contains(reply.json["status"]?.stringValue ?? "") { return reply.json }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("job \(id) did not finish within 60 s")
    }
}
