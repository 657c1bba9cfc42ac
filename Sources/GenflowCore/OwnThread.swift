internal import Foundation

/// Runs blocking work (child processes, waitpid, a libpq call outside the pool) on a new thread and
/// awaits its result, so it never occupies one of Swift's cooperative threads (two on two cores:
/// one blocked for seconds stalls every task).
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}
