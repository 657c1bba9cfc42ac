internal import Dispatch
internal import Synchronization

/// Timeouts that are nearly always cancelled before they fire (a step attempt's): a table of
/// slots of `resolution` checked by one dispatch timer while any is pending, instead of a dispatch
/// timer each. Creating and cancelling a timer per attempt (`Alarm`) was 5 % of the daemon on
/// one-step jobs, most of it in libdispatch's manager thread; here each is a dictionary entry.
///
/// A timeout fires after its delay, never before, and at most about one `resolution` late.
public final class Deadlines: Sendable {
    /// The table step attempts use.
    public static let shared = Deadlines(resolution: .milliseconds(10))

    /// A scheduled timeout, for `cancel`.
    public struct Entry: Sendable {
        fileprivate let slot: Int
        fileprivate let id: Int
    }

    private struct State {
        var nextID = 0
        /// Pending timeouts by the slot they fire in.
        var slots: [Int: [Int: @Sendable () -> Void]] = [:]
        var pending = 0
        /// Slots up to this one have fired.
        var checkedThrough: Int
        /// Ticks every `resolution` while anything is pending.
        var timer: (any DispatchSourceTimer)?
    }

    private let state: Mutex<State>
    private let resolution: Duration
    private let origin = ContinuousClock.now
    private static let queue = DispatchQueue(label: "genflow.deadlines")

    public init(resolution: Duration) {
        self.resolution = resolution
        state = Mutex(State(checkedThrough: 0))
    }

    /// Timeouts scheduled and not yet fired or cancelled.
    public var pendingCount: Int { state.withLock { $0.pending } }

    /// Calls `fire` once `delay` has passed, unless cancelled first.
    public func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> Entry {
        // The slot after the deadline's, so it never fires early (a century at most: no overflow).
        let slot = self.slot(of: .now + min(max(delay, .zero), .seconds(3_155_760_000))) + 1
        return state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            let at = max(slot, state.checkedThrough + 1)
            state.slots[at, default: [:]][id] = fire
            state.pending += 1
            if state.timer == nil { state.timer = startTimer() }
            return Entry(slot: at, id: id)
        }
    }

    /// Cancels `entry`: its `fire` is not called after this returns (unless it is running now).
    /// Returns false when it had fired (or was cancelled) already.
    @discardableResult
    public func cancel(_ entry: Entry) -> Bool {
        state.withLock { state in
            guard state.slots[entry.slot]?.removeValue(forKey: entry.id) != nil else { return false }
            state.pending -= 1
            if state.slots[entry.slot]?.isEmpty == true { state.slots[entry.slot] = nil }
            return true
        }
    }

    private func slot(of instant: ContinuousClock.Instant) -> Int {
        Int((instant - origin) / resolution)
    }

    private func startTimer() -> any DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: Self.queue)
        let nanoseconds = Int(resolution / .nanoseconds(1))
        timer.schedule(deadline: .now() + .nanoseconds(nanoseconds), repeating: .nanoseconds(nanoseconds), leeway: .nanoseconds(nanoseconds / 10))
        timer.setEventHandler { [weak self] in self?.fireDue() }
        timer.activate()
        return timer
    }

    /// Fires the timeouts of every slot passed since the last look; stops the timer when none is left.
    private func fireDue() {
        let now = slot(of: .now)
        let (due, idle) = state.withLock { state -> ([@Sendable () -> Void], (any DispatchSourceTimer)?) in
            var due: [@Sendable () -> Void] = []
            if state.checkedThrough < now {
                for slot in (state.checkedThrough + 1)...now {
                    if let fired = state.slots.removeValue(forKey: slot) { due += fired.values }
                }
                state.checkedThrough = now
                state.pending -= due.count
            }
            guard state.pending == 0 else { return (due, nil) }
            defer { state.timer = nil }
            return (due, state.timer)
        }
        idle?.cancel()
        due.forEach { $0() }
    }
}
