import Foundation
import GenflowPostgres
@testable import GenflowStore
import Testing

@Suite("The token ledger under concurrent writers")
struct LedgerRaceTests {
    @Test("two transactions crediting with one idempotency key: the second waits and sees the first's entry (two daemons crediting dev at start collided)")
    func sameKeyTwice() async throws {
        let harness = try await Harness.make(pipelines: [:])
        let first = try PostgresConnection(harness.url), second = try PostgresConnection(harness.url)
        try first.execute("BEGIN")
        #expect(try StoreSession(first).recordTokens(userID: "dev", change: 100, reason: "welcome", idempotencyKey: "credit:dev:welcome").created)
        // The second transaction starts while the first is open; before the fix it went on past the
        // SELECT, then failed on the ledger's unique key once the first committed.
        let racing = Task.detached { () throws -> Bool in
            try second.execute("BEGIN")
            let created = try StoreSession(second).recordTokens(userID: "dev", change: 100, reason: "welcome", idempotencyKey: "credit:dev:welcome").created
            try second.execute("COMMIT")
            return created
        }
        try await Task.sleep(for: .milliseconds(300))
        try first.execute("COMMIT")
        #expect(try await racing.value == false)
        #expect(try await harness.store.read { try $0.balance(userID: "dev") } == 100)
    }
}
