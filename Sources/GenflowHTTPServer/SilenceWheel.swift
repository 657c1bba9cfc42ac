/// When each WebSocket is next looked at for silence: a timing wheel of one-second slots, so that
/// scheduling a look and the sweep of one second cost O(1) per connection whatever their number.
/// (lws keeps its own per-connection validity timers in one sorted linked list, O(n) per insertion:
/// with 10,000 sockets their pings stalled the listener for seconds; see docs/architecture.md.)
///
/// Pure: the listener's service thread owns it and advances it once a second.
struct SilenceWheel<Key: Hashable> {
    /// Seconds since the wheel started.
    private(set) var now = 0
    private var slots: [[Key]]

    /// `horizon`: the farthest ahead, in seconds, a look may be scheduled.
    init(horizon: Int) {
        slots = Array(repeating: [], count: max(1, horizon) + 1)
    }

    /// Looks at `key` at `second` (clamped to between the next second and the horizon).
    mutating func schedule(_ key: Key, at second: Int) {
        let at = min(max(second, now + 1), now + slots.count - 1)
        slots[at % slots.count].append(key)
    }

    /// Moves to the next second; returns the keys to look at then.
    mutating func advance() -> [Key] {
        now += 1
        let slot = now % slots.count
        defer { slots[slot] = [] }
        return slots[slot]
    }

    /// What a look at a connection last heard from at `heard` decides, at `now`: a connection
    /// silent for `pingAfter` seconds is pinged (once: the next look is at the hang-up time), one
    /// silent for `hangUpAfter` is dropped; otherwise look again when it would be due a ping.
    enum Verdict: Equatable {
        case wait(until: Int)
        case ping(thenLookAt: Int)
        case hangUp
    }

    static func verdict(heard: Int, now: Int, pingAfter: Int, hangUpAfter: Int) -> Verdict {
        let silence = now - heard
        if silence >= hangUpAfter { return .hangUp }
        if silence >= pingAfter { return .ping(thenLookAt: heard + hangUpAfter) }
        return .wait(until: heard + pingAfter)
    }
}
