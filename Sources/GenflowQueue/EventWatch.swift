public import GenflowCore
internal import GenflowPostgres

/// Wakes a client of the database when events are committed (LISTEN genflow_events, on the
/// listener's own thread), so `genflow submit --follow` and `genflow test` wait for the next
/// commit instead of sleeping between reads. A wait also ends after its timeout, so a missed
/// notification (the listener reconnecting) costs at most that.
public final class EventWatch: Sendable {
    private let listener: NotificationListener
    private let wake: WakeSignal

    public init(store: JobStore) {
        let wake = WakeSignal()
        self.wake = wake
        listener = NotificationListener(connectionString: store.pool.connectionString, channels: [JobStore.eventsChannel]) { _ in wake.signal() }
    }

    /// Returns at the next commit of events (or one since the last wait), or after `timeout`.
    public func next(timeout: Duration) async {
        await wake.wait(timeout: timeout)
    }

    /// Stops listening.
    public func stop() {
        listener.stop()
    }
}
