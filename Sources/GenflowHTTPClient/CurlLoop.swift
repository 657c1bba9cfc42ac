internal import CCurl
internal import CCurlShims
internal import CLinux

/// The curl thread: waits on one epoll set for the inbox's eventfd and every socket curl asks to
/// watch, and drives the multi handles with `curl_multi_socket_action`: for each ready socket, and
/// with `CURL_SOCKET_TIMEOUT` when a handle's timer expires. curl's socket and timer callbacks keep
/// the epoll set and the deadlines up to date. Finished transfers are collected after every action.
/// New transfers join curl a few dozen per pass, so a burst of them does not hold up the sockets
/// already in flight.
///
/// Transfers are spread over `shardCount` multi handles (`Shard`), each with its own connection
/// cache. libcurl 7.88 walks a cache linearly twice per transfer: looking for an idle connection to
/// the host (every connection to it, busy or not) when the transfer starts, and looking for its
/// last connection's id when it is removed (`curl_multi_remove_handle`). With 2,000 connections to
/// one provider in one cache those walks were a quarter of the curl thread's time (perf). A new
/// transfer joins the shard with the fewest in flight, which is the one whose transfer ended last
/// and so the one with an idle connection.
///
/// Everything here runs on that one thread; the callbacks get their shard back through
/// `Unmanaged.passUnretained`, and the shards outlive their multi handles' callbacks (`shutDown`
/// removes them before the handles are freed).
final class CurlLoop {
    /// One multi handle and what the loop keeps for it.
    private final class Shard {
        let index: UInt32
        let multi: MultiHandle
        unowned let loop: CurlLoop
        /// When curl wants `CURL_SOCKET_TIMEOUT`; nil when it wants no timer. One-shot, as curl expects.
        var deadline: ContinuousClock.Instant?
        var inFlight = 0

        init(index: UInt32, multi: MultiHandle, loop: CurlLoop) {
            self.index = index
            self.multi = multi
            self.loop = loop
        }
    }

    private let inbox: Inbox
    private let poll: EventPoll
    private var shards: [Shard] = []
    private var active: [ObjectIdentifier: (transfer: Transfer, shard: Shard)] = [:]
    /// Handed over by callers, not given to curl yet; the first `startedWaiting` of them are started.
    private var waiting: [Transfer] = []
    private var startedWaiting = 0

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
        guard let poll = EventPoll(),
              poll.watch(inbox.wakeUpFD, tag: Self.wakeUpTag, readable: true, writable: false, isNew: true) else { return nil }
        self.inbox = inbox
        self.poll = poll
        for index in 0..<UInt32(Self.shardCount) {
            guard let multi = MultiHandle() else { return nil }
            let shard = Shard(index: index, multi: multi, loop: self)
            multi.setCallbacks(
                context: Unmanaged.passUnretained(shard).toOpaque(),
                socket: { _, socket, action, context, socketContext in
                    guard let context else { return 0 }
                    let shard = Unmanaged<Shard>.fromOpaque(context).takeUnretainedValue()
                    shard.loop.watch(socket, of: shard, action: action, isWatched: socketContext != nil)
                    return 0
                },
                timer: { _, milliseconds, context in
                    guard let context else { return 0 }
                    let shard = Unmanaged<Shard>.fromOpaque(context).takeUnretainedValue()
                    shard.deadline = milliseconds < 0 ? nil : .now + .milliseconds(milliseconds)
                    return 0
                }
            )
            shards.append(shard)
        }
    }

    private func run() {
        var isOpen = true
        while isOpen {
            var isWoken = false
            poll.wait(timeoutMilliseconds: startedWaiting < waiting.count ? 0 : millisecondsUntilDeadline()) { event in
                if event.tag == Self.wakeUpTag {
                    isWoken = true
                } else {
                    act(on: event, in: shards[Int(event.tag)])
                }
            }
            let now = ContinuousClock.now
            for shard in shards {
                if let deadline = shard.deadline, deadline <= now { fireTimer(of: shard) }
            }
            if isWoken { isOpen = takeInbox() }
            if isOpen { startWaiting() }
        }
        shutDown()
    }

    // MARK: curl's callbacks

    /// Socket callback: watch `socket` of `shard` for what curl asks (`CURL_POLL_*`), or stop
    /// watching it. A socket curl has not seen here before has no pointer assigned yet.
    private func watch(_ socket: curl_socket_t, of shard: Shard, action: Int32, isWatched: Bool) {
        if action == CURL_POLL_REMOVE {
            poll.unwatch(socket)
            return
        }
        let readable = action == CURL_POLL_IN || action == CURL_POLL_INOUT
        let writable = action == CURL_POLL_OUT || action == CURL_POLL_INOUT
        if poll.watch(socket, tag: shard.index, readable: readable, writable: writable, isNew: !isWatched), !isWatched {
            shard.multi.assign(socket, Unmanaged.passUnretained(shard).toOpaque())
        }
    }

    // MARK: Driving curl

    private func act(on event: EventPoll.Event, in shard: Shard) {
        var events: Int32 = 0
        if event.isReadable { events |= CURL_CSELECT_IN }
        if event.isWritable { events |= CURL_CSELECT_OUT }
        if event.isFailed { events |= CURL_CSELECT_ERR }
        shard.multi.socketAction(event.fd, events: events)
        collectFinished(in: shard)
    }

    private func fireTimer(of shard: Shard) {
        shard.deadline = nil
        shard.multi.socketAction(CURL_SOCKET_TIMEOUT, events: 0)
        collectFinished(in: shard)
    }

    /// How long `epoll_wait` may sleep: until the first deadline, rounded up (waking early would
    /// only make curl set the same deadline again), or -1 without one.
    private func millisecondsUntilDeadline() -> Int32 {
        guard let deadline = shards.lazy.compactMap(\.deadline).min() else { return -1 }
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { return 0 }
        let (seconds, attoseconds) = remaining.components
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        return Int32(clamping: seconds * 1_000 + (attoseconds + attosecondsPerMillisecond - 1) / attosecondsPerMillisecond)
    }

    private func collectFinished(in shard: Shard) {
        while let (easy, result) = shard.multi.nextFinished() {
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
        let shard = shards.min { $0.inFlight < $1.inFlight }!
        guard shard.multi.add(transfer.easy) else {
            transfer.complete(.failure(HTTPError(kind: .network, message: "curl refused the transfer")))
            return
        }
        shard.inFlight += 1
        active[ObjectIdentifier(transfer)] = (transfer, shard)
    }

    /// Removes `transfer` from curl and resumes its caller; nothing if it is not in flight.
    private func finish(_ transfer: Transfer, _ result: Result<HTTPResponse, HTTPError>) {
        guard let (_, shard) = active.removeValue(forKey: ObjectIdentifier(transfer)) else { return }
        shard.multi.remove(transfer.easy)
        shard.inFlight -= 1
        transfer.complete(result)
    }

    /// Fails what is in flight and detaches curl's callbacks; the multi handles and the epoll
    /// instance are freed with the loop.
    private func shutDown() {
        for (transfer, _) in Array(active.values) { finish(transfer, .failure(Self.closed)) }
        for shard in shards { shard.multi.removeCallbacks() }
    }

    /// How many new transfers join curl per pass of the loop: each costs a connection lookup and
    /// often a connect, about 0.2 ms with 2,000 connections open.
    private static let startsPerPass = 64
    /// Multi handles (connection caches) the transfers are spread over: 2,000 connections to one
    /// host make caches of 250.
    private static let shardCount = 8
    /// The inbox's eventfd in the epoll set; shards are tagged with their index.
    private static let wakeUpTag = UInt32.max
    private static let closed = HTTPError(kind: .cancelled, message: "the HTTP client was closed")
}
