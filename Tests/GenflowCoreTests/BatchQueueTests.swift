import GenflowCore
import Synchronization
import Testing

@Suite("BatchQueue: what piles up while the consumer works is taken as one batch")
struct BatchQueueTests {
    @Test("items added while nobody waits come out together, in order; then nil once finished")
    func pilesUp() async {
        let queue = BatchQueue<Int>()
        (1...5).forEach(queue.add)
        #expect(await queue.next() == [1, 2, 3, 4, 5])
        queue.add(6)
        queue.finish()
        queue.add(7)
        #expect(await queue.next() == [6])
        #expect(await queue.next() == nil)
    }

    @Test("a waiting consumer is woken by the first item; every item arrives exactly once", .timeLimit(.minutes(1)))
    func wakesTheConsumer() async {
        let queue = BatchQueue<Int>()
        let consumer = Task { () -> [[Int]] in
            var batches: [[Int]] = []
            while let batch = await queue.next() { batches.append(batch) }
            return batches
        }
        for item in 0..<1_000 {
            queue.add(item)
            if item % 100 == 0 { await Task.yield() }
        }
        queue.finish()
        let batches = await consumer.value
        #expect(batches.flatMap { $0 } == Array(0..<1_000))
        #expect(batches.allSatisfy { !$0.isEmpty })
    }
}

@Suite("Alarm and WakeSignal: timers that leave nothing behind")
struct AlarmTests {
    @Test("an alarm fires once after its delay; a cancelled one never fires", .timeLimit(.minutes(1)))
    func firesOrNot() async throws {
        let fired = FirstResult<Int>()
        let alarm = Alarm(after: .milliseconds(10)) { fired.finish(1) }
        #expect(await fired.value() == 1)
        alarm.cancel()

        let count = Mutex(0)
        // A second before its deadline: a preempted test thread cannot let it fire first.
        let cancelled = Alarm(after: .seconds(1)) { count.withLock { $0 += 1 } }
        cancelled.cancel()
        // A later alarm fires on the same queue after the cancelled one's deadline.
        let later = FirstResult<Bool>()
        let probe = Alarm(after: .milliseconds(1_200)) { later.finish(true) }
        _ = await later.value()
        probe.cancel()
        #expect(count.withLock { $0 } == 0)
    }

    @Test("a deadline fires once, never before its delay; cancelled ones never fire; the table empties", .timeLimit(.minutes(1)))
    func deadlines() async throws {
        let table = Deadlines(resolution: .milliseconds(5))
        let count = Mutex(0)
        // Many cancelled, most before they are due (a loaded machine may let some fire first:
        // `cancel` says which), among some that fire.
        let scheduled = (0..<1_000).map { index in table.schedule(after: .milliseconds(index % 50)) { count.withLock { $0 += 1 } } }
        let firedFirst = scheduled.filter { !table.cancel($0) }.count
        let firings = (0..<20).map { index in
            let fired = FirstResult<ContinuousClock.Instant>()
            let delay = Duration.milliseconds(3 * index)
            let scheduled = ContinuousClock.now
            _ = table.schedule(after: delay) { fired.finish(.now) }
            return (fired, scheduled, delay)
        }
        for (fired, scheduled, delay) in firings {
            let at = await fired.value()
            #expect(at - scheduled >= delay, "fired before its delay")
        }
        // One scheduled past the cancelled ones' slots: once it fired, so would they have.
        let probe = FirstResult<Bool>()
        _ = table.schedule(after: .milliseconds(80)) { probe.finish(true) }
        _ = await probe.value()
        #expect(count.withLock { $0 } == firedFirst, "a cancelled timeout fired")
        #expect(table.pendingCount == 0)
    }

    @Test("a wait ends at a signal, at its timeout, or when its task is cancelled", .timeLimit(.minutes(1)))
    func waits() async {
        let signal = WakeSignal()
        let woken = Task { await signal.wait(timeout: .seconds(3_600)) }
        signal.signal()
        await woken.value
        await signal.wait(timeout: .milliseconds(5))
        let cancelled = Task { await signal.wait(timeout: .seconds(3_600)) }
        cancelled.cancel()
        await cancelled.value
    }
}

@Suite("Broadcast: waits for a condition without polling")
struct BroadcastTests {
    @Test("every waiter returns once its condition holds after a signal; none misses a change made before it waited", .timeLimit(.minutes(1)))
    func wakesAll() async {
        final class Counter: Sendable { let value = Mutex(0) }
        let changed = Broadcast()
        let counter = Counter()
        let waiters = (1...20).map { target in
            Task { await changed.wait { counter.value.withLock { $0 >= target } } }
        }
        for _ in 1...20 {
            counter.value.withLock { $0 += 1 }
            changed.signal()
        }
        for waiter in waiters { #expect(await waiter.value) }
        // Already true: no wait at all.
        #expect(await changed.wait { true })
    }

    @Test("a wait ends false at its timeout, or when its task is cancelled", .timeLimit(.minutes(1)))
    func endsFalse() async {
        let changed = Broadcast()
        #expect(await changed.wait(until: { false }, timeout: .milliseconds(20)) == false)
        let cancelled = Task { await changed.wait { false } }
        cancelled.cancel()
        #expect(await cancelled.value == false)
    }
}
