import GenflowCore
import Synchronization
import Testing

@Suite("GroupCommit: batches of what queued during a flush")
struct GroupCommitFlushersTests {
    /// A flush that records its batch and waits until the test opens its gate.
    final class Gates: Sendable {
        let state = Mutex<(batches: [[Int]], gates: [Int: CheckedContinuation<Void, Never>])>(([], [:]))
        func flush(_ batch: [Int]) async {
            await withCheckedContinuation { gate in
                state.withLock { $0.batches.append(batch); $0.gates[batch[0]] = gate }
            }
        }
        func open(_ first: Int) { state.withLock { $0.gates.removeValue(forKey: first) }?.resume() }
        var batches: [[Int]] { state.withLock(\.batches) }
        func waitFor(batches count: Int) async {
            while state.withLock({ $0.batches.count < count }) { await Task.yield() }
        }
    }

    @Test("one flusher: what arrives during a flush waits for it and goes out as the next batch, in order", .timeLimit(.minutes(1)))
    func oneFlusher() async {
        let gates = Gates()
        let commits = GroupCommit<Int>(maxWeight: 100, backlog: 1_000) { await gates.flush($0) }
        commits.add(1)
        await gates.waitFor(batches: 1)
        (2...4).forEach(commits.add)
        try? await Task.sleep(for: .milliseconds(50))
        #expect(gates.batches == [[1]], "nothing else flushes while the first flush runs")
        gates.open(1)
        await gates.waitFor(batches: 2)
        gates.open(2)
        await commits.idle()
        #expect(gates.batches == [[1], [2, 3, 4]])
    }

    @Test("two flushers: an item that arrives during a flush is flushed at once; a third waits for either", .timeLimit(.minutes(1)))
    func twoFlushers() async {
        let gates = Gates()
        let commits = GroupCommit<Int>(maxWeight: 100, backlog: 1_000, flushers: 2) { await gates.flush($0) }
        commits.add(1)
        await gates.waitFor(batches: 1)
        commits.add(2)
        await gates.waitFor(batches: 2)
        (3...5).forEach(commits.add)
        try? await Task.sleep(for: .milliseconds(50))
        #expect(gates.batches == [[1], [2]])
        gates.open(2)
        await gates.waitFor(batches: 3)
        #expect(gates.batches == [[1], [2], [3, 4, 5]])
        gates.open(3)
        gates.open(1)
        await commits.idle()
        #expect(commits.flushCount == 3)
    }

    @Test("a deferred item starts no flush: it goes with the next item's, or alone once its time is up, or when idle is awaited", .timeLimit(.minutes(1)))
    func deferred() async {
        let flushed = Mutex<[[Int]]>([])
        let commits = GroupCommit<Int>(maxWeight: 100, backlog: 1_000, deferral: .seconds(60)) { batch in flushed.withLock { $0.append(batch) } }
        commits.addDeferred(1)
        try? await Task.sleep(for: .milliseconds(50))
        #expect(flushed.withLock { $0 }.isEmpty, "nothing flushed for a deferred item alone")
        commits.add(2)
        await commits.idle()
        #expect(flushed.withLock { $0 } == [[1, 2]], "the deferred item went with the next flush")
        commits.addDeferred(3)
        await commits.idle()
        #expect(flushed.withLock { $0 } == [[1, 2], [3]], "idle() flushes what was deferred")

        let soon = Mutex<[[Int]]>([])
        let quick = GroupCommit<Int>(maxWeight: 100, backlog: 1_000, deferral: .milliseconds(10)) { batch in soon.withLock { $0.append(batch) } }
        quick.addDeferred(4)
        quick.addDeferred(5)
        let deadline = ContinuousClock.now + .seconds(10)
        while soon.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        #expect(soon.withLock { $0 } == [[4, 5]], "flushed together once their time was up")
    }
}
