import GenflowTestSupport
import GenflowConfig
import GenflowPipeline
import Foundation
import GenflowAPI
import GenflowCore
@testable import GenflowEngine
import Logging
import GenflowQueue
import GenflowSchema
import GenflowRecords
import GenflowTestHarness
import Testing

private let threeSteps = """
    name: three
    input:
      properties:
        n: {type: integer, default: 7}
    steps:
      - id: a
        stage: test.step
        with: {output: "{{input.n}}"}
      - id: b
        stage: test.step
        with: {output: {from_a: "{{steps.a.output.output}}"}}
      - id: c
        stage: test.step
        with: {output: "done {{steps.b.output.output.from_a}}"}
    """

private let flaky = """
    name: flaky
    steps:
      - id: only
        stage: test.step
        with: {fail_attempts: FAILS, fail_class: CLASS, record: RECORD}
        retry: {max_attempts: 5, initial_interval: 300ms, backoff: 2, max_interval: 10s, jitter: 0}
    """


@Suite("Engine against a real PostgreSQL", .serialized, .timeLimit(.minutes(3)))
struct EngineTests {
    @Test("a multi-step job completes; each step sees earlier outputs; events come in order")
    func multiStep() async throws {
        let harness = try await Harness.make(pipelines: ["three": threeSteps])
        let engine = harness.engine()
        let job = try await harness.running(engine) {
            let submitted = try await harness.submit("three", input: ["n": 5])
            return try await harness.wait(for: submitted.id)
        }
        #expect(job.status == .completed)
        #expect(job.result?["c"]?["output"] == "done 5")
        #expect(job.result?["b"]?["output"] == ["from_a": 5])
        let runs = try await harness.runs(job.id)
        #expect(runs.map(\.stepID) == ["a", "b", "c"])
        #expect(runs.allSatisfy { $0.status == .completed && $0.attempt == 1 })
        let events = try await harness.events(job.id).map { "\($0.type)\($0.step.map { ":" + $0 } ?? "")" }
        #expect(events == [
            "job.queued", "job.started", "step.started:a", "step.completed:a", "step.started:b", "step.completed:b",
            "step.started:c", "step.completed:c", "job.completed",
        ])
    }

    @Test("two retryable failures then success: 3 attempts, delays of 300 ms then 600 ms taken from run_at")
    func durableRetries() async throws {
        let harness = try await Harness.make(pipelines: ["flaky": "placeholder"].mapValues { _ in
            flaky.replacingOccurrences(of: "FAILS", with: "2").replacingOccurrences(of: "CLASS", with: "server_error").replacingOccurrences(of: "RECORD", with: "/dev/null")
        })
        let job = try await harness.running(harness.engine()) {
            try await harness.wait(for: try await harness.submit("flaky").id)
        }
        #expect(job.status == .completed)
        let runs = try await harness.runs(job.id)
        #expect(runs.map(\.status) == [.failed, .failed, .completed])
        #expect(runs.map(\.retryDelayMilliseconds) == [300, 600, nil])
        #expect(runs.map(\.errorClass) == ["server_error", "server_error", nil])
        // Each retry started no earlier than the failure plus its delay: the wait was the job's run_at.
        let gaps = try await harness.query("""
            SELECT (extract(epoch FROM next.started_at - prev.finished_at) * 1000)::bigint AS gap_ms, prev.retry_delay_ms
            FROM genflow.step_runs prev JOIN genflow.step_runs next ON next.job_id = prev.job_id AND next.attempt = prev.attempt + 1
            WHERE prev.job_id = $1::uuid ORDER BY prev.attempt
            """, [job.id])
        #expect(gaps.count == 2)
        for gap in gaps {
            let waited = try #require(gap.decode("gap_ms", as: Int.self)), delay = try #require(gap.decode("retry_delay_ms", as: Int.self))
            #expect(waited >= delay, "retry started \(waited) ms after the failure, before its \(delay) ms delay")
        }
        let retrying = try await harness.events(job.id).filter { $0.type == "step.retrying" }
        #expect(retrying.map { $0.data["delay_ms"] } == [300, 600])
        #expect(retrying.map { $0.data["attempt"] } == [1, 2])
    }

    @Test("a non-retryable failure fails the job at once, with its class and step")
    func nonRetryable() async throws {
        let yaml = flaky.replacingOccurrences(of: "FAILS", with: "5").replacingOccurrences(of: "CLASS", with: "invalid_request").replacingOccurrences(of: "RECORD", with: "/dev/null")
        let harness = try await Harness.make(pipelines: ["flaky": yaml])
        let job = try await harness.running(harness.engine()) {
            try await harness.wait(for: try await harness.submit("flaky").id)
        }
        #expect(job.status == .failed)
        #expect(job.error?["class"] == "invalid_request")
        #expect(job.error?["step"] == "only")
        #expect(job.error?["reason"] == "non_retryable")
        #expect(try await harness.runs(job.id).count == 1)
        #expect(try await harness.events(job.id).last?.type == "job.failed")
    }

    @Test("attempts run out: the job fails after max_attempts with attempts_exhausted")
    func exhausted() async throws {
        let yaml = flaky.replacingOccurrences(of: "FAILS", with: "9").replacingOccurrences(of: "CLASS", with: "timeout")
            .replacingOccurrences(of: "RECORD", with: "/dev/null").replacingOccurrences(of: "max_attempts: 5, initial_interval: 300ms", with: "max_attempts: 3, initial_interval: 10ms")
        let harness = try await Harness.make(pipelines: ["flaky": yaml])
        let job = try await harness.running(harness.engine()) {
            try await harness.wait(for: try await harness.submit("flaky").id)
        }
        #expect(job.status == .failed)
        #expect(job.error?["reason"] == "attempts_exhausted")
        #expect(try await harness.runs(job.id).count == 3)
    }

    @Test("the same idempotency key from the same user returns the same job; another user gets a new one")
    func idempotency() async throws {
        let harness = try await Harness.make(pipelines: ["three": threeSteps])
        let submitter = JobSubmitter(catalog: harness.catalog, store: harness.store)
        let first = try await submitter.submit(pipeline: "three", input: [:], userID: "u1", idempotencyKey: "k-1")
        let again = try await submitter.submit(pipeline: "three", input: ["n": 99], userID: "u1", idempotencyKey: "k-1")
        let other = try await submitter.submit(pipeline: "three", input: [:], userID: "u2", idempotencyKey: "k-1")
        #expect(first.created && !again.created && other.created)
        #expect(first.job.id == again.job.id)
        #expect(again.job.input == ["n": 7])
        #expect(other.job.id != first.job.id)
        #expect(try await harness.query("SELECT count(*) AS n FROM genflow.jobs").first?.decode("n", as: Int.self) == 2)
    }

    @Test("bad input is refused with every problem and nothing is queued")
    func badInput() async throws {
        let harness = try await Harness.make(pipelines: ["three": threeSteps])
        await #expect(throws: SubmissionError.self) { try await harness.submit("three", input: ["n": "seven", "extra": 1]) }
        do {
            try await harness.submit("three", input: ["n": "seven", "extra": 1])
        } catch let error as SubmissionError {
            #expect(error.code == "invalid_input")
            #expect(error.details.map(\.description) == ["extra: unknown key 'extra' (known keys: n)", "n: must be an integer, not the string \"seven\""])
        }
        await #expect(throws: SubmissionError.self) { try await harness.submit("thre") }
        #expect(try await harness.query("SELECT count(*) AS n FROM genflow.jobs").first?.decode("n", as: Int.self) == 0)
    }

    @Test("pages of the job list cover every job once, even jobs created in one millisecond; bad run_at is refused")
    func paging() async throws {
        let harness = try await Harness.make(pipelines: ["three": threeSteps])
        let pipeline = try #require(harness.catalog.pipeline(named: "three"))
        let ids = try await harness.store.write { session in
            try session.recordPipelineVersion(name: pipeline.name, version: pipeline.version, definition: pipeline.canonical, file: pipeline.file)
            return try (0..<7).map { _ in try session.submit(JobSubmission(pipeline: "three", pipelineVersion: pipeline.version, userID: "u", input: [:])).job.id }
        }
        var seen: [String] = []
        var cursor: PageCursor?
        repeat {
            let after = cursor
            let page = try await harness.store.read { try $0.jobs(userID: "u", before: after, limit: 2) }
            seen += page.map(\.id)
            cursor = page.count == 2 ? page.last.map(PageCursor.init(after:)) : nil
        } while cursor != nil
        #expect(seen.count == 7)
        #expect(Set(seen) == Set(ids))
        do {
            try await harness.submit("three", runAt: "tomorrow")
            Issue.record("expected a refusal")
        } catch let error as SubmissionError {
            #expect(error.code == "invalid_run_at")
        }
    }

    @Test("higher priority runs first, then older run_at")
    func priorities() async throws {
        let record = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-order-\(UUID().uuidString)").path
        let harness = try await Harness.make(pipelines: ["sleeper": sleeper])
        var submitted: [String: Int] = [:]
        for (index, priority) in [0, 5, 0, 10, 5].enumerated() {
            let job = try await harness.submit("sleeper", input: ["sleep": "1ms", "record": .string(record)], priority: priority)
            submitted[job.id] = index
        }
        try await harness.running(harness.engine(workers: 1)) {
            for id in submitted.keys { try await harness.wait(for: id) }
        }
        let order = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n").map { submitted[String($0.split(separator: " ")[0])]! }
        #expect(order == [3, 1, 4, 0, 2])
    }

    @Test("cancel works when queued, waiting to retry and running, and is refused once finished")
    func cancel() async throws {
        let waiting = flaky.replacingOccurrences(of: "name: flaky", with: "name: waiting").replacingOccurrences(of: "FAILS", with: "5")
            .replacingOccurrences(of: "CLASS", with: "server_error").replacingOccurrences(of: "RECORD", with: "/dev/null")
            .replacingOccurrences(of: "initial_interval: 300ms", with: "initial_interval: 1h").replacingOccurrences(of: "max_interval: 10s", with: "max_interval: 2h")
        let harness = try await Harness.make(pipelines: ["sleeper": sleeper, "waiting": waiting, "three": threeSteps])
        // Queued: it would only run in an hour.
        let later = try await harness.submit("three", runAt: "2999-01-01T00:00:00Z")
        let engine = harness.engine()
        try await harness.running(engine) {
            guard case .cancelled(let cancelled) = try await harness.store.write({ try $0.cancel(jobID: later.id) }) else {
                Issue.record("queued job was not cancelled at once")
                return
            }
            #expect(cancelled.status == .cancelled)

            let retrying = try await harness.submit("waiting")
            try await harness.wait(for: retrying.id, [.waitingRetry])
            guard case .cancelled = try await harness.store.write({ try $0.cancel(jobID: retrying.id) }) else {
                Issue.record("waiting job was not cancelled at once")
                return
            }

            let running = try await harness.submit("sleeper")
            try await harness.wait(for: running.id, [.running])
            try await harness.waitForRuns(of: running.id, "its first attempt running") { $0.first?.status == .running }
            guard case .requested = try await harness.store.write({ try $0.cancel(jobID: running.id) }) else {
                Issue.record("running job was not asked to stop")
                return
            }
            engine.notify(channel: JobStore.cancelChannel)
            let stopped = try await harness.wait(for: running.id)
            #expect(stopped.status == .cancelled)
            #expect(try await harness.runs(running.id).map(\.status) == [.cancelled])

            let done = try await harness.wait(for: try await harness.submit("three").id)
            #expect(try await harness.store.write({ try $0.cancel(jobID: done.id) }) == .notAllowed(.completed))
        }
        #expect(try await harness.job(later.id).status == .cancelled)
        #expect(try await harness.events(later.id).map(\.type) == ["job.queued", "job.cancelled"])
    }

    @Test("a failed job retried by hand resumes at the failed step; completed steps are not run again")
    func manualRetry() async throws {
        let record = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-retry-\(UUID().uuidString)").path
        let yaml = """
            name: twostep
            steps:
              - id: first
                stage: test.step
                with: {record: \(record)}
              - id: second
                stage: test.step
                with: {record: \(record), fail_attempts: 1, fail_class: auth}
            """
        let harness = try await Harness.make(pipelines: ["twostep": yaml])
        try await harness.running(harness.engine()) {
            let job = try await harness.submit("twostep")
            #expect(try await harness.wait(for: job.id).status == .failed)
            let (retried, _) = try await harness.store.write { try $0.retry(jobID: job.id) }
            #expect(retried?.status == .queued)
            // Attempts count again from 1 in the new generation, so `fail_attempts: 1` fails once more…
            #expect(try await harness.wait(for: job.id).status == .failed)
            _ = try await harness.store.write { try $0.retry(jobID: job.id) }
            #expect(try await harness.wait(for: job.id).status == .failed)
        }
        let lines = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains(" first ") }.count == 1, "the completed step ran again: \(lines)")
        #expect(lines.filter { $0.contains(" second ") }.count == 3)
    }
}

@Suite("Event log and migrations", .timeLimit(.minutes(3)))
struct EventLogTests {
    @Test("a reader never skips an event that commits late: events from an open transaction hold back later ones")
    func commitOrder() async throws {
        let url = try await TestDatabases.make()
        let early = try PostgresConnection(url), late = try PostgresConnection(url), reader = try PostgresConnection(url)
        func append(_ connection: PostgresConnection, _ type: String) throws {
            try connection.query("INSERT INTO genflow.events (user_id, type) VALUES ('u', $1)", [type])
        }
        func read(after cursor: EventCursor) throws -> [(String, EventCursor)] {
            let events = try reader.query("""
                SELECT id, tx::text AS tx, type FROM genflow.events
                WHERE (tx, id) > ($1::xid8, $2::bigint) AND tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY events.tx, events.id
                """, [cursor.tx, cursor.id]).rows
            return events.map { ($0["type"] ?? "", EventCursor(tx: $0["tx"] ?? "0", id: $0.decode("id") ?? 0)) }
        }
        /// Reads until `count` events are visible. Any open transaction in the cluster (other tests
        /// run in parallel) holds the horizon back for a moment, so visibility may lag a commit.
        func read(after cursor: EventCursor, count: Int) async throws -> [(String, EventCursor)] {
            let deadline = ContinuousClock.now + .seconds(30)
            while true {
                let events = try read(after: cursor)
                if events.count >= count || ContinuousClock.now > deadline { return events }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        // `early` takes the smaller id but commits last; `late` commits first.
        try early.execute("BEGIN")
        try append(early, "first-id-commits-late")
        try late.execute("BEGIN")
        try append(late, "second-id-commits-first")
        try late.execute("COMMIT")
        #expect(try read(after: .start).isEmpty, "an event became visible while an older transaction could still add one before it")
        try early.execute("COMMIT")
        let all = try await read(after: .start, count: 2)
        #expect(all.map(\.0) == ["first-id-commits-late", "second-id-commits-first"])

        // And the other way round: a transaction with an older xid commits an event with a later id.
        try early.execute("BEGIN")
        try early.query("SELECT pg_current_xact_id()")  // takes its xid now
        try late.execute("BEGIN")
        try append(late, "newer-xid")
        try append(early, "older-xid-later-id")
        try early.execute("COMMIT")
        let cursor = try #require(all.last).1
        let partial = try await read(after: cursor, count: 1)
        #expect(partial.map(\.0) == ["older-xid-later-id"])
        try late.execute("COMMIT")
        #expect(try await read(after: try #require(partial.last).1, count: 1).map(\.0) == ["newer-xid"])
    }

    @Test("a job's events of one transaction share a row: each keeps its own id, readers page through rows and cursors inside them")
    func eventRows() async throws {
        let url = try await TestDatabases.make()
        let store = JobStore(pool: DatabasePool(connectionString: url, size: 1))
        let (a, b) = (UUID().uuidString.lowercased(), UUID().uuidString.lowercased())
        func events(_ job: String, _ count: Int, _ name: String) -> [NewEvent] {
            (0..<count).map { NewEvent(userID: "packer", jobID: job, type: "\(name)\($0)", step: $0 % 2 == 0 ? "s\($0)" : nil, data: ["n": .int($0), "text": "say \"hi\"\n\u{1F600}\\"]) }
        }
        // 70 events of job a (a full row and 6), 2 of b, 1 of a again: four rows.
        let written = events(a, 70, "a") + events(b, 2, "b") + events(a, 1, "c")
        try await store.write { try $0.append(written) }
        let rows = try PostgresConnection(url).query("SELECT count(*)::int AS n FROM genflow.events WHERE user_id = 'packer'").rows
        #expect(rows.first?.decode("n", as: Int.self) == 4)

        // Visible once every transaction older than the write ended (other tests share the cluster).
        var visible: [Event] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while visible.count < written.count && ContinuousClock.now < deadline {
            visible = try await store.read { try $0.events(after: .start, userID: "packer", limit: 1_000) }
            if visible.count < written.count { try await Task.sleep(for: .milliseconds(10)) }
        }
        let all = visible
        #expect(all.map(\.type) == written.map(\.type))
        #expect(all.map(\.step) == written.map(\.step))
        #expect(all.map(\.data) == written.map(\.data))
        #expect(zip(all, all.dropFirst()).allSatisfy { EventCursor(after: $0) < EventCursor(after: $1) }, "ids in delivery order")
        #expect(Set(all.map(\.id)).count == all.count)

        // Pages of 10 and 7 end inside rows; the next page starts just after.
        for size in [7, 10] {
            var paged: [Event] = [], cursor = EventCursor.start
            while true {
                let page = try await store.read { [cursor] in try $0.events(after: cursor, userID: "packer", limit: size) }
                paged += page
                guard let last = page.last, page.count == size else { break }
                cursor = EventCursor(after: last)
            }
            #expect(paged.map(\.id) == all.map(\.id), "pages of \(size)")
        }
        // A cursor from an event id inside a row, one past a row's end (no such event), the latest.
        let fifth = try #require(try await store.read { try $0.cursor(afterEvent: all[4].id) })
        #expect(try await store.read { try $0.events(after: fifth, limit: 1_000) }.map(\.id) == all.dropFirst(5).map(\.id))
        #expect(try await store.read { try $0.cursor(afterEvent: all[69].id + 1) } == nil)
        #expect(try await store.read { try $0.latestEventCursor() } == EventCursor(after: try #require(all.last)))
        // Through a position inside a row, and by job.
        let through = EventCursor(after: all[29])
        #expect(try await store.read { try $0.events(after: .start, through: through, userID: "packer") }.map(\.id) == all.prefix(30).map(\.id))
        #expect(try await store.read { try $0.events(after: .start, jobID: b) }.map(\.type) == ["b0", "b1"])
        // SQL readers see one row per event in the view.
        let view = try PostgresConnection(url).query("""
            SELECT id, type, step, data::text FROM genflow.event_log WHERE user_id = 'packer' ORDER BY tx, id
            """).rows
        #expect(view.map { $0.decode("id", as: Int64.self) ?? 0 } == all.map(\.id))
        #expect(view.map { $0["type"] ?? "" } == all.map(\.type))
        #expect(view.map { $0["step"] } == all.map(\.step))
        #expect(try view.map { try JSON(parsing: $0["data"] ?? "") } == all.map(\.data))
    }

    @Test("delivery order is numeric in tx: transaction 9 comes before transaction 10 (not text order)")
    func numericOrder() async throws {
        let url = try await TestDatabases.make()
        let connection = try PostgresConnection(url)
        // Transaction ids given by hand, far below the horizon: as text, "10" would sort before "9".
        try connection.execute("""
            INSERT INTO genflow.events (user_id, type, tx) VALUES ('u', 'ten', '10'::xid8);
            INSERT INTO genflow.events (user_id, type, tx) VALUES ('u', 'nine', '9'::xid8);
            """)
        let store = JobStore(pool: DatabasePool(connectionString: url, size: 1))
        #expect(try await store.read { try $0.events(after: .start) }.map(\.type) == ["nine", "ten"])
        #expect(try await store.read { try $0.latestEventCursor() }.tx == "10")
        let nine = try #require(try await store.read { try $0.events(after: .start) }.first)
        #expect(try await store.read { try $0.events(after: EventCursor(after: nine)) }.map(\.type) == ["ten"])
        #expect(EventCursor(tx: "9", id: 5) < EventCursor(tx: "10", id: 1))
    }

    @Test("the next runnable time is the earliest run_at across priorities, of queued and waiting jobs only")
    func nextRunnable() async throws {
        let harness = try await Harness.make(pipelines: ["three": threeSteps])
        #expect(try await harness.store.read { try $0.millisecondsUntilNextRunnable() } == nil)
        let jobs = [try await harness.submit("three"), try await harness.submit("three"), try await harness.submit("three"), try await harness.submit("three")]
        // By priority: 5 in ten minutes, 0 in two (waiting for a retry), -3 in an hour; one running, due long ago.
        for (job, priority, minutes, status) in [(jobs[0], 5, 10, "queued"), (jobs[1], 0, 2, "waiting_retry"), (jobs[2], -3, 60, "queued"), (jobs[3], 9, -60, "running")] {
            _ = try await harness.query("""
                UPDATE genflow.jobs SET priority = $2, run_at = now() + $3 * interval '1 minute', status = $4 WHERE id = $1::uuid
                """, [job.id, priority, minutes, status])
        }
        let milliseconds = try #require(try await harness.store.read { try $0.millisecondsUntilNextRunnable() })
        #expect((100_000...120_000).contains(milliseconds), "\(milliseconds)")
        _ = try await harness.query("UPDATE genflow.jobs SET run_at = now() - interval '1 second' WHERE id = $1::uuid", [jobs[2].id])
        #expect(try #require(try await harness.store.read { try $0.millisecondsUntilNextRunnable() }) <= 0)
    }

    @Test("a claim takes due jobs by priority, then age, whatever is scheduled for later at any priority")
    func claimOrder() async throws {
        let harness = try await Harness.make(pipelines: ["three": threeSteps])
        var jobs: [(name: String, id: String)] = []
        // (name, priority, minutes from now): later ones at the top, middle and bottom priority.
        for (name, priority, minutes) in [("p9-later", 9, 5), ("p5-old", 5, -2), ("p5-later", 5, 1), ("p5-new", 5, -1),
                                          ("p0-old", 0, -3), ("p0-later", 0, 10), ("p-2-now", -2, 0), ("p-2-later", -2, 3)] {
            let job = try await harness.submit("three", priority: priority)
            _ = try await harness.query("UPDATE genflow.jobs SET run_at = now() + $2 * interval '1 minute' WHERE id = $1::uuid", [job.id, minutes])
            jobs.append((name, job.id))
        }
        func names(_ claimed: [ClaimedJob]) -> [String] { claimed.map { job in jobs.first { $0.id == job.job.id }?.name ?? "?" } }
        let first = try await harness.store.write { try $0.claim(owner: "a", limit: 3, lease: .seconds(30), runningPerUser: nil) }
        #expect(names(first) == ["p5-old", "p5-new", "p0-old"])
        let rest = try await harness.store.write { try $0.claim(owner: "a", limit: 10, lease: .seconds(30), runningPerUser: nil) }
        #expect(names(rest) == ["p-2-now"])
    }

    @Test("retention deletes finished jobs and old events, keeps the rest, one daemon at a time")
    func retention() async throws {
        let harness = try await Harness.make(pipelines: ["three": threeSteps])
        let old = try await harness.submit("three")
        let running = try await harness.submit("three")
        let recent = try await harness.submit("three")
        _ = try await harness.query("""
            UPDATE genflow.jobs SET status = 'completed', finished_at = now() - interval '8 days' WHERE id = $1::uuid;
            """, [old.id])
        _ = try await harness.query("UPDATE genflow.jobs SET status = 'completed', finished_at = now() WHERE id = $1::uuid", [recent.id])
        _ = try await harness.query("UPDATE genflow.events SET created_at = now() - interval '8 days' WHERE job_id = $1::uuid", [old.id])
        for job in [old, recent] {
            _ = try await harness.query("""
                INSERT INTO genflow.step_runs (job_id, step_id, attempt, stage, status) VALUES ($1::uuid, 'a', 1, 'test.step', 'completed')
                """, [job.id])
        }
        // While another daemon holds the housekeeping lock, this one does nothing.
        let other = try PostgresConnection(harness.url)
        try other.query("SELECT pg_advisory_lock(\(0x67656e666c6f79))")
        #expect(try await harness.store.read { try $0.deleteExpired(retention: .seconds(7 * 86_400)) } == nil)
        try other.query("SELECT pg_advisory_unlock(\(0x67656e666c6f79))")
        let deleted = try await harness.store.read { try $0.deleteExpired(retention: .seconds(7 * 86_400)) }
        #expect(deleted?.jobs == 1)
        #expect(deleted?.events == 1)
        let left = try await harness.query("SELECT id::text FROM genflow.jobs ORDER BY created_at").map { $0["id"] ?? "" }
        #expect(left == [running.id, recent.id])
        // A deleted job's attempts go with it (a trigger: attempt rows have no foreign key).
        let attempts = try await harness.query("SELECT job_id::text FROM genflow.step_runs").map { $0["job_id"] ?? "" }
        #expect(attempts == [recent.id])
    }

    @Test("migrations run once when several daemons start together")
    func concurrentMigrations() async throws {
        let base = try baseDatabaseURL()
        let admin = try PostgresConnection(base)
        let name = "genflow_migrate_\(UUID().uuidString.prefix(8).lowercased())"
        try admin.execute("CREATE DATABASE \(name)")
        let url = TestDatabases.url(base, database: name)
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    let pool = DatabasePool(connectionString: url, size: 1)
                    defer { pool.close() }
                    return try await pool.withConnection { try Migrations.migrate($0) }
                }
            }
            return try await group.reduce(into: [[Int]]()) { $0.append($1) }
        }
        #expect(applied.filter { !$0.isEmpty } == [Migrations.all.map(\.version)])
        let connection = try PostgresConnection(url)
        #expect(try Migrations.currentVersion(connection) == Migrations.all.last?.version)
    }

    @Test("genflow.iso, the API's time format, is inlined by the planner and formats as before")
    func isoInlined() async throws {
        let harness = try await Harness.make(pipelines: [:])
        // Every statement that returns a job formats its times with `genflow.iso`: the planner
        // must put the expression in its place (a function it cannot inline is parsed and planned
        // again by each statement that calls it).
        let plan = try await harness.query("EXPLAIN VERBOSE SELECT genflow.iso(now())").compactMap { $0["QUERY PLAN"] }.joined(separator: "\n")
        #expect(plan.contains("to_char(") && !plan.contains("iso("), "\(plan)")
        #expect(try await harness.query("SELECT genflow.iso('2026-12-06 15:04:05.123456+01') AS t").first?["t"] == "2026-12-06T14:04:05.123456Z")
    }
}

import GenflowPostgres

@Suite("Built-in stages in a pipeline", .timeLimit(.minutes(3)))
struct ParseStageTests {
    @Test("prepare_instructions renders system and user messages from the input")
    func prepareInstructions() async throws {
        let yaml = """
            name: prompt
            input:
              properties:
                instructions: {type: string}
                style: {type: string, default: modern}
            steps:
              - id: prompt
                stage: prepare_instructions
                with:
                  system: "You draw <canvas> objects."
                  template: "Draw: {{input.instructions}}. Style: {{input.style}}."
            """
        let harness = try await Harness.make(pipelines: ["prompt": yaml])
        let job = try await harness.running(harness.engine()) {
            try await harness.wait(for: try await harness.submit("prompt", input: ["instructions": "a cat & a dog"]).id)
        }
        #expect(job.status == .completed)
        #expect(job.result?["prompt"] == [
            "messages": [["role": "system", "content": "You draw <canvas> objects."], ["role": "user", "content": "Draw: a cat & a dog. Style: modern."]],
            "prompt": "Draw: a cat & a dog. Style: modern.",
        ])
    }

    @Test("a reply with prose is parsed into objects; an unusable one asks the earlier step again once, then fails")
    func parseAndReask() async throws {
        let record = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-reask-\(UUID().uuidString)").path
        let yaml = """
            name: drawing
            input:
              properties:
                reply: {type: string}
            steps:
              - id: generate
                stage: test.step
                with: {record: \(record), output: "{{input.reply}}"}
              - id: objects
                stage: parse_canvas_objects
                with: {text: "{{steps.generate.output.output}}"}
                on_invalid: {retry_step: generate, max: 1}
            """
        let harness = try await Harness.make(pipelines: ["drawing": yaml])
        let good = #"Here you go: [{"id": "r1", "type": "rectangle", "x": 0, "y": 0, "width": 10, "height": 10}]"#
        let (done, failed) = try await harness.running(harness.engine()) {
            let done = try await harness.wait(for: try await harness.submit("drawing", input: ["reply": .string(good)]).id)
            let failed = try await harness.wait(for: try await harness.submit("drawing", input: ["reply": "I can't draw."]).id)
            return (done, failed)
        }
        #expect(done.status == .completed)
        #expect(done.result?["objects"]?["objects"]?.arrayValue?.count == 1)
        #expect(done.result?["objects"]?["dropped"] == 0)
        #expect(failed.status == .failed)
        #expect(failed.error?["class"] == "output_invalid")
        #expect(failed.error?["step"] == "objects")
        let runs = try await harness.runs(failed.id).map { "\($0.stepID):\($0.status)" }
        #expect(runs == ["generate:superseded", "objects:failed", "generate:completed", "objects:failed"])
        let reask = try await harness.events(failed.id).first { $0.type == "step.retrying" }
        #expect(reask?.data["reason"] == "on_invalid")
        let generated = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n").filter { $0.hasPrefix(failed.id) }
        #expect(generated.count == 2, "the model step should have been asked twice")
    }
}

@Suite("Tokens and notify", .timeLimit(.minutes(3)))
struct TokenStageTests {
    static let paid = """
        name: paid
        steps:
          - id: balance
            stage: tokens.require
            with: {minimum: 50}
          - id: generate
            stage: test.step
            with: {output: {usage: {total_tokens: 30}}}
          - id: done
            stage: notify
            with: {event: ai_generation_completed, data: {tokens: "{{steps.generate.output.output.usage.total_tokens}}"}}
          - id: debit
            stage: tokens.debit
            with: {amount: "{{steps.generate.output.output.usage.total_tokens}}", reason: canvas_generation}
        """

    @Test("require, notify and debit: one ledger entry, the balance event and the pipeline's own event")
    func paidJob() async throws {
        let harness = try await Harness.make(pipelines: ["paid": Self.paid])
        _ = try await harness.store.write { try $0.recordTokens(userID: "rich", change: 100, reason: "credit", idempotencyKey: "c1") }
        let (rich, poor) = try await harness.running(harness.engine()) {
            (try await harness.wait(for: try await harness.submit("paid", user: "rich").id),
             try await harness.wait(for: try await harness.submit("paid", user: "poor").id))
        }
        #expect(rich.status == .completed)
        #expect(try await harness.store.read { try $0.balance(userID: "rich") } == 70)
        let ledger = try await harness.store.read { try $0.ledger(userID: "rich") }
        #expect(ledger.map(\.change) == [-30, 100])
        #expect(ledger.first?.jobID == rich.id)
        #expect(ledger.first?.balanceAfter == 70)
        let events = try await harness.events(rich.id)
        #expect(events.first { $0.type == "ai_generation_completed" }?.data == ["tokens": 30])
        let balance = try #require(events.first { $0.type == "token_balance_updated" })
        #expect(balance.data["balance"] == 70 && balance.data["change"] == -30 && balance.data["reason"] == "canvas_generation")

        #expect(poor.status == .failed)
        #expect(poor.error?["class"] == "insufficient_tokens")
        #expect(poor.error?["message"] == "balance 0 is below the 50 tokens this pipeline requires")
        #expect(try await harness.runs(poor.id).count == 1, "insufficient_tokens is never retried")
    }

    @Test("notify refuses the daemon's own event names: a pipeline cannot forge job.completed")
    func reservedEventName() async throws {
        let harness = try await Harness.make(pipelines: ["forger": """
            name: forger
            steps:
              - id: lie
                stage: notify
                with: {event: job.completed, data: {}}
            """])
        let job = try await harness.running(harness.engine()) { try await harness.wait(for: try await harness.submit("forger").id) }
        #expect(job.status == .failed && job.error?["class"] == "invalid_request")
        #expect(job.error?["message"]?.stringValue?.contains("event name 'job.completed' is the daemon's own") == true)
        #expect(try await harness.events(job.id).filter { $0.type == "job.completed" }.isEmpty)
    }

    @Test("a debit step run again (crash between debit and checkpoint) debits nothing more")
    func debitOnce() async throws {
        let harness = try await Harness.make(pipelines: ["paid": Self.paid])
        let stage = try #require(harness.registry.stage(named: "tokens.debit"))
        let job = try #require(try await harness.claimed("paid", count: 1, owner: "t").first)
        let records = AttemptRecords(
            writer: JobWriter(store: harness.store, logger: Logger(label: "test")), balances: BalanceReader(store: harness.store),
            store: harness.store, job: job,
            lease: Lease(owner: "t", token: job.leaseToken), step: "debit"
        )
        let context = StageContext(config: ["amount": 40, "reason": "test"], input: [:], jobID: job.id,
                                   userID: job.userID, stepID: "debit", attempt: 1, timeout: .seconds(5), records: records)
        let first = try await stage.run(context)
        let again = try await stage.run(context)
        #expect(first["balance"] == -40 && first["repeated"] == false)
        #expect(again["balance"] == -40 && again["repeated"] == true)
        #expect(try await harness.store.read { try $0.ledger(userID: job.userID) }.count == 1)
    }
}

@Suite("The shipped canvas pipeline with the offline provider", .timeLimit(.minutes(3)))
struct CanvasPipelineTests {
    @Test("instructions in, a completed prompt and a canvas of valid objects out, streamed, paid for once")
    func canvasGeneration() async throws {
        let yaml = try String(contentsOfFile: "pipelines/canvas-generation.yaml", encoding: .utf8)
        let harness = try await Harness.make(pipelines: ["canvas-generation": yaml])
        _ = try await harness.store.write { try $0.recordTokens(userID: "ada", change: 1_000, reason: "credit", idempotencyKey: "c-ada") }
        let job = try await harness.running(harness.engine()) {
            try await harness.wait(for: try await harness.submit(
                "canvas-generation", input: ["instructions": "a flowchart with 4 steps", "color_scheme": "warm"], user: "ada"
            ).id)
        }
        #expect(job.status == .completed, "\(String(describing: job.error))")
        let saved = try #require(job.result?["save"])
        let canvasID = try #require(saved["canvas_id"]?.stringValue)
        let objects = try await harness.store.read { try $0.canvasObjects(canvasID: canvasID) }
        #expect(objects.filter { $0["type"] == "rectangle" }.count == 4)
        #expect(objects.filter { $0["type"] == "arrow" }.count == 3)
        #expect(objects.first { $0["type"] == "rectangle" }?["backgroundColor"] == "#ffc9c9", "warm colours")
        let prompt = try await harness.query("SELECT instructions, status, color_scheme FROM genflow.prompts WHERE job_id = $1::uuid", [job.id])
        #expect(prompt.first?["status"] == "completed")
        #expect(prompt.first?["color_scheme"] == "warm")
        let events = try await harness.events(job.id)
        let streamed = events.filter { $0.type == "canvas.objects" }.flatMap { $0.data["objects"]?.arrayValue ?? [] }
        #expect(streamed.count == objects.count, "every object was announced as it completed")
        #expect(events.contains { $0.type == "step.progress" })
        #expect(events.contains { $0.type == "ai_generation_completed" })
        let debit = try #require(events.first { $0.type == "token_balance_updated" })
        let tokens = try #require(job.result?["generate"]?["usage"]?["total_tokens"]?.intValue)
        #expect(debit.data["change"] == .int(-tokens))
        let ledger = try await harness.store.read { try $0.ledger(userID: "ada") }
        #expect(ledger.map(\.change) == [-tokens, 1_000])
        #expect(job.result?["generate"]?["model"]?.stringValue?.hasPrefix("offline") == true)
    }
}

@Suite("The canvas pipeline against an OpenAI-compatible server", .timeLimit(.minutes(3)))
struct OpenAIPipelineTests {
    @Test("a 429 with retry-after-ms is retried after that delay, then the streamed reply completes the job")
    func rateLimitedThenStreamed() async throws {
        let server = try FakeServer()
        let yaml = """
            name: remote
            input:
              properties:
                instructions: {type: string}
            steps:
              - id: prompt
                stage: prepare_instructions
                with: {template: "Draw {{input.instructions}}"}
              - id: generate
                stage: call_model
                with: {provider: remote, model: "{{input.model}}", output: canvas_objects, stream: true}
                retry: {max_attempts: 3, initial_interval: 5s, jitter: 0}
              - id: objects
                stage: parse_canvas_objects
                with: {text: "{{steps.generate.output.text}}"}
            """.replacingOccurrences(of: "instructions: {type: string}", with: "instructions: {type: string}\n    model: {type: string}")
        let harness = try await Harness.make(pipelines: ["remote": yaml], providers: [
            "remote": ProviderConfig.openai(baseURL: server.url("/v1"), apiKey: Secret("sk-test")),
        ])
        let (ok, limited) = try await harness.running(harness.engine()) {
            (try await harness.wait(for: try await harness.submit("remote", input: ["instructions": "a box", "model": "ok"]).id),
             try await harness.wait(for: try await harness.submit("remote", input: ["instructions": "a box", "model": "rate-limit"]).id))
        }
        #expect(ok.status == .completed)
        #expect(ok.result?["objects"]?["objects"]?.arrayValue?.count == 1)
        #expect(ok.result?["generate"]?["usage"]?["total_tokens"] == 42)
        let events = try await harness.events(ok.id)
        #expect(events.contains { $0.type == "canvas.objects" })
        // Always 429: three attempts, each retry after the 150 ms the server asked for (not 5 s).
        #expect(limited.status == .failed)
        #expect(limited.error?["class"] == "rate_limited")
        let runs = try await harness.runs(limited.id).filter { $0.stepID == "generate" }
        #expect(runs.map(\.retryDelayMilliseconds) == [150, 150, nil])
    }
}

@Suite("persist.image", .timeLimit(.minutes(3)))
struct PersistImageTests {
    @Test("records every field of each image, keyed by job and step so a re-run replaces")
    func images() async throws {
        let yaml = """
            name: pictures
            input:
              required: [prompt]
              properties:
                prompt: {type: string}
                style: {type: string, default: natural}
                aspect_ratio: {type: string, default: "16:9"}
                quality: {type: string, default: hd}
                format: {type: string, default: png}
                dataset_id: {type: string}
            steps:
              - id: generate
                stage: test.step
                with: {output: [{url: "https://img.test/1.png", resolution: 1792x1024}, {url: "https://img.test/2.png", resolution: 1792x1024}]}
              - id: save
                stage: persist.image
                with:
                  prompt: "{{input.prompt}}"
                  full_prompt: "{{input.prompt}}. Style: {{input.style}}."
                  images: "{{steps.generate.output.output}}"
                  dataset_id: "{{input.dataset_id}}"
                  style: "{{input.style}}"
                  aspect_ratio: "{{input.aspect_ratio}}"
                  quality: "{{input.quality}}"
                  format: "{{input.format}}"
                  reference_images_count: 2
            """
        let harness = try await Harness.make(pipelines: ["pictures": yaml])
        let job = try await harness.running(harness.engine()) {
            try await harness.wait(for: try await harness.submit("pictures", input: ["prompt": "a lighthouse", "dataset_id": "ds1"], user: "ann").id)
        }
        #expect(job.status == .completed, "\(String(describing: job.error))")
        let images = try await harness.store.read { try $0.images(userID: "ann", datasetID: "ds1") }.map(\.json)
        #expect(images.count == 2)
        let first = try #require(images.first { $0["image_url"] == "https://img.test/1.png" })
        #expect(first["prompt"] == "a lighthouse")
        #expect(first["full_prompt"] == "a lighthouse. Style: natural.")
        #expect(first["style"] == "natural" && first["aspect_ratio"] == "16:9" && first["quality"] == "hd" && first["format"] == "png")
        #expect(first["resolution"] == "1792x1024" && first["dataset_id"] == "ds1" && first["reference_images_count"] == 2)
        #expect(try await harness.store.read { try $0.images(userID: "ann", datasetID: "other") }.map(\.json).isEmpty)
        // The step written again (its records are keyed by job, step and position): the same two rows, updated.
        let before = try await harness.store.read { try $0.images(userID: "ann") }.map(\.json).compactMap { $0["id"]?.stringValue }.sorted()
        let again = [ImageRecord(prompt: "a lighthouse", fullPrompt: nil, imageURL: "https://img.test/1b.png", datasetID: "ds1", style: nil,
                                 aspectRatio: nil, quality: nil, format: "png", resolution: nil, referenceImagesCount: 0)]
        let ids = try await harness.store.write { try $0.recordImages(again, userID: "ann", jobID: job.id, step: "save") }
        let after = try await harness.store.read { try $0.images(userID: "ann") }.map(\.json)
        #expect(after.count == 2 && after.compactMap { $0["id"]?.stringValue }.sorted() == before)
        #expect(before.contains(ids[0]) && after.contains { $0["image_url"] == "https://img.test/1b.png" })
    }
}

@Suite("Model calls sent while their start commits", .serialized, .timeLimit(.minutes(3)))
struct CallWhileStartCommitsTests {
    static let yaml = """
        name: remote
        input:
          properties:
            model: {type: string}
        steps:
          - id: generate
            stage: call_model
            with: {provider: remote, model: "{{input.model}}"}
        """

    /// A harness with the fake provider, and a session holding `step_runs` in EXCLUSIVE mode:
    /// reads go on, the writer's flushes (every step's start inserts its attempt) wait for it.
    func setUp(_ server: FakeServer) async throws -> (Harness, PostgresConnection) {
        let harness = try await Harness.make(pipelines: ["remote": Self.yaml], providers: [
            "remote": ProviderConfig.openai(baseURL: server.url("/v1"), apiKey: Secret("sk-test")),
        ])
        let blocker = try PostgresConnection(harness.url)
        try blocker.execute("BEGIN")
        try blocker.execute("LOCK TABLE genflow.step_runs IN EXCLUSIVE MODE")
        return (harness, blocker)
    }

    @Test("a call_model step early in its claim is sent while its start commits; its answer is taken once the start has committed")
    func sentWhileStartCommits() async throws {
        let server = try FakeServer()
        let (harness, blocker) = try await setUp(server)
        try await harness.running(harness.engine()) {
            let job = try await harness.submit("remote", input: ["model": "ok"])
            try await harness.waitForLockWait("the start's flush")
            // The provider answers while the start still cannot commit: the job waits for it.
            let deadline = ContinuousClock.now + .seconds(30)
            while try await server.calls("ok") == 0 {
                guard ContinuousClock.now < deadline else { throw HarnessError("the model was not called while the start waited") }
                try await Task.sleep(for: .milliseconds(10))
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await harness.runs(job.id).isEmpty)
            #expect(try await harness.job(job.id).status == .running)
            try blocker.execute("COMMIT")
            let finished = try await harness.wait(for: job.id)
            #expect(finished.status == .completed)
            #expect(finished.result?["generate"]?["usage"]?["total_tokens"] == 42)
            #expect(try await harness.runs(job.id).map(\.status) == [.completed])
            #expect(try await server.calls("ok") == 1)
        }
    }

    @Test("a job taken over before calls only once its start has committed: one that crashes its daemons leaves an interrupted attempt each time")
    func rescuedWaitsForStart() async throws {
        let server = try FakeServer()
        let (harness, blocker) = try await setUp(server)
        let job = try await harness.submit("remote", input: ["model": "sleep-0"])
        _ = try await harness.query("UPDATE genflow.jobs SET rescues = 1 WHERE id = $1::uuid", [job.id])
        try await harness.running(harness.engine()) {
            try await harness.waitForLockWait("the start's flush")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await server.calls("sleep-0") == 0, "the model was called before the start of a rescued job's step committed")
            try blocker.execute("COMMIT")
            #expect(try await harness.wait(for: job.id).status == .completed)
            #expect(try await server.calls("sleep-0") == 1)
        }
    }
}
