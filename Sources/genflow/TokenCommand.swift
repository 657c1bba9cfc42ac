import ArgumentParser
import Foundation
import GenflowAPI
import GenflowConfig
import GenflowCore

/// `genflow token --user ID [--ttl 1h]`: a signed JWT for development and tests.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Mint a user token (HS256 JWT) with the configured secret, for development and tests."
    )

    @OptionGroup var options: GlobalOptions
    @Option(help: "The user id the token names (its `sub`).") var user: String
    @Option(help: "How long it is valid, e.g. 30m, 1h, 7d.") var ttl: String = "1h"

    func run() throws {
        guard !user.isEmpty, user.count <= 200 else { throw ValidationError("--user must be 1 to 200 characters") }
        guard let lifetime = DurationText.parse(ttl), lifetime > .zero, lifetime <= .seconds(366 * 86_400) else {
            throw ValidationError("--ttl must be a duration from 1s to 366d, such as 1h, not '\(ttl)'")
        }
        let config = try options.loadConfigOrExit()
        let secrets = try config.authSecrets()
        print(JWT.sign(subject: user, lifetime: lifetime, secret: secrets.jwtSecret))
    }
}
