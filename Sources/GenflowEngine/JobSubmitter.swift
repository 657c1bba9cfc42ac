public import GenflowCore
public import GenflowPipeline
public import GenflowStore
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
/// (CLI and HTTP alike).
public final class JobSubmitter: Sendable {
    public let catalog: PipelineCatalog
    public let store: JobStore
    /// Pipeline versions this submitter has stored (`name@version`): stored once, not per job.
    private let recorded = Mutex<Set<String>>([])

    public init(catalog: PipelineCatalog, store: JobStore) {
        self.catalog = catalog
        self.store = store
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
        return try await store.submit(submission)
    }
}
