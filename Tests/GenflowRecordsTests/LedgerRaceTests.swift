import Foundation
import GenflowPostgres
@testable import GenflowQueue
import GenflowRecords
import GenflowTestHarness
import Testing

@Suite("The token ledger under concurrent writers", .timeLimit(.minutes(3)))
struct LedgerRaceTests {
    @Test("two transactions crediting with one idempotency key: the second waits and sees the first's entry (two daemons crediting dev at start collided)")
    func sameKeyTwice() async throws {
        let harness = try await Harness.make(pipelines: [:])
        let first = try PostgresConnection(harness.url)
        let url = harness.url
        try first.execute("BEGIN")
        #expect(try StoreSession(first).recordTokens(userID: "dev", change: 100, reason: "welcome", idempotencyKey: "credit:dev:welcome").created)
        // The second transaction starts while the first is open; before the fix it went on past the
        // SELECT, then failed on the ledger's unique key once the first committed. Now it waits
        // on the key's advisory lock, then sees the first's entry.
        // On a thread of its own: the call blocks until the first transaction ends, and a blocked
        // thread of Swift's cooperative pool (two on two cores) could keep this test's own sleep
        // from resuming (a test run hung once while other suites ran beside it).
        let racing = Task { () throws -> Bool in
            try await withCheckedThrowingContinuation { continuation in
                Thread {
                    do {
                        let second = try PostgresConnection(url)
                        try second.execute("BEGIN")
                        let created = try StoreSession(second).recordTokens(
                            userID: "dev", change: 100, reason: "welcome", idempotencyKey: "credit:dev:welcome"
                        ).created
                        try second.execute("COMMIT")
                        continuation.resume(returning: created)
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }.start()
            }
        }
        // The race is only tested once the second transaction waits on the first's lock.
        do {
            try await harness.waitForLockWait("the second transaction")
        } catch {
            // Its own error first, if it failed instead of waiting (e.g. could not connect).
            try first.execute("ROLLBACK")
            _ = try await racing.value
            throw error
        }
        try first.execute("COMMIT")
        #expect(try await racing.value == false)
        #expect(try await harness.store.read { try $0.balance(userID: "dev") } == 100)
    }
}
