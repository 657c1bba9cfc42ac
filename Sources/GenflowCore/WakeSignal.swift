internal import Synchronization

/// Wakes one waiting loop: a signal sent while nobody waits is kept (once) for the next wait.
public final class WakeSignal: Sendable {
    public init() {}

    private struct State {
        var isPending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Wakes the waiter, or the next one.
    public func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.isPending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns at the next signal, after `timeout`, or when the task is cancelled.
    public func wait(timeout: Duration) async {
        let alarm = Alarm(after: timeout) { self.signal() }
        await withTaskCancellationHandler {
            await next()
        } onCancel: {
            self.signal()
        }
        alarm.cancel()
    }

    private func next() async {
        await withCheckedContinuation { continuation in
            let isPending = state.withLock { state -> Bool in
                if state.isPending {
                    state.isPending = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if isPending { continuation.resume() }
        }
    }
}

/// A result set once, by whichever of several racers gets there first.
public final class FirstResult<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiter: CheckedContinuation<Value, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// Sets the result if none is set yet.
    public func finish(_ value: Value) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, Never>? in
            guard state.value == nil else { return nil }
            state.value = value
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: value)
    }

    /// The result, once set.
    public func value() async -> Value {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Value? in
                if let value = state.value { return value }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
