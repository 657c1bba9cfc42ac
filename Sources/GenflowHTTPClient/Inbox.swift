internal import CLinux
internal import Glibc
internal import Synchronization

/// The hand-off from callers to the curl thread: a locked queue of transfers to start and to
/// cancel, and the eventfd (owned here, closed in `deinit`) the thread waits on.
///
/// Callers signal the eventfd only when the queue goes from empty to non-empty: a burst of
/// requests costs one wake-up, not one each. The curl thread reads the eventfd before it takes
/// the queue, so whatever is queued after the take signals again.
final class Inbox: Sendable {
    /// What the curl thread takes in one go.
    struct Batch {
        var starts: [Transfer] = []
        /// Held strongly, so a finished transfer's address cannot be reused by a new one meanwhile.
        var cancels: [Transfer] = []
        /// `close()` was called: stop after this batch.
        var isClosing = false

        var isEmpty: Bool { starts.isEmpty && cancels.isEmpty && !isClosing }
    }

    /// The queue's state machine; its methods say whether to signal the eventfd.
    private struct Queue {
        var pending = Batch()
        /// Set once the client is closed (or could not start): why new transfers are refused.
        var refusal: HTTPError?

        /// Queues `transfer`; `.failure` when the client no longer accepts work.
        mutating func submit(_ transfer: Transfer) -> Result<Bool, HTTPError> {
            if let refusal { return .failure(refusal) }
            let isFirst = pending.isEmpty
            pending.starts.append(transfer)
            return .success(isFirst)
        }

        mutating func cancel(_ transfer: Transfer) -> Bool {
            guard refusal == nil else { return false }
            let isFirst = pending.isEmpty
            pending.cancels.append(transfer)
            return isFirst
        }

        mutating func close(_ reason: HTTPError) -> Bool {
            guard refusal == nil else { return false }
            refusal = reason
            let isFirst = pending.isEmpty
            pending.isClosing = true
            return isFirst
        }

        mutating func take() -> Batch {
            defer { pending = Batch() }
            return pending
        }
    }

    private let queue: Mutex<Queue>
    /// The eventfd, non-blocking; -1 if it could not be made (the client then refuses all work).
    let wakeUpFD: Int32

    init() {
        wakeUpFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        var queue = Queue()
        if wakeUpFD < 0 {
            queue.refusal = HTTPError(kind: .network, message: "the HTTP client cannot start: eventfd: \(String(cString: strerror(errno)))")
        }
        self.queue = Mutex(queue)
    }

    deinit {
        if wakeUpFD >= 0 { Glibc.close(wakeUpFD) }
    }

    /// False when the client is closed or could not start.
    var isAccepting: Bool { queue.withLock { $0.refusal == nil } }

    /// Queues `transfer` for the curl thread; returns the error to fail it with if the client no
    /// longer accepts work.
    func submit(_ transfer: Transfer) -> HTTPError? {
        switch queue.withLock({ $0.submit(transfer) }) {
        case .success(let isFirst):
            if isFirst { signal() }
            return nil
        case .failure(let refusal):
            return refusal
        }
    }

    /// Asks the curl thread to stop `transfer` (it may have finished already; then nothing happens).
    func cancel(_ transfer: Transfer) {
        if queue.withLock({ $0.cancel(transfer) }) { signal() }
    }

    /// Asks the curl thread to fail every transfer as cancelled and stop; refuses new ones.
    func close() {
        let reason = HTTPError(kind: .cancelled, message: "the HTTP client is closed")
        if queue.withLock({ $0.close(reason) }) { signal() }
    }

    /// On the curl thread when it cannot run: refuses new work with `reason` and returns what was queued.
    func refuseAll(_ reason: HTTPError) -> Batch {
        queue.withLock { queue in
            _ = queue.close(reason)
            return queue.take()
        }
    }

    /// On the curl thread after epoll reported the eventfd readable: resets it, then takes the queue.
    func take() -> Batch {
        var count: UInt64 = 0
        _ = read(wakeUpFD, &count, MemoryLayout<UInt64>.size)
        return queue.withLock { $0.take() }
    }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wakeUpFD, &one, MemoryLayout<UInt64>.size)
    }
}
