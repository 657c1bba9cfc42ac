public import GenflowCore
public import GenflowPipeline
public import GenflowQueue
internal import GenflowPostgres
internal import Foundation
internal import Synchronization

/// Why a submission was refused, with a stable code for the API (`unknown_pipeline`, `invalid_input`).
public struct SubmissionError: Error, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    /// For `invalid_input`: each problem with its path.
    public var details: [SchemaViolation]

    public var description: String {
        ([message] + details.map { "  \($0)" }).joined(separator: "\n")
    }
}

/// Checks a job request against its pipeline and enqueues it: the one way jobs enter the queue
/// (CLI and HTTP alike). Submissions that arrive while others are being written are written
/// together, by one statement (`GroupCommit`); each caller's answer comes after that commit.
public final class JobSubmitter: Sendable {
    public let catalog: PipelineCatalog
    public let store: JobStore
    /// Pipeline versions this submitter has stored (`name@version`): stored once, not per job.
    private let recorded = Mutex<Set<String>>([])
    private let batches: GroupCommit<Pending>
    /// Batches written so far.
    var batchCount: Int { batches.flushCount }

    /// A checked submission waiting for its batch.
    private struct Pending: Sendable {
        var submission: JobSubmission
        var waiter: CheckedContinuation<(job: Job, created: Bool), any Error>
    }

    public init(catalog: PipelineCatalog, store: JobStore) {
        self.catalog = catalog
        self.store = store
        // Submissions need no order among themselves (each is its own job; a key used twice is
        // settled by the unique index, across flushes as across daemons): a request that arrives
        // during a flush goes out in one of its own instead of waiting for it to end.
        batches = GroupCommit(maxWeight: 1_000, backlog: 20_000, flushers: 4) { await Self.write($0, to: store) }
    }

    /// Writes a batch; when the database refuses it, each submission again on its own, so one bad
    /// submission fails alone.
    private static func write(_ batch: [Pending], to store: JobStore) async {
        do {
            for (pending, result) in zip(batch, try await store.submit(batch.map(\.submission))) { pending.waiter.resume(returning: result) }
        } catch let error as PostgresError where batch.count > 1 && !error.isConnectionFailure {
            for pending in batch {
                do {
                    pending.waiter.resume(returning: try await store.submit([pending.submission])[0])
                } catch {
                    pending.waiter.resume(throwing: error)
                }
            }
        } catch {
            batch.forEach { $0.waiter.resume(throwing: error) }
        }
    }

    /// Validates `input` against the pipeline's schema (defaults filled in), records the pipeline
    /// version and enqueues the job. The same idempotency key from the same user returns the
    /// same job (`created` false).
    public func submit(
        pipeline name: String, input: JSON, userID: String, priority: Int = 0, idempotencyKey: String? = nil, runAt: String? = nil
    ) async throws -> (job: Job, created: Bool) {
        guard let pipeline = catalog.pipeline(named: name) else {
            let names = catalog.pipelines.map(\.name)
            throw SubmissionError(
                code: "unknown_pipeline",
                message: "unknown pipeline '\(name)'\(Suggestions.didYouMean(name, in: names)) (loaded: \(names.joined(separator: ", ")))",
                details: []
            )
        }
        // Passed on in UTC: PostgreSQL reads no offset beyond ±15:59, and a time it cannot read is not
        // the database's error to report.
        var due: String?
        if let runAt {
            guard let milliseconds = Timestamp.parse(runAt) else {
                throw SubmissionError(code: "invalid_run_at", message: "run_at '\(runAt.prefix(60))' is not an ISO 8601 time such as 2026-01-31T12:00:00Z", details: [])
            }
            due = Timestamp.utc(milliseconds: milliseconds)
        }
        for (what, text) in [("idempotency_key", idempotencyKey ?? ""), ("user", userID)] where text.unicodeScalars.contains("\u{0}") {
            throw SubmissionError(code: "invalid_request", message: "\(what) holds a NUL character (\\u0000); text may not contain one", details: [])
        }
        if let pointer = input.pointerToNUL {
            throw SubmissionError(code: "invalid_input", message: "input holds a NUL character (\\u0000) at '\(pointer.prefix(200))'; text may not contain one", details: [])
        }
        let violations = pipeline.input.violations(of: input)
        guard violations.isEmpty else {
            throw SubmissionError(code: "invalid_input", message: "input does not match pipeline '\(name)'", details: violations)
        }
        let submission = JobSubmission(
            pipeline: pipeline.name, pipelineVersion: pipeline.version, userID: userID,
            input: pipeline.input.applyingDefaults(to: input), priority: priority, idempotencyKey: idempotencyKey, runAt: due
        )
        let key = "\(pipeline.name)@\(pipeline.version)"
        if !recorded.withLock({ $0.contains(key) }) {
            try await store.write { session in
                try session.recordPipelineVersion(name: pipeline.name, version: pipeline.version, definition: pipeline.canonical, file: pipeline.file)
            }
            recorded.withLock { _ = $0.insert(key) }
        }
        await batches.waitForRoom()
        return try await withCheckedThrowingContinuation { batches.add(Pending(submission: submission, waiter: $0)) }
    }
}
