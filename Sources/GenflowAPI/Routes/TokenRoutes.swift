internal import Foundation
internal import GenflowRecords

/// Token balances, the ledger, credits.
enum TokenRoutes {
    static func routes(_ context: RouteContext) -> [Route] {
        [
            Route(method: "GET", pattern: "/v1/tokens/balance", access: .user, summary: "The user's token balance.", query: ["user_id"]) { call in
                let user = try call.owner()
                let balance = try await context.read { try $0.balance(userID: user) }
                return .json(["user_id": .string(user), "balance": .int(balance)])
            },
            Route(method: "GET", pattern: "/v1/tokens/ledger", access: .user, summary: "The user's ledger entries, newest first.", query: ["user_id", "limit", "cursor"]) { call in
                let (user, (limit, text)) = (try call.owner(), try call.page())
                var before: Int64?
                if let text {
                    guard let id = Int64(text), id > 0 else { throw APIError(400, "invalid_cursor", "cursor is not one a previous page gave") }
                    before = id
                }
                let start = before
                let entries = try await context.read { try $0.ledger(userID: user, before: start, limit: limit) }
                return .page(entries.map(\.json), next: entries.count == limit ? entries.last.map { String($0.id) } : nil)
            },
            Route(method: "POST", pattern: "/v1/tokens/credit", access: .operator, summary: "Add tokens to a user's balance: {user_id, amount, reason?, idempotency_key?}.", status: 201) { call in
                let body = try call.body(allowed: ["user_id", "amount", "reason", "idempotency_key"])
                guard let user = body["user_id"]?.stringValue, !user.isEmpty, user.count <= 200 else {
                    throw APIError(422, "invalid_request", "'user_id' is required")
                }
                guard let amount = body["amount"]?.intValue, (1...1_000_000_000).contains(amount) else {
                    throw APIError(422, "invalid_request", "'amount' must be an integer from 1 to 1000000000")
                }
                let reason = body["reason"]?.stringValue ?? "credit"
                // Namespaced by user: a client's key can never meet another user's credit or a debit's key.
                let key = "credit:\(user):" + (body["idempotency_key"]?.stringValue ?? UUID().uuidString)
                let (entry, created) = try await context.write { try $0.recordTokens(userID: user, change: amount, reason: reason, idempotencyKey: key) }
                return .json(["entry": entry.json, "balance": .int(entry.balanceAfter), "created": .bool(created)], status: created ? 201 : 200)
            },

        ]
    }
}
