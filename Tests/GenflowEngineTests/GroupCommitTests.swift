import Foundation
import GenflowCore
@testable import GenflowEngine
import GenflowPostgres
@testable import GenflowQueue
import GenflowRecords
import Logging
import Synchronization
import GenflowTestHarness
import Testing

/// One `test.step` step whose output is the input's `n` (0 when left out); ClaimFloorsTests queues it too.
let tiny = """
    name: tiny
    steps:
      - id: only
        stage: test.step
        with: {output: "{{input.n}}"}
    input:
      properties:
        n: {type: integer, default: 0}
    """

/// Three steps: pure, with an outside effect (a record file), pure.
private func mixed(record: String) -> String {
    """
    name: mixed
    steps:
      - id: a
        stage: test.step
        with: {output: "{{input.n}}"}
      - id: b
        stage: test.step
        with: {record: \(record), output: "{{steps.a.output.output}}"}
      - id: c
        stage: test.step
        with: {output: "{{steps.b.output.output}}"}
    input:
      properties:
        n: {type: integer, default: 0}
    """
}

extension Harness {
    /// Submits `count` jobs of `pipeline` and claims them all for `owner`.
    func claimed(_ pipeline: String, count: Int, owner: String) async throws -> [Job] {
        for index in 0..<count { try await submit(pipeline, input: ["n": .int(index)]) }
        let claimed = try await store.write { try $0.claim(owner: owner, limit: count, lease: .seconds(30), runningPerUser: nil) }
        #expect(claimed.count == count)
        return claimed.map(\.job)
    }

    /// Takes `job` away from its daemon as a rescuer would: its lease expires and `owner` claims it.
    func takeOver(_ job: Job, owner: String) async throws -> Job {
        _ = try await query("UPDATE genflow.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1::uuid", [job.id])
        let claimed = try await store.write { try $0.claim(owner: owner, limit: 10, lease: .seconds(30), runningPerUser: nil) }
        return try #require(claimed.first { $0.job.id == job.id }?.job)
    }

    /// The plan PostgreSQL makes for `sql` on a connection's first execution of it, with `arguments`
    /// (SQL literals, comma-separated) as its parameters.
    /// The plan of a connection's first execution of `sql`, in a transaction opened by `begin`.
    func plan(_ sql: String, _ arguments: String, begin: String = "BEGIN") async throws -> String {
        try await store.pool.withConnection { connection in
            try connection.transaction({ connection in
                try connection.query("PREPARE planned AS \(sql)")
                defer { _ = try? connection.query("DEALLOCATE planned") }
                return try connection.query("EXPLAIN EXECUTE planned(\(arguments))").rows.compactMap { $0["QUERY PLAN"] }.joined(separator: "\n")
            }, begin: begin)
        }
    }

    func count(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> Int {
        try await query(sql, parameters).first?.decode("n", as: Int.self) ?? -1
    }
}

/// The writes of a whole one-step run: start, checkpoint, end.
private func wholeRun(_ job: Job, output: JSON = "ok") -> [JobWrite] {
    [
        .startStep(step: "only", stage: "test.step", attempt: 1, policyAttempt: 1),
        .completeStep(step: "only", attempt: 1, output: output, duration: .milliseconds(3)),
        .completeJob,
    ]
}

@Suite("Group commit: one writer, many jobs per statement", .serialized, .timeLimit(.minutes(3)))
struct GroupCommitTests {
    @Test("a batch merges each job's writes: an attempt started and ended in it is one row in its final state, in order")
    func merging() async throws {
        let harness = try await Harness.make(pipelines: ["tiny": tiny])
        let jobs = try await harness.claimed("tiny", count: 2, owner: "a")
        var batch = JobBatch()
        let lease = { (job: Job) in Lease(owner: "a", token: job.leaseToken) }
        batch.add(wholeRun(jobs[0]), for: jobs[0], lease: lease(jobs[0]))
        batch.add([.startStep(step: "only", stage: "test.step", attempt: 1, policyAttempt: 1)], for: jobs[1], lease: lease(jobs[1]))
        let first = try #require(batch.entries.first)
        #expect(batch.entries.count == 2)
        #expect(first.inserted.count == 1 && first.ended.isEmpty)
        #expect(first.inserted.first?.status == .completed && first.inserted.first?.output == "ok")
        #expect(first.events.map(\.type) == ["job.started", "step.started", "step.completed", "job.completed"])
        #expect(try await harness.store.apply(batch).held == Set(jobs.map(Claim.init)))

        // The second job's attempt was written running; its end is now an update of that row.
        var next = JobBatch()
        next.add([.completeStep(step: "only", attempt: 1, output: 1, duration: .milliseconds(5)), .completeJob], for: jobs[1], lease: lease(jobs[1]))
        #expect(next.entries.first?.ended.count == 1 && next.entries.first?.inserted.isEmpty == true)
        #expect(try await harness.store.apply(next).held == [Claim(jobs[1])])
        // A completed job's result is its checkpoints' outputs, read from them: the row keeps no copy.
        #expect(try await harness.job(jobs[0].id).result == ["only": "ok"])
        #expect(try await harness.job(jobs[1].id).result == ["only": 1])
        #expect(try await harness.count("SELECT count(*)::int AS n FROM genflow.jobs WHERE result IS NOT NULL") == 0)
        for job in jobs {
            #expect(try await harness.job(job.id).status == .completed)
            let runs = try await harness.runs(job.id)
            #expect(runs.map(\.status) == [.completed])
            #expect(runs.first.map { $0.startedAt <= ($0.finishedAt ?? "") } == true)
            #expect(try await harness.events(job.id).map(\.type) == ["job.queued", "job.started", "step.started", "step.completed", "job.completed"])
        }
    }

    @Test("a lease taken away before the batch commits: that job's writes are dropped and reported, the others commit")
    func fencing() async throws {
        let harness = try await Harness.make(pipelines: ["tiny": tiny])
        let jobs = try await harness.claimed("tiny", count: 3, owner: "daemon-a")
        let stolen = try await harness.takeOver(jobs[1], owner: "daemon-b")
        #expect(stolen.leaseToken == jobs[1].leaseToken + 1)

        var batch = JobBatch()
        for job in jobs { batch.add(wholeRun(job), for: job, lease: Lease(owner: "daemon-a", token: job.leaseToken)) }
        let held = try await harness.store.apply(batch).held
        #expect(held == [Claim(jobs[0]), Claim(jobs[2])])
        for job in [jobs[0], jobs[2]] {
            #expect(try await harness.job(job.id).status == .completed)
            #expect(try await harness.runs(job.id).map(\.status) == [.completed])
        }
        let kept = try await harness.job(jobs[1].id)
        #expect(kept.status == .running && kept.leaseToken == stolen.leaseToken)
        #expect(try await harness.runs(jobs[1].id).isEmpty)
        #expect(try await harness.count("SELECT count(*)::int AS n FROM genflow.event_log WHERE job_id = $1::uuid AND type <> 'job.queued'", [jobs[1].id]) == 0)

        // A daemon that claimed the job again while its old run still writes (both runs' writes in
        // one batch): the two claims stay apart and only the newest token writes.
        var both = JobBatch()
        both.add(wholeRun(stolen, output: "old"), for: jobs[1], lease: Lease(owner: "daemon-b", token: jobs[1].leaseToken))
        both.add(wholeRun(stolen, output: "new"), for: stolen, lease: Lease(owner: "daemon-b", token: stolen.leaseToken))
        #expect(both.entries.count == 2)
        #expect(try await harness.store.apply(both).held == [Claim(stolen)])
        #expect(try await harness.job(stolen.id).status == .completed)
        #expect(try await harness.runs(stolen.id).map(\.output) == ["new"])
    }

    @Test("a burst on a table no ANALYZE has seen: the claim walks jobs_ready in its order and the fence looks each job up by its key")
    func plansUnderABurst() async throws {
        let harness = try await Harness.make(pipelines: ["tiny": tiny])
        let version = try await harness.submit("tiny").pipelineVersion
        _ = try await harness.query("""
            INSERT INTO genflow.jobs (id, pipeline, pipeline_version, user_id, input, status)
            SELECT gen_random_uuid(), 'tiny', $1, 'burst', '{}', 'queued' FROM generate_series(1, 4000)
            """, [version])
        // A connection's first plans are custom plans, made for the values given: the claim's
        // limit must not talk the planner into reading every ready row and sorting them.
        let noFloors = "'{}'::int[], '{}'::timestamptz[], '{}'::uuid[]"
        let claim = try await harness.plan(StoreSession.claimStatement(capped: false), "'daemon-a', 256, 30000, \(noFloors)")
        #expect(claim.contains("Index Scan using jobs_ready"), "\(claim)")
        #expect(!claim.contains("Bitmap Index Scan on jobs_ready"), "\(claim)")
        // One priority at a time: the walk of a priority's range is bounded by `run_at`, so jobs
        // scheduled for later are never read (a filter on `run_at` over the index read them all).
        #expect(claim.split(separator: "\n").contains { $0.contains("Index Cond: ((priority = ") && $0.contains("(run_at <= now())") }, "\(claim)")
        // The priorities are found from the end of each range, away from the entries of claimed jobs.
        #expect(claim.contains("Scan Backward using jobs_ready"), "\(claim)")
        // The engine runs it on its generic plan (made once): the same walks, and the claimed
        // jobs updated by key.
        let generic = try await harness.plan(StoreSession.claimStatement(capped: false), "'daemon-a', 256, 30000, \(noFloors)", begin: JobStore.beginByKey)
        #expect(generic.contains("Index Scan using jobs_ready") && generic.contains("Scan Backward using jobs_ready"), "\(generic)")
        // The walk starts at the priority's floor: the row comparison is a key of the index scan.
        #expect(generic.split(separator: "\n").contains { $0.contains("Index Cond: ((priority = ") && $0.contains("(ROW(run_at, id) > ROW(") }, "\(generic)")
        #expect(!generic.contains("Bitmap Index Scan on jobs_ready"), "\(generic)")
        #expect(generic.contains("Index Scan using jobs_pkey on jobs t") && !generic.contains("Seq Scan on jobs"), "\(generic)")

        let running = try await harness.store.write { try $0.claim(owner: "daemon-a", limit: 2_000, lease: .seconds(30), runningPerUser: nil) }
        #expect(running.count == 2_000)
        let some = running.prefix(100).map(\.job).sorted { $0.id < $1.id }
        func array(_ values: [String], _ type: String) -> String { "'{\(values.joined(separator: ","))}'::\(type)[]" }
        let nulls = Array(repeating: "NULL", count: some.count)
        let fence = try await harness.plan(StoreSession.fenceStatement, [
            "'daemon-a'", array(some.map(\.id), "uuid"), array(some.map { String($0.leaseToken) }, "bigint"), array(nulls, "text"),
            array(Array(repeating: "0", count: some.count), "int"), array(nulls, "text"), array(nulls, "jsonb"), array(nulls, "bigint"), array(nulls, "numeric"),
        ].joined(separator: ", "), begin: JobStore.beginByKey)
        // As a flush plans it (its generic plan). The lock: one key lookup per input row; joined the other way round, every running job
        // was read, through `jobs_leases`, for every input row. The update that follows looks
        // the kept rows up by key too: left to its costs, the planner scanned the whole table
        // and hash-joined it (in the flushes of the model bench, 2–35 ms a statement).
        #expect(fence.contains("LockRows"), "\(fence)")
        #expect(fence.components(separatedBy: "Index Scan using jobs_pkey on jobs").count == 3, "the lock and the update, each by key: \(fence)")
        #expect(!fence.contains("Seq Scan on jobs"), "\(fence)")
        #expect(!fence.contains("jobs_leases"), "the fence read the running jobs instead of looking each one up: \(fence)")
    }

    @Test("a batch with one value the database refuses fails only that job, with the database's error; the others commit")
    func badRow() async throws {
        let harness = try await Harness.make(pipelines: ["tiny": tiny])
        let jobs = try await harness.claimed("tiny", count: 4, owner: "w")
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let writer = JobWriter(store: harness.store, logger: logger, lanes: 1)  // one lane: the held flush holds back the others
        let stopped = Mutex<[String]>([])
        writer.onStop { claim, _ in stopped.withLock { $0.append(claim.jobID) } }
        @Sendable func lease(_ job: Job) -> Lease { Lease(owner: "w", token: job.leaseToken) }

        // Hold the first flush on a row lock, so the next three jobs' writes queue up as one batch.
        let blocker = try PostgresConnection(harness.url)
        try blocker.execute("BEGIN")
        try blocker.query("SELECT 1 FROM genflow.jobs WHERE id = $1::uuid FOR UPDATE", [jobs[0].id])
        let first = Task { try await writer.commit(wholeRun(jobs[0]), for: jobs[0], lease: lease(jobs[0])) }
        while try await harness.count("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") == 0 {
            try await Task.sleep(for: .milliseconds(5))
        }
        // jsonb cannot hold U+0000: PostgreSQL refuses this output, as it would a model reply carrying one.
        let outputs: [JSON] = ["fine", .string("bad \u{0} byte"), "fine too"]
        let rest = (1...3).map { index in
            Task { () -> (any Error)? in
                do {
                    try await writer.commit(wholeRun(jobs[index], output: outputs[index - 1]), for: jobs[index], lease: lease(jobs[index]))
                    return nil
                } catch {
                    return error
                }
            }
        }
        while writer.queuedCount < 3 { try await Task.sleep(for: .milliseconds(5)) }
        try blocker.execute("COMMIT")
        try await first.value
        let errors = await rest.asyncMap { await $0.value }

        #expect(errors[0] == nil && errors[2] == nil)
        let refused = try #require(errors[1] as? WriteRefused)
        #expect(refused.jobID == jobs[2].id)
        #expect(stopped.withLock { $0 } == [jobs[2].id])
        #expect(writer.statistics.isolated == 1, "the three jobs were one batch, applied again job by job")
        for index in [0, 1, 3] { #expect(try await harness.job(jobs[index].id).status == .completed) }
        let failed = try await harness.job(jobs[2].id)
        #expect(failed.status == .failed)
        #expect(failed.error?["class"] == "internal" && failed.error?["reason"] == "database")
        let message = failed.error?["message"]?.stringValue ?? ""
        #expect(message.contains("the database refused this job's writes") && message.contains("22P05"), "\(message)")
        #expect(try await harness.events(jobs[2].id).map(\.type).last == "job.failed")
    }

    @Test("a lease taken over while a step runs: the engine's writes for that job are dropped and its run stops; the other jobs complete")
    func leaseLostMidStep() async throws {
        let harness = try await Harness.make(pipelines: ["sleeper": sleeper])
        let engine = harness.engine(workers: 4)
        // Queued before the engine starts, so one claim takes them; 5 s steps leave time to take one
        // over however slow the machine, and end before the first heartbeat (lease / 3) would notice.
        var jobs: [Job] = []
        for _ in 0..<4 { jobs.append(try await harness.submit("sleeper", input: ["sleep": "5s"])) }
        try await harness.running(engine) {
            let deadline = ContinuousClock.now + .seconds(60)
            while try await harness.count("SELECT count(*)::int AS n FROM genflow.step_runs WHERE status = 'running'") < 4 {
                try #require(ContinuousClock.now < deadline, "four attempts running not seen within 60 s")
                try await Task.sleep(for: .milliseconds(10))
            }
            let stolen = try await harness.takeOver(jobs[0], owner: "thief")
            for job in jobs.dropFirst() { #expect(try await harness.wait(for: job.id).status == .completed) }
            while engine.runningCount > 0 { try await Task.sleep(for: .milliseconds(10)) }
            let kept = try await harness.job(stolen.id)
            #expect(kept.status == .running && kept.leaseToken == stolen.leaseToken)
            #expect(try await harness.runs(stolen.id).map(\.status) == [.running], "the old owner's checkpoint was not written")
            #expect(try await harness.events(stolen.id).map(\.type).contains("step.completed") == false)
        }
    }

    @Test("two engines on one database while leases are taken over all the time: no deadlock, every job completed once, every step checkpointed once")
    func twoEnginesOverlapping() async throws {
        let record = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-overlap-\(UUID().uuidString)").path
        let harness = try await Harness.make(pipelines: ["mixed": mixed(record: record)])
        let total = 1_500
        let database = try #require(harness.url.split(separator: "/").last?.split(separator: "?").first.map(String.init))
        let deadlocksBefore = try await harness.count("SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = $1", [database])
        let pipeline = try #require(harness.catalog.pipeline(named: "mixed"))
        try await harness.store.write { session in
            try session.recordPipelineVersion(name: pipeline.name, version: pipeline.version, definition: pipeline.canonical, file: pipeline.file)
            for index in 0..<total {
                _ = try session.submit(JobSubmission(pipeline: "mixed", pipelineVersion: pipeline.version, userID: "u\(index % 5)", input: ["n": .int(index)]))
            }
        }
        let first = harness.engine(workers: 24), second = harness.engine(workers: 24)
        // A rescuer's view of the world: running jobs' leases expire under their daemons, so the
        // other engine (or the same one) claims them with a new token while the old run still writes.
        let thief = Task {
            while !Task.isCancelled {
                _ = try? await harness.query("""
                    UPDATE genflow.jobs SET lease_expires_at = now() - interval '1 second'
                    WHERE id IN (SELECT id FROM genflow.jobs WHERE status = 'running' AND rescues = 0 ORDER BY random() LIMIT 3)
                    """)
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        try await harness.running(first) {
            try await harness.running(second) {
                let deadline = ContinuousClock.now + .seconds(120)
                while ContinuousClock.now < deadline,
                      try await harness.count("SELECT count(*)::int AS n FROM genflow.jobs WHERE status NOT IN ('completed', 'failed', 'cancelled')") > 0 {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        thief.cancel()
        #expect(try await harness.count("SELECT count(*)::int AS n FROM genflow.jobs WHERE status = 'completed'") == total)
        #expect(try await harness.count("SELECT count(*)::int AS n FROM genflow.jobs WHERE rescues > 0") > 0, "no lease was ever taken over")
        let perStep = try await harness.query("""
            SELECT count(*)::int AS n FROM (SELECT job_id, step_id FROM genflow.step_runs WHERE status = 'completed' GROUP BY 1, 2 HAVING count(*) = 1) once
            """).first?.decode("n", as: Int.self)
        let odd = try await harness.query("""
            SELECT job_id::text, step_id, attempt, status, genflow.iso(started_at) AS s, genflow.iso(finished_at) AS f FROM genflow.step_runs
            WHERE job_id IN (SELECT job_id FROM genflow.step_runs WHERE status = 'running'
                UNION SELECT j.id FROM genflow.jobs j, (VALUES ('a'), ('b'), ('c')) AS v(step)
                WHERE (SELECT count(*) FROM genflow.step_runs r WHERE r.job_id = j.id AND r.step_id = v.step AND r.status = 'completed') <> 1)
            ORDER BY job_id, started_at
            """).map { $0.values.map { $0 ?? "-" }.joined(separator: " ") }
        #expect(perStep == total * 3, "every step of every job has exactly one checkpoint: \(odd.joined(separator: "\n"))")
        #expect(try await harness.count("SELECT count(*)::int AS n FROM genflow.step_runs WHERE status = 'running'") == 0)
        let completedEvents = try await harness.query("""
            SELECT count(*)::int AS n, count(DISTINCT job_id)::int AS jobs FROM genflow.event_log WHERE type = 'job.completed'
            """).first
        #expect(completedEvents?.decode("n", as: Int.self) == total && completedEvents?.decode("jobs", as: Int.self) == total)
        let deadlocksAfter = try await harness.count("SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = $1", [database])
        #expect(deadlocksAfter == deadlocksBefore, "PostgreSQL reported deadlocks")
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

@Suite("Submissions written in batches", .timeLimit(.minutes(3)))
struct BatchedSubmissionTests {
    @Test("submissions made at once share statements; one idempotency key used by many of them still makes one job")
    func concurrentSubmissions() async throws {
        let harness = try await Harness.make(pipelines: ["tiny": tiny])
        let submitter = JobSubmitter(catalog: harness.catalog, store: harness.store)
        let results = try await withThrowingTaskGroup(of: (job: Job, created: Bool, keyed: Bool).self) { group in
            for index in 0..<60 {
                group.addTask {
                    let keyed = index % 3 == 0
                    let result = try await submitter.submit(pipeline: "tiny", input: ["n": .int(index)], userID: "ann", idempotencyKey: keyed ? "once" : nil)
                    return (result.job, result.created, keyed)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let keyed = results.filter(\.keyed)
        #expect(keyed.count == 20 && Set(keyed.map(\.job.id)).count == 1, "every submission with the key got the same job")
        #expect(keyed.filter(\.created).count == 1)
        #expect(results.filter { !$0.keyed }.allSatisfy { $0.created })
        #expect(try await harness.count("SELECT count(*)::int AS n FROM genflow.jobs") == 41)
        #expect(try await harness.count("SELECT count(*)::int AS n FROM genflow.event_log WHERE type = 'job.queued'") == 41)
        #expect(submitter.batchCount < 60, "60 submissions made at once were written in \(submitter.batchCount) statements")
    }
}

@Suite("Debits in batches", .timeLimit(.minutes(3)))
struct BatchedDebitTests {
    @Test("debits of several jobs in one batch: once per job step, balances in order per user, one event per new entry")
    func debits() async throws {
        let harness = try await Harness.make(pipelines: ["tiny": tiny])
        try await harness.store.write { session in
            _ = try session.recordTokens(userID: "u1", change: 100, reason: "credit", idempotencyKey: "credit:u1:start")
        }
        let jobs = try await harness.claimed("tiny", count: 3, owner: "w")
        // jobs[0] debited before (a step run again after a crash): its entry comes back unchanged.
        var earlier = JobBatch()
        earlier.add([.debit(step: "pay", amount: 10, reason: "first")], for: jobs[0], lease: Lease(owner: "w", token: jobs[0].leaseToken))
        let first = try await harness.store.apply(earlier)
        #expect(first.debits[JobBatch.debitKey(job: jobs[0].id, step: "pay")]?.entry.balanceAfter == 90)

        var batch = JobBatch()
        for (job, amount) in zip(jobs, [10, 20, 30]) {
            batch.add([.debit(step: "pay", amount: amount, reason: "batch")], for: job, lease: Lease(owner: "w", token: job.leaseToken))
        }
        // A second debit of jobs[1] with another step, and again the same step (a duplicate key in one batch).
        batch.add([.debit(step: "tip", amount: 5, reason: "tip"), .debit(step: "tip", amount: 5, reason: "tip")], for: jobs[1],
                  lease: Lease(owner: "w", token: jobs[1].leaseToken))
        let outcome = try await harness.store.apply(batch)
        let made = { (job: Job, step: String) in outcome.debits[JobBatch.debitKey(job: job.id, step: step)] }
        #expect(made(jobs[0], "pay")?.created == false && made(jobs[0], "pay")?.entry.change == -10)
        #expect(made(jobs[1], "pay")?.created == true && made(jobs[2], "pay")?.created == true && made(jobs[1], "tip")?.created == true)
        // u1 (every job's user): 90 before, then the batch's debits in its order: jobs[1]'s two (-20, -5), then jobs[2]'s (-30).
        #expect([made(jobs[1], "pay"), made(jobs[1], "tip"), made(jobs[2], "pay")].map { $0?.entry.balanceAfter } == [70, 65, 35])
        #expect(try await harness.store.read { try $0.balance(userID: "u1") } == 35)
        #expect(try await harness.store.read { try $0.ledger(userID: "u1") }.count == 5)
        let events = try await harness.query("SELECT data->>'change' AS change FROM genflow.event_log WHERE type = 'token_balance_updated' ORDER BY id").map { $0["change"] ?? "" }
        #expect(events == ["100", "-10", "-20", "-5", "-30"])
    }
}
