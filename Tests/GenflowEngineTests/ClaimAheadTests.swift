import GenflowCore
@testable import GenflowEngine
@testable import GenflowQueue
import GenflowTestHarness
import Testing

@Suite("Claiming ahead of free workers", .timeLimit(.minutes(3)))
struct ClaimPaceTests {
    @Test("the pace is the smoothed rate at which jobs end; no jobs ending means nothing claimed ahead")
    func pace() {
        let start = ContinuousClock.now
        var pace = ClaimPace(now: start, endedSoFar: 7)
        #expect(pace.jobs(within: .seconds(1)) == 0)
        pace.observe(endedSoFar: 9, now: start + .milliseconds(10))
        #expect(pace.rate == 0, "a sample closer than 50 ms is skipped")
        pace.observe(endedSoFar: 107, now: start + .milliseconds(100))
        #expect(pace.rate == 1_000)
        #expect(pace.jobs(within: .milliseconds(100)) == 100)
        pace.observe(endedSoFar: 107, now: start + .milliseconds(200))
        #expect(pace.rate == 500, "a sample without ends halves the rate")
        #expect(pace.jobs(within: .seconds(3600)) == 1_800_000)
    }

    @Test("a claim is due when a worker is idle, or when fewer than half the jobs expected to end soon wait claimed ahead")
    func claimDue() {
        #expect(ClaimPace.isDue(free: 1, waiting: 0, ahead: 0), "an idle worker, nothing ahead")
        #expect(ClaimPace.isDue(free: 3, waiting: 0, ahead: 100))
        #expect(ClaimPace.isDue(free: 0, waiting: 0, ahead: 1), "every worker busy, one job expected to end, none waiting")
        #expect(!ClaimPace.isDue(free: 0, waiting: 1, ahead: 1))
        #expect(ClaimPace.isDue(free: 0, waiting: 50, ahead: 100))
        #expect(!ClaimPace.isDue(free: 0, waiting: 51, ahead: 100), "more than half wait: more ends first, then one larger claim")
    }
}

@Suite("Claiming ahead against a real PostgreSQL", .serialized, .timeLimit(.minutes(3)))
struct ClaimAheadTests {
    /// An engine with one worker that claims one job ahead as soon as one job has ended.
    private func eager(_ harness: Harness, readyTimeToLive: Duration) -> Engine {
        harness.engine(workers: 1, claimAhead: .seconds(3_600), readyTimeToLive: readyTimeToLive)
    }

    /// A quick job (so the engine has a pace), a slow one and another quick one, queued before the
    /// engine starts, in that order of priority: the one worker runs the first, then the slow
    /// one, and the engine claims the last ahead of it, all on its own clock.
    private func queueBehindSlowJob(_ harness: Harness) async throws -> (slow: Job, quick: Job) {
        _ = try await harness.submit("sleeper", input: ["sleep": "0ms"], priority: 2)
        let slow = try await harness.submit("sleeper", input: ["sleep": "30s"], priority: 1)
        let quick = try await harness.submit("sleeper", input: ["sleep": "0ms"])
        return (slow, quick)
    }

    /// Waits until the busy engine runs the slow job and has claimed the quick one ahead. The claim
    /// is seen by the quick job's lease token, which every claim changes (its status may already
    /// be back to queued after a short time to live); no attempt of it started.
    private func claimedAhead(_ harness: Harness, _ slow: Job, _ quick: Job) async throws {
        try await harness.wait(for: slow.id, [.running])
        let deadline = ContinuousClock.now + .seconds(60)
        while try await harness.job(quick.id).leaseToken == quick.leaseToken {
            try #require(ContinuousClock.now < deadline, "the quick job was not claimed ahead within 60 s")
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try await harness.runs(quick.id).isEmpty, "claimed ahead: no attempt started")
    }

    /// The events of a job that was claimed ahead and given back: as if it had waited in the queue.
    private func expectUntouched(_ harness: Harness, _ job: Job) async throws {
        let events = try await harness.events(job.id)
        #expect(events.filter { $0.type == "job.queued" }.count == 1, "\(events.map(\.type))")
        #expect(events.contains { $0.data["released"] != nil } == false)
    }

    @Test("jobs claimed ahead are taken in claim order, by count or by age, across the queue's compaction")
    func readyQueueOrder() async throws {
        let harness = try await Harness.make(pipelines: ["sleeper": sleeper])
        _ = try await harness.submit("sleeper", input: ["sleep": "0ms"])
        let claimed = try #require(try await harness.store.write { try $0.claim(owner: "q", limit: 1, lease: .seconds(30), runningPerUser: nil) }.first)
        let start = ContinuousClock.now
        func ready(_ index: Int) -> Engine.ReadyJob { Engine.ReadyJob(claimed: claimed, claimedAt: start + .milliseconds(index)) }
        func order(_ jobs: [Engine.ReadyJob]) -> [Int] { jobs.map { Int(($0.claimedAt - start) / .milliseconds(1)) } }

        var queue = Engine.ReadyQueue()
        for index in 0..<600 { queue.append(ready(index)) }
        #expect(order(queue.take(300)) == Array(0..<300))
        // Taken by age: the 150 oldest left; more than half of the storage is then behind the head.
        #expect(order(queue.take(while: { $0.claimedAt < start + .milliseconds(450) })) == Array(300..<450))
        for index in 600..<610 { queue.append(ready(index)) }
        #expect(queue.count == 160)
        #expect(order(queue.take(5)) == Array(450..<455))
        #expect(order(queue.take()) == Array(455..<610))
        #expect(queue.count == 0 && queue.take().isEmpty)
    }

    @Test("a job claimed ahead of a busy worker goes back to the queue untouched after its time to live, and an idle engine runs it")
    func returnedAfterTimeToLive() async throws {
        let harness = try await Harness.make(pipelines: ["sleeper": sleeper])
        let busy = eager(harness, readyTimeToLive: .milliseconds(300))
        let (slow, quick) = try await queueBehindSlowJob(harness)
        try await harness.running(busy) {
            // The slow job holds the busy engine's one worker for 30 s (released when the test ends).
            try await claimedAhead(harness, slow, quick)
            let back = try await harness.wait(for: quick.id, [.queued])
            #expect(back.attempts == 0 && back.leaseToken > quick.leaseToken)
            try await expectUntouched(harness, quick)
            let idle = harness.engine(workers: 1)
            try await harness.running(idle) {
                #expect(try await harness.wait(for: quick.id).status == .completed)
                #expect(try await harness.job(slow.id).status == .running, "the quick job did not wait for the slow one")
                let started = try await harness.events(quick.id).first { $0.type == "step.started" }
                #expect(started?.data["daemon"]?.stringValue == idle.owner)
            }
        }
    }

    @Test("at shutdown a job claimed ahead goes back to the queue at once, untouched; the job that ran is released")
    func returnedAtShutdown() async throws {
        let harness = try await Harness.make(pipelines: ["sleeper": sleeper])
        let busy = eager(harness, readyTimeToLive: .seconds(60))
        let (slow, quick) = try await queueBehindSlowJob(harness)
        try await harness.running(busy) { try await claimedAhead(harness, slow, quick) }
        let back = try await harness.job(quick.id)
        #expect(back.status == .queued && back.attempts == 0)
        try await expectUntouched(harness, quick)
        #expect(try await harness.job(slow.id).status == .queued, "released after the grace period")
        let finished = try await harness.running(harness.engine(workers: 2)) { try await harness.wait(for: quick.id) }
        #expect(finished.status == .completed)
    }
}
