import ArgumentParser
import Foundation
import GenflowCore
import GenflowQueue

/// `genflow credit --user ID --amount N`: add tokens to a user's balance.
struct CreditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "credit", abstract: "Add tokens to a user's balance.")

    @OptionGroup var options: GlobalOptions
    @Option(help: "The user to credit.") var user: String
    @Option(help: "Tokens to add (1 or more).") var amount: Int
    @Option(help: "Ledger reason.") var reason: String = "credit"
    @Option(name: .customLong("idempotency-key"), help: "Crediting again with the same key changes nothing.") var idempotencyKey: String?

    func run() async throws {
        guard amount > 0 else { throw ValidationError("--amount must be 1 or more") }
        guard !user.isEmpty else { throw ValidationError("--user must not be empty") }
        let config = try options.loadConfigOrExit()
        let (user, amount, reason) = (user, amount, reason)
        // The same namespace as POST /v1/tokens/credit: per user, apart from debits' keys.
        let key = "credit:\(user):" + (idempotencyKey ?? UUID().uuidString.lowercased())
        let (entry, created) = try await options.withStore(config) { store in
            try await store.write { try $0.recordTokens(userID: user, change: amount, reason: reason, idempotencyKey: key) }
        }
        print(created ? "credited \(amount) tokens to \(user); balance \(entry.balanceAfter)"
                      : "already credited with this idempotency key; balance then \(entry.balanceAfter)")
    }
}
