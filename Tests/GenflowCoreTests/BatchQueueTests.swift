import GenflowCore
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

    @Test("a waiting consumer is woken by the first item; every item arrives exactly once")
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
