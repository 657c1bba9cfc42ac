public import GenflowCore
internal import Foundation

/// The JWT secret and the operator token the listener checks.
public struct AuthSecrets: Sendable {
    public var jwtSecret: Secret
    public var adminToken: Secret
    /// Where generated secrets are kept, when they were generated (development).
    public var file: String?
    /// True when this call created the file (the first start).
    public var isNew: Bool
}

extension DaemonConfig {
    /// The configured `auth.jwt_secret` and `auth.admin_token`; whichever is missing is generated
    /// once and kept in `<state_dir>/auth.json` (mode 0600), so restarts and `genflow token` agree.
    public func authSecrets() throws -> AuthSecrets {
        if let jwtSecret, let adminToken { return AuthSecrets(jwtSecret: jwtSecret, adminToken: adminToken, file: nil, isNew: false) }
        let path = "\(stateDir)/auth.json"
        var stored: [String: String] = [:]
        var isNew = false
        if let data = FileManager.default.contents(atPath: path) {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: String] else {
                throw AuthSecretsError(message: "\(path) is not the JSON object genflow wrote; delete it to generate new development secrets")
            }
            stored = object
        }
        for key in ["jwt_secret", "admin_token"] where stored[key] == nil {
            stored[key] = Self.randomToken()
            isNew = true
        }
        if isNew {
            try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
            let data = try JSONSerialization.data(withJSONObject: stored, options: [.sortedKeys, .prettyPrinted])
            guard FileManager.default.createFile(atPath: path + ".tmp", contents: data, attributes: [.posixPermissions: 0o600]) else {
                throw AuthSecretsError(message: "cannot write \(path)")
            }
            guard rename(path + ".tmp", path) == 0 else { throw AuthSecretsError(message: "cannot write \(path)") }
        }
        return AuthSecrets(
            jwtSecret: jwtSecret ?? Secret(stored["jwt_secret"]!), adminToken: adminToken ?? Secret(stored["admin_token"]!),
            file: path, isNew: isNew
        )
    }

    /// 32 random bytes as hex.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}

/// The development secrets file could not be read or written.
public struct AuthSecretsError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
