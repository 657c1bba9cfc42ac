internal import CCurl
internal import CCurlShims
internal import CLinux

/// The curl thread: waits on one epoll set for the inbox's eventfd and every socket curl asks to
/// watch, and drives the multi handle with `curl_multi_socket_action`: for each ready socket, and
/// with `CURL_SOCKET_TIMEOUT` when curl's timer expires. curl's socket and timer callbacks keep the
/// epoll set and the deadline up to date. Finished transfers are collected after every action.
/// New transfers join curl a few dozen per pass, so a burst of them does not hold up the sockets
/// already in flight.
///
/// Everything here runs on that one thread; the callbacks get the loop back through
/// `Unmanaged.passUnretained`, and the loop outlives the multi handle's callbacks (`shutDown`
/// removes them before the multi handle is freed).
final class CurlLoop {
    private let inbox: Inbox
    private let multi: MultiHandle
    private let poll: EventPoll
    private var active: [ObjectIdentifier: Transfer] = [:]
    /// Handed over by callers, not given to curl yet; the first `startedWaiting` of them are started.
    private var waiting: [Transfer] = []
    private var startedWaiting = 0
    /// When curl wants `CURL_SOCKET_TIMEOUT`; nil when it wants no timer. One-shot, as curl expects.
    private var deadline: ContinuousClock.Instant?

    /// Runs the loop on the calling thread until the client is closed.
    static func run(inbox: Inbox) {
        gf_set_current_thread_name("genflow-curl")
        guard let loop = CurlLoop(inbox: inbox) else {
            let error = HTTPError(kind: .network, message: "the HTTP client cannot start: no epoll instance or curl multi handle")
            for transfer in inbox.refuseAll(error).starts { transfer.complete(.failure(error)) }
            return
        }
        loop.run()
    }

    private init?(inbox: Inbox) {
        guard let multi = MultiHandle(), let poll = EventPoll(),
              poll.watch(inbox.wakeUpFD, readable: true, writable: false, isNew: true) else { return nil }
        self.inbox = inbox
        self.multi = multi
        self.poll = poll
        multi.setCallbacks(
            context: Unmanaged.passUnretained(self).toOpaque(),
            socket: { _, socket, action, context, socketContext in
                guard let context else { return 0 }
                Unmanaged<CurlLoop>.fromOpaque(context).takeUnretainedValue().watch(socket, action: action, isWatched: socketContext != nil)
                return 0
            },
            timer: { _, milliseconds, context in
                guard let context else { return 0 }
                Unmanaged<CurlLoop>.fromOpaque(context).takeUnretainedValue().setTimer(milliseconds)
                return 0
            }
        )
    }

    private func run() {
        var isOpen = true
        while isOpen {
            var isWoken = false
            poll.wait(timeoutMilliseconds: startedWaiting < waiting.count ? 0 : millisecondsUntilDeadline()) { event in
                if event.fd == inbox.wakeUpFD {
                    isWoken = true
                } else {
                    act(on: event)
                }
            }
            if let deadline, deadline <= .now { fireTimer() }
            if isWoken { isOpen = takeInbox() }
            if isOpen { startWaiting() }
        }
        shutDown()
    }

    // MARK: curl's callbacks

    /// Socket callback: watch `socket` for what curl asks (`CURL_POLL_*`), or stop watching it.
    /// A socket curl has not seen here before has no pointer assigned yet.
    private func watch(_ socket: curl_socket_t, action: Int32, isWatched: Bool) {
        if action == CURL_POLL_REMOVE {
            poll.unwatch(socket)
            return
        }
        let readable = action == CURL_POLL_IN || action == CURL_POLL_INOUT
        let writable = action == CURL_POLL_OUT || action == CURL_POLL_INOUT
        if poll.watch(socket, readable: readable, writable: writable, isNew: !isWatched), !isWatched {
            multi.assign(socket, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    /// Timer callback: call `CURL_SOCKET_TIMEOUT` in `milliseconds` (0: as soon as possible), or never (-1).
    private func setTimer(_ milliseconds: Int) {
        deadline = milliseconds < 0 ? nil : .now + .milliseconds(milliseconds)
    }

    // MARK: Driving curl

    private func act(on event: EventPoll.Event) {
        var events: Int32 = 0
        if event.isReadable { events |= CURL_CSELECT_IN }
        if event.isWritable { events |= CURL_CSELECT_OUT }
        if event.isFailed { events |= CURL_CSELECT_ERR }
        multi.socketAction(event.fd, events: events)
        collectFinished()
    }

    private func fireTimer() {
        deadline = nil
        multi.socketAction(CURL_SOCKET_TIMEOUT, events: 0)
        collectFinished()
    }

    /// How long `epoll_wait` may sleep: until the deadline, rounded up (waking early would only
    /// make curl set the same deadline again), or -1 without one.
    private func millisecondsUntilDeadline() -> Int32 {
        guard let deadline else { return -1 }
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { return 0 }
        let (seconds, attoseconds) = remaining.components
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        return Int32(clamping: seconds * 1_000 + (attoseconds + attosecondsPerMillisecond - 1) / attosecondsPerMillisecond)
    }

    private func collectFinished() {
        while let (easy, result) = multi.nextFinished() {
            guard let transfer = Transfer.owning(easy) else { continue }
            finish(transfer, transfer.outcome(result))
        }
    }

    // MARK: Transfers

    /// Queues what callers handed over and cancels what they asked to; false once the client is closing.
    private func takeInbox() -> Bool {
        let batch = inbox.take()
        waiting += batch.starts
        guard !batch.isClosing else {
            for transfer in waiting[startedWaiting...] { transfer.complete(.failure(Self.closed)) }
            return false
        }
        for transfer in batch.cancels {
            finish(transfer, .failure(HTTPError(kind: .cancelled, message: "the request was cancelled")))
        }
        return true
    }

    /// Gives curl the next `startsPerPass` waiting transfers.
    private func startWaiting() {
        let end = min(waiting.count, startedWaiting + Self.startsPerPass)
        for transfer in waiting[startedWaiting..<end] { start(transfer) }
        startedWaiting = end
        // Drop the started ones now and then (at once when all are), not on every pass.
        if startedWaiting == waiting.count || startedWaiting >= 16 * Self.startsPerPass {
            waiting.removeFirst(startedWaiting)
            startedWaiting = 0
        }
    }

    private func start(_ transfer: Transfer) {
        // Cancelled before curl got it: the cancel request found nothing in flight to stop.
        if transfer.isCancelled {
            transfer.complete(.failure(HTTPError(kind: .cancelled, message: "the request was cancelled")))
            return
        }
        guard multi.add(transfer.easy) else {
            transfer.complete(.failure(HTTPError(kind: .network, message: "curl refused the transfer")))
            return
        }
        active[ObjectIdentifier(transfer)] = transfer
    }

    /// Removes `transfer` from curl and resumes its caller; nothing if it is not in flight.
    private func finish(_ transfer: Transfer, _ result: Result<HTTPResponse, HTTPError>) {
        guard active.removeValue(forKey: ObjectIdentifier(transfer)) != nil else { return }
        multi.remove(transfer.easy)
        transfer.complete(result)
    }

    /// Fails what is in flight and detaches curl's callbacks; the multi handle and the epoll
    /// instance are freed with the loop.
    private func shutDown() {
        for transfer in Array(active.values) { finish(transfer, .failure(Self.closed)) }
        multi.removeCallbacks()
    }

    /// How many new transfers join curl per pass of the loop: each costs a connection lookup and
    /// often a connect, about 0.2 ms with 2,000 connections open.
    private static let startsPerPass = 64
    private static let closed = HTTPError(kind: .cancelled, message: "the HTTP client was closed")
}
