internal import Synchronization

/// Items flushed together: the first item of an idle queue is flushed at once, and whatever arrives
/// during a flush goes into the next one. No timer window, so an item alone is never held back;
/// under load, each flush carries everything that queued meanwhile (up to `maxWeight`, in arrival
/// order). Above `backlog` queued weight, `add` waits for a flush.
///
/// A flusher is a task of its own, started when an item arrives and fewer than `flushers` run, and
/// ending when it finds the queue empty: nothing runs while nothing is queued. With one flusher,
/// batches are applied in arrival order; with more, an item that arrives during a flush need not
/// wait for it to end (for items whose order does not matter).
public final class GroupCommit<Item: Sendable>: Sendable {
    private struct State {
        var queue: [Item] = []
        var queuedWeight = 0
        var flushing = 0
        var flushes = 0
        var backlogWaiters: [CheckedContinuation<Void, Never>] = []
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        /// A deferred item waits for a flush to be started: its time limit is set.
        var isKickScheduled = false
    }

    private let state = Mutex(State())
    private let maxWeight: Int
    private let backlog: Int
    private let flushers: Int
    private let deferral: Duration
    private let weight: @Sendable (Item) -> Int
    private let flush: @Sendable ([Item]) async -> Void

    /// - Parameters:
    ///   - maxWeight: most weight one flush takes (at least one item, whatever its weight).
    ///   - backlog: queued weight above which `add` waits.
    ///   - flushers: flushes in flight at once (1: batches in arrival order, one at a time).
    ///   - deferral: the longest an item of `addDeferred` waits for another to start its flush.
    ///   - weight: what an item counts for (rows it writes); 1 by default.
    ///   - flush: applies a batch; called by at most `flushers` tasks at once.
    public init(
        maxWeight: Int, backlog: Int, flushers: Int = 1, deferral: Duration = .milliseconds(10), weight: @escaping @Sendable (Item) -> Int = { _ in 1 },
        flush: @escaping @Sendable ([Item]) async -> Void
    ) {
        self.maxWeight = maxWeight
        self.backlog = backlog
        self.flushers = max(1, flushers)
        self.deferral = deferral
        self.weight = weight
        self.flush = flush
    }

    /// Items waiting for a flush.
    public var queuedCount: Int { state.withLock { $0.queue.count } }

    /// Flushes made so far.
    public var flushCount: Int { state.withLock { $0.flushes } }

    /// Waits while the backlog is full.
    public func waitForRoom() async {
        guard state.withLock({ $0.queuedWeight >= backlog }) else { return }
        await withCheckedContinuation { continuation in
            let full = state.withLock { state in
                guard state.queuedWeight >= backlog else { return false }
                state.backlogWaiters.append(continuation)
                return true
            }
            if !full { continuation.resume() }
        }
    }

    /// Returns once everything queued so far has been flushed and no flush runs (deferred items
    /// are flushed at once).
    public func idle() async {
        await withCheckedContinuation { continuation in
            let (busy, starts) = state.withLock { state -> (Bool, Bool) in
                let starts = state.flushing == 0 && !state.queue.isEmpty
                if starts { state.flushing += 1 }
                guard state.flushing > 0 else { return (false, false) }
                state.idleWaiters.append(continuation)
                return (true, starts)
            }
            if starts { Task { await self.flushWhileQueued() } }
            if !busy { continuation.resume() }
        }
    }

    /// Queues `item`; starts a flusher if fewer than `flushers` run.
    public func add(_ item: Item) {
        let starts = state.withLock { state -> Bool in
            state.queue.append(item)
            state.queuedWeight += weight(item)
            guard state.flushing < flushers else { return false }
            state.flushing += 1
            return true
        }
        if starts { Task { await self.flushWhileQueued() } }
    }

    /// Queues `item` without starting a flush for it: it goes with the flush the next `add` starts
    /// (or one in progress picks it up), and at the latest about `deferral` from now. For an item
    /// nothing waits for and that another usually follows at once (a step's start, whose checkpoint
    /// comes a moment later): the two then share a flush instead of taking one each.
    public func addDeferred(_ item: Item) {
        let schedules = state.withLock { state -> Bool in
            state.queue.append(item)
            state.queuedWeight += weight(item)
            guard state.flushing == 0, !state.isKickScheduled else { return false }
            state.isKickScheduled = true
            return true
        }
        if schedules { _ = Deadlines.shared.schedule(after: deferral) { [self] in kick() } }
    }

    /// A deferred item's time is up: starts a flusher if something is queued and none runs.
    private func kick() {
        let starts = state.withLock { state -> Bool in
            state.isKickScheduled = false
            guard !state.queue.isEmpty, state.flushing == 0 else { return false }
            state.flushing += 1
            return true
        }
        if starts { Task { await self.flushWhileQueued() } }
    }

    private func flushWhileQueued() async {
        while true {
            let (taken, released) = state.withLock { state -> ([Item], [CheckedContinuation<Void, Never>]) in
                var released: [CheckedContinuation<Void, Never>] = []
                var total = 0, count = 0
                while count < state.queue.count {
                    let next = weight(state.queue[count])
                    if count > 0 && total + next > maxWeight { break }
                    total += next
                    count += 1
                }
                let taken = Array(state.queue.prefix(count))
                state.queue.removeFirst(count)
                state.queuedWeight -= total
                if taken.isEmpty {
                    state.flushing -= 1
                    if state.flushing == 0 { swap(&released, &state.idleWaiters) }
                } else {
                    state.flushes += 1
                }
                if state.queuedWeight < backlog { released += state.backlogWaiters; state.backlogWaiters = [] }
                return (taken, released)
            }
            released.forEach { $0.resume() }
            if taken.isEmpty { return }
            await flush(taken)
        }
    }
}
