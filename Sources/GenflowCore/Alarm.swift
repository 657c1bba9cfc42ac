internal import Dispatch

/// A one-shot timer that leaves nothing behind when cancelled.
///
/// `Task.sleep` on Linux schedules a dispatch timer that stays queued until its deadline even when
/// the sleeping task is cancelled: racing every step attempt against a 60 s `Task.sleep` left
/// tens of thousands of dead timers in the heap, and perf of a busy daemon put 19 % of its CPU in
/// `_dispatch_timer_heap_resift`. A cancelled dispatch source timer is taken out of the heap at once.
public final class Alarm: @unchecked Sendable {
    // DispatchSource is thread-safe; `source` is set once.
    private let source: any DispatchSourceTimer
    private static let queue = DispatchQueue(label: "genflow.alarms")

    /// Calls `fire` once `delay` has passed, unless cancelled first.
    public init(after delay: Duration, _ fire: @escaping @Sendable () -> Void) {
        let (seconds, attoseconds) = delay.components
        let nanoseconds = seconds > Int64(Int.max / 1_000_000_000) - 1 ? Int.max : Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        source = DispatchSource.makeTimerSource(queue: Self.queue)
        source.setEventHandler(handler: fire)
        source.schedule(deadline: .now() + .nanoseconds(max(0, nanoseconds)))
        source.activate()
    }

    /// Stops the alarm; `fire` is not called after this returns (unless it is running now).
    public func cancel() {
        source.cancel()
    }

    deinit {
        source.cancel()
    }
}
