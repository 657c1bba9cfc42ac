internal import GenflowCore
internal import GenflowQueue
internal import GenflowRecords

/// The balance reads of `tokens.require` steps, many users per statement: the reads that arrive
/// while one statement runs go in the next (`GroupCommit`), as the writer's writes do.
final class BalanceReader: Sendable {
    private struct Read: Sendable {
        var user: String
        var waiter: CheckedContinuation<Int, any Error>
    }

    private let reads: GroupCommit<Read>

    init(store: JobStore) {
        reads = GroupCommit(maxWeight: 1_000, backlog: 20_000) { batch in
            do {
                let balances = try await store.read { try $0.balances(userIDs: batch.map(\.user)) }
                for read in batch { read.waiter.resume(returning: balances[read.user] ?? 0) }
            } catch {
                for read in batch { read.waiter.resume(throwing: error) }
            }
        }
    }

    /// The user's balance (0 for a user never credited).
    func balance(of user: String) async throws -> Int {
        await reads.waitForRoom()
        return try await withCheckedThrowingContinuation { reads.add(Read(user: user, waiter: $0)) }
    }
}
