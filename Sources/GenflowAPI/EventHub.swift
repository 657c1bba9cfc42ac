internal import GenflowCore
public import GenflowHTTPServer
public import GenflowQueue
internal import Foundation
public import Logging
internal import Synchronization

/// Delivers events to WebSocket subscribers, whichever daemon wrote them.
///
/// One reader per daemon follows the event log in delivery order (`(tx, id)`, only what every
/// earlier transaction has made visible), woken by NOTIFY and polling as a fallback, and hands each
/// event to the live subscribers it matches. A subscriber that asks for `since` first replays from
/// the table up to the reader's position, then joins live at exactly that position: no gap, no
/// duplicate (see docs/architecture.md, "WebSocket delivery").
public final class EventHub: Sendable {
    let store: JobStore
    let authenticator: Authenticator
    let metrics: MetricsPage
    let logger: Logger
    let wake = WakeSignal()
    /// Signalled when the reader gets its position, a subscriber goes live, or one leaves.
    let changed = Broadcast()

    /// A connection's subscriptions and where it is in the stream. Guarded by `state`.
    struct Subscriber {
        var connection: WebSocketConnection
        var principal: Principal
        /// The user whose every event it receives (users: themselves; operators: none).
        var user: String?
        /// When its token stops holding: the reader closes it then (4401).
        var expiresAt: Date?
        var jobs: Set<String> = []
        /// Live: receives events as the reader hands them over. Otherwise still replaying.
        var isLive = false
        /// Where its live stream started (events after this, of its user, have been sent).
        var joinedAt: EventCursor = .start
    }

    struct State {
        /// The reader's position: every event up to here has been handed to live subscribers.
        var cursor: EventCursor?
        var subscribers: [UInt64: Subscriber] = [:]
        var byUser: [String: Set<UInt64>] = [:]
        var byJob: [String: Set<UInt64>] = [:]

        /// Connections between asking for the reader's position and going live.
        var joining = 0

        /// Whether anyone needs the reader: a connection follows a user's stream or a job, or is joining.
        var isFollowed: Bool { joining > 0 || subscribers.values.contains { $0.isLive || !$0.jobs.isEmpty } }
    }
    let state = Mutex(State())

    public init(store: JobStore, authenticator: Authenticator, metrics: MetricsPage, logger: Logger) {
        self.store = store
        self.authenticator = authenticator
        self.metrics = metrics
        self.logger = logger
    }

    // MARK: The reader

    /// Follows the event log until cancelled: reads after each wake-up (NOTIFY) and every
    /// `pollInterval` (an open transaction anywhere in the cluster can hold events back).
    public func run(pollInterval: Duration = .milliseconds(250)) async {
        var swept = ContinuousClock.now
        while !Task.isCancelled {
            if ContinuousClock.now - swept >= .seconds(1) {
                swept = .now
                closeExpired()
            }
            do {
                if state.withLock({ $0.cursor == nil && $0.isFollowed }) {
                    let start = try await store.read { try $0.latestEventCursor() }
                    state.withLock { $0.cursor = start }
                    changed.signal()
                }
                while try await pump() {}
            } catch {
                logger.warning("reading events failed; retrying", metadata: ["genflow.error": "\(error)"])
            }
            await wake.wait(timeout: pollInterval)
        }
        state.withLock { state in
            for subscriber in state.subscribers.values { subscriber.connection.close(code: 1001, reason: "server shutting down") }
        }
    }

    /// Closes, with 4401, the connections whose token has expired: one sweep a second over all of
    /// them, instead of a sleeping task per connection (which cost 4.5 KiB each at 10,000 sockets).
    func closeExpired(now: Date = Date()) {
        let expired = state.withLock { state in
            state.subscribers.values.filter { $0.expiresAt.map { $0 <= now } ?? false }.map(\.connection)
        }
        for connection in expired {
            connection.close(code: 4401, reason: "token expired: reconnect with a fresh token and since")
        }
    }

    /// A NOTIFY on the events channel arrived.
    public func notified() { wake.signal() }

    /// Reads one batch after the reader's position and delivers it; true when the batch was full.
    private func pump() async throws -> Bool {
        // With no one to read for, drop the position instead of following the log (a query per
        // NOTIFY, a thousand a second under load, for nobody): the first connection to join makes
        // the reader take the end of the log again.
        let position = state.withLock { state -> EventCursor? in
            if !state.isFollowed { state.cursor = nil }
            return state.cursor
        }
        guard let cursor = position else { return false }
        let limit = 1_000
        let events = try await store.read { try $0.events(after: cursor, limit: limit) }
        guard let last = events.last else { return false }
        var sent = 0
        state.withLock { state in
            for event in events {
                var targets = state.byUser[event.userID] ?? []
                if let job = event.jobID, let watchers = state.byJob[job] { targets.formUnion(watchers) }
                guard !targets.isEmpty else { continue }
                let message = Message(event)
                for id in targets {
                    if let subscriber = state.subscribers[id], message.send(to: subscriber.connection) { sent += 1 }
                }
            }
            state.cursor = EventCursor(after: last)
        }
        metrics.eventsSent(sent)
        return events.count == limit
    }

    /// An event as sent on the wire, serialised once however many connections it goes to. Step
    /// progress coalesces to the latest per step.
    struct Message {
        let text: String
        let coalescingKey: String?

        init(_ event: Event) {
            text = event.json.description
            coalescingKey = event.kind == .stepProgress ? "progress:\(event.jobID ?? ""):\(event.step ?? "")" : nil
        }

        func send(to connection: WebSocketConnection) -> Bool {
            connection.send(text, coalescingKey: coalescingKey)
        }
    }

    // MARK: Subscribers

    /// Authenticates a WebSocket upgrade on `/v1/events` (token in `Authorization` or `?token=`).
    public func upgrade(_ request: UpgradeRequest) -> Result<any WebSocketHandler, UpgradeRefusal> {
        let path = request.path.split(separator: "?").first.map(String.init) ?? request.path
        guard path == "/v1/events" else { return .failure(UpgradeRefusal(status: 404, body: "no WebSocket endpoint here; use /v1/events")) }
        var since: Int64?
        if let text = request.query["since"] {
            guard let value = Int64(text), value >= 0 else { return .failure(UpgradeRefusal(status: 400, body: "since must be an event id")) }
            since = value
        }
        // The token is checked once the socket is open (an identity provider's keys may need a
        // fetch, and this runs on the listener's thread): a refusal closes it with 4000 + status.
        let token = Authenticator.token(headers: request.headers, query: request.query)
        return .success(Session(hub: self, token: token, client: request.clientAddress, watchedUser: request.query["user_id"], since: since))
    }

    /// Registers a new connection; it replays from `since` (or starts at the reader's position) and then goes live.
    func opened(_ connection: WebSocketConnection, principal: Principal, user: String?, since: Int64?, expiresAt: Date?) {
        metrics.webSocketOpened()
        state.withLock { state in
            state.subscribers[connection.id] = Subscriber(connection: connection, principal: principal, user: user, expiresAt: expiresAt)
        }
        Task {
            do {
                var from: EventCursor?
                if let since, since > 0 {
                    guard let cursor = try await store.read({ try $0.cursor(afterEvent: since) }) else {
                        send(connection, ["op": "error", "code": "unknown_since", "message": .string("event \(since) is not stored (deleted by retention?); continuing live from now")])
                        try await join(connection, from: nil, job: nil)
                        return
                    }
                    from = cursor
                } else if since == 0 {
                    from = .start
                }
                try await join(connection, from: from, job: nil)
            } catch {
                logger.warning("replay failed", metadata: ["genflow.error": "\(error)"])
                connection.close(code: 1011, reason: "replay failed")
            }
        }
    }

    /// Replays `job`'s events (or, without a job, the subscriber's user's events) after `from`
    /// up to the reader's position, then joins live there. Without `from`, joins at the reader's
    /// position; if the reader moved on meanwhile, what it passed is replayed first.
    func join(_ connection: WebSocketConnection, from: EventCursor?, job: String?) async throws {
        guard let subscriber = state.withLock({ $0.subscribers[connection.id] }) else { return }
        state.withLock { $0.joining += 1 }
        defer { state.withLock { $0.joining -= 1 } }
        wake.signal()
        // A connection-level join of an operator with no user has nothing of its own to replay.
        let user = job == nil ? subscriber.user : nil
        let replays = job != nil || user != nil
        var position = from
        while true {
            guard let target = await readerPosition() else {
                connection.close(code: 1011, reason: "the event reader has no position yet (database unavailable?); reconnect with since")
                return
            }
            if replays, let start = position, start < target {
                guard let reached = try await replay(connection, job: job, user: user, after: start, through: target) else { return }
                position = reached
            }
            let outcome = state.withLock { state -> Bool? in
                guard var subscriber = state.subscribers[connection.id] else { return nil }
                guard state.cursor == target else { return false }
                if let job {
                    subscriber.jobs.insert(job)
                    state.byJob[job, default: []].insert(connection.id)
                } else {
                    subscriber.isLive = true
                    subscriber.joinedAt = target
                    if let user = subscriber.user { state.byUser[user, default: []].insert(connection.id) }
                }
                state.subscribers[connection.id] = subscriber
                return true
            }
            if outcome == true { changed.signal() }
            guard outcome == false else { return }
            position = max(position ?? target, target)
        }
    }

    /// Sends the matching events in (after, through], paging and waiting for the connection's queue
    /// to drain so a long replay never overflows it. Returns `through`, or nil when the connection closed.
    private func replay(_ connection: WebSocketConnection, job: String?, user: String?, after: EventCursor, through: EventCursor) async throws -> EventCursor? {
        var position = after
        while true {
            let from = position
            let page = try await store.read { try $0.events(after: from, through: through, userID: user, jobID: job, limit: 200) }
            for event in page {
                guard Message(event).send(to: connection) else { return nil }
            }
            metrics.eventsSent(page.count)
            guard let last = page.last, page.count == 200 else { return through }
            position = EventCursor(after: last)
            guard await connection.waitForRoom() else { return nil }
        }
    }

    /// The reader's position once it has one (nil when it has none within 10 s).
    private func readerPosition() async -> EventCursor? {
        await changed.wait(until: { state.withLock { $0.cursor != nil } }, timeout: .seconds(10))
        return state.withLock(\.cursor)
    }

    func received(_ text: String, on connection: WebSocketConnection) {
        guard let message = try? JSON(parsing: text), case .object = message, let op = message["op"]?.stringValue else {
            send(connection, ["op": "error", "code": "invalid_message", "message": "send a JSON object with an 'op' (subscribe, unsubscribe, ping)"])
            return
        }
        switch op {
        case "ping":
            send(connection, ["op": "pong"])
        case "subscribe", "unsubscribe":
            guard let job = message["job_id"]?.stringValue, UUID(uuidString: job) != nil else {
                send(connection, ["op": "error", "code": "invalid_message", "message": .string("\(op) needs a 'job_id' (a job's uuid)")])
                return
            }
            let since = message["since"]?.intValue
            if message["since"] != nil, since == nil {
                send(connection, ["op": "error", "code": "invalid_message", "message": "since must be an event id"])
                return
            }
            if op == "unsubscribe" {
                state.withLock { state in
                    state.subscribers[connection.id]?.jobs.remove(job)
                    state.byJob[job]?.remove(connection.id)
                    if state.byJob[job]?.isEmpty == true { state.byJob[job] = nil }
                }
                send(connection, ["op": "unsubscribed", "job_id": .string(job)])
                return
            }
            Task { await subscribe(connection, job: job, since: since.map(Int64.init)) }
        default:
            send(connection, ["op": "error", "code": "unknown_op", "message": .string("unknown op '\(op.prefix(40))' (ops: subscribe, unsubscribe, ping)")])
        }
    }

    /// Adds a job to a connection: its owner (or an operator) only; another user's job is not found.
    ///
    /// When the connection already follows the job's user, live events come through that stream:
    /// the subscription only replays what came before the stream went live, so nothing arrives twice.
    private func subscribe(_ connection: WebSocketConnection, job: String, since: Int64?) async {
        guard let subscriber = state.withLock({ $0.subscribers[connection.id] }) else { return }
        do {
            let owner: String? = subscriber.principal == .operator ? nil : subscriber.user
            guard let record = try await store.read({ try $0.job(id: job, userID: owner) }) else {
                send(connection, ["op": "error", "code": "not_found", "job_id": .string(job), "message": "job not found"])
                return
            }
            var from: EventCursor?
            if let since {
                from = since == 0 ? .start : try await store.read { try $0.cursor(afterEvent: since) }
                if from == nil {
                    send(connection, ["op": "error", "code": "unknown_since", "message": .string("event \(since) is not stored; subscribing from now")])
                }
            }
            guard subscriber.user == record.userID else {
                send(connection, ["op": "subscribed", "job_id": .string(job)])
                try await join(connection, from: from, job: job)
                return
            }
            guard let joinedAt = await liveSince(connection) else { return }
            state.withLock { _ = $0.subscribers[connection.id]?.jobs.insert(job) }
            send(connection, ["op": "subscribed", "job_id": .string(job)])
            if let start = from, start < joinedAt {
                _ = try await replay(connection, job: job, user: nil, after: start, through: joinedAt)
            }
        } catch {
            send(connection, ["op": "error", "code": "internal", "message": "subscribing failed; try again"])
        }
    }

    /// Where the connection's own stream went live, once it has (it may still be replaying `since`).
    private func liveSince(_ connection: WebSocketConnection) async -> EventCursor? {
        await changed.wait { state.withLock { $0.subscribers[connection.id].map(\.isLive) ?? true } }
        return state.withLock { $0.subscribers[connection.id]?.joinedAt }
    }

    func closed(_ connection: WebSocketConnection) {
        metrics.webSocketClosed()
        let dropped = connection.counts.dropped
        metrics.eventsDropped(dropped, reason: "coalesced_or_overflow")
        state.withLock { state in
            guard let subscriber = state.subscribers.removeValue(forKey: connection.id) else { return }
            if let user = subscriber.user {
                state.byUser[user]?.remove(connection.id)
                if state.byUser[user]?.isEmpty == true { state.byUser[user] = nil }
            }
            for job in subscriber.jobs {
                state.byJob[job]?.remove(connection.id)
                if state.byJob[job]?.isEmpty == true { state.byJob[job] = nil }
            }
        }
        changed.signal()
    }

    private func send(_ connection: WebSocketConnection, _ message: JSON) {
        connection.send(message.description)
    }

    /// Open connections (for tests and the dashboard's figures).
    public var connectionCount: Int { state.withLock { $0.subscribers.count } }
}

/// One WebSocket's handler: the hub with what the upgrade established.
final class Session: WebSocketHandler {
    let hub: EventHub
    let token: String?
    let client: String
    /// An operator's `?user_id=`.
    let watchedUser: String?
    let since: Int64?

    init(hub: EventHub, token: String?, client: String, watchedUser: String?, since: Int64?) {
        self.hub = hub
        self.token = token
        self.client = client
        self.watchedUser = watchedUser
        self.since = since
    }

    /// Checks the token, then registers the connection; a refused token closes it with 4000 +
    /// the HTTP status (4401, 4429). The connection closes with 4401 when the token expires, and the
    /// client reconnects with a fresh token and `since`.
    func opened(_ connection: WebSocketConnection) {
        let (hub, token, client, watchedUser, since) = (hub, token, client, watchedUser, since)
        Task { [weak connection] in
            let authenticated: Authenticated
            do throws(APIError) {
                authenticated = try await hub.authenticator.authenticate(token: token, client: client)
            } catch {
                connection?.close(code: UInt16(4000 + error.status), reason: error.message)
                return
            }
            // An operator without ?user_id= follows the events of no user: reloads and other system news.
            // The reader closes the connection when its token expires.
            let principal = authenticated.principal
            guard let connection else { return }
            hub.opened(
                connection, principal: principal, user: principal == .operator ? watchedUser ?? "" : principal.owner(named: nil), since: since,
                expiresAt: authenticated.expiresAt
            )
        }
    }
    func received(_ text: String, on connection: WebSocketConnection) { hub.received(text, on: connection) }
    func closed(_ connection: WebSocketConnection) { hub.closed(connection) }
}
