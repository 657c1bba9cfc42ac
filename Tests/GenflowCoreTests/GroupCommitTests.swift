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
}
