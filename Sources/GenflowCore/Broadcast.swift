internal import Synchronization

/// Wakes every task waiting for a condition over some state when that state changes: the waits
/// that used to poll with a sleep (`while !condition { sleep }`) wait on a continuation instead.
/// The owner of the state calls `signal()` after each change that may make a condition true; a
/// waiter re-checks its condition then. A change between a waiter's check and its wait is never
/// missed: the wait is skipped when a signal came after the check (a generation count).
public final class Broadcast: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Wakes every waiter to re-check its condition.
    public func signal() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.generation &+= 1
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once `condition` holds (true), or false when `timeout` passed first or the task was
    /// cancelled. `condition` is checked now and after each signal.
    @discardableResult
    public func wait(until condition: () -> Bool, timeout: Duration? = nil) async -> Bool {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let alarm = timeout.map { Alarm(after: $0) { self.signal() } }
        defer { alarm?.cancel() }
        while true {
            let seen = state.withLock(\.generation)
            if condition() { return true }
            if Task.isCancelled || deadline.map({ ContinuousClock.now >= $0 }) == true { return false }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let isStale = state.withLock { state -> Bool in
                        guard state.generation == seen else { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if isStale { continuation.resume() }
                }
            } onCancel: {
                self.signal()
            }
        }
    }
}
