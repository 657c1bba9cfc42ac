internal import Synchronization

/// Items handed from producers to one consumer that takes everything waiting at once: while the
/// consumer is busy (writing the last batch to the database), items pile up and become the next
/// batch. A fast producer thus costs one write per consumer turn, not one per item.
public final class BatchQueue<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var isFinished = false
        var waiter: CheckedContinuation<[Item]?, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds an item (ignored after `finish`).
    public func add(_ item: Item) {
        let resumed = state.withLock { state -> (CheckedContinuation<[Item]?, Never>, [Item])? in
            guard !state.isFinished else { return nil }
            guard let waiter = state.waiter else {
                state.items.append(item)
                return nil
            }
            state.waiter = nil
            return (waiter, [item])
        }
        resumed.map { $0.0.resume(returning: $0.1) }
    }

    /// No more items: the consumer gets what is left, then nil.
    public func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<[Item]?, Never>? in
            state.isFinished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Every item added since the last call (waiting for one if there is none), or nil once
    /// finished and drained. One consumer only.
    public func next() async -> [Item]? {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> [Item]?? in
                if !state.items.isEmpty {
                    defer { state.items = [] }
                    return .some(state.items)
                }
                if state.isFinished { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
