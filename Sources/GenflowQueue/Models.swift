public import GenflowCore
public import GenflowPostgres

/// A job's place in its lifecycle. The transitions are written down once, here:
///
/// ```
/// queued ──claim──▶ running ──last step done──▶ completed
///   │                 │ ├──retryable failure──▶ waiting_retry ──claim (run_at reached)──▶ running
///   │                 │ ├──failure, no retry left──▶ failed ──retry──▶ queued
///   │                 │ └──lease expired / released──▶ running again on any daemon, or queued
///   └──cancel──▶ cancelled ◀──cancel── (running, waiting_retry)        cancelled ──retry──▶ queued
/// ```
public enum JobStatus: String, Sendable, Hashable, CaseIterable, Codable {
    case queued
    case running
    case waitingRetry = "waiting_retry"
    case completed
    case failed
    case cancelled

    /// No further step runs.
    public var isTerminal: Bool { self == .completed || self == .failed || self == .cancelled }

    /// States a cancel applies to.
    public static let cancellable: [JobStatus] = [.queued, .waitingRetry, .running]
    /// States a manual retry applies to.
    public static let retryable: [JobStatus] = [.failed, .cancelled]
    /// States a worker may claim (a `running` job only once its lease expired).
    public static let claimable: [JobStatus] = [.queued, .waitingRetry]
}

/// A job as stored.
public struct Job: Sendable, Hashable {
    public var id: String
    public var pipeline: String
    public var pipelineVersion: String
    public var userID: String
    public var status: JobStatus
    public var priority: Int
    /// Step attempts made, all steps together.
    public var attempts: Int
    /// Times the job was reclaimed after its daemon's lease expired.
    public var rescues: Int
    /// Bumped by each manual retry; attempts are counted within a generation.
    public var generation: Int
    public var input: JSON
    /// Once completed: every step's output by step id, read from its checkpoints (not stored twice).
    public var result: JSON?
    /// `{class, message, step}` of the failure.
    public var error: JSON?
    public var idempotencyKey: String?
    public var currentStep: String?
    public var cancelRequested: Bool
    /// ISO 8601 timestamps (UTC).
    public var runAt: String
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
    /// Changed by every claim: the writes of a run hold only under the token it claimed with.
    public var leaseToken: Int64
    /// What its steps cost so far: the sum of their outputs' `cost`.
    public var cost: Money

    /// The SELECT list that `init(row:)` reads, for the table aliased `t`.
    static func columns(_ t: String = "jobs") -> String {
        """
        \(t).id::text AS id, \(t).pipeline, \(t).pipeline_version, \(t).user_id, \(t).status, \(t).priority, \(t).attempts,
        \(t).rescues, \(t).generation, \(t).input::text AS input,
        (CASE WHEN \(t).status = 'completed' THEN coalesce(\(t).result, (SELECT jsonb_object_agg(r.step_id, r.output)
            FROM genflow.step_runs r WHERE r.job_id = \(t).id AND r.status = 'completed' AND r.item IS NULL)) END)::text AS result, \(t).error::text AS error,
        \(t).idempotency_key, \(t).current_step, \(t).cancel_requested, genflow.iso(\(t).run_at) AS run_at,
        genflow.iso(\(t).created_at) AS created_at, genflow.iso(\(t).started_at) AS started_at,
        genflow.iso(\(t).finished_at) AS finished_at, \(t).lease_token, \(t).cost::text AS cost
        """
    }

    init(row: PostgresRow) throws {
        id = row["id"] ?? ""
        pipeline = row["pipeline"] ?? ""
        pipelineVersion = row["pipeline_version"] ?? ""
        userID = row["user_id"] ?? ""
        status = JobStatus(rawValue: row["status"] ?? "") ?? .failed
        priority = row.decode("priority") ?? 0
        attempts = row.decode("attempts") ?? 0
        rescues = row.decode("rescues") ?? 0
        generation = row.decode("generation") ?? 0
        input = try JSON(parsing: row["input"] ?? "{}")
        result = try row["result"].map { try JSON(parsing: $0) }
        error = try row["error"].map { try JSON(parsing: $0) }
        idempotencyKey = row["idempotency_key"]
        currentStep = row["current_step"]
        cancelRequested = row.decode("cancel_requested") ?? false
        runAt = row["run_at"] ?? ""
        createdAt = row["created_at"] ?? ""
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
        leaseToken = row.decode("lease_token") ?? 0
        cost = row["cost"].flatMap { Money($0) } ?? .zero
    }
}

/// Where an attempt of a step stands (`genflow.step_runs.status`). `pending` is what a step with
/// no attempt yet shows; it is never stored.
public enum StepStatus: String, Sendable, Hashable, CaseIterable {
    case pending, running, completed, failed, cancelled
    /// Its daemon died or shut down while it ran; not counted as an attempt.
    case interrupted
    /// Its output was discarded (`on_invalid`, or a retry of the job).
    case superseded
}

/// One attempt of one step.
public struct StepRun: Sendable, Hashable {
    public var stepID: String
    public var attempt: Int
    public var generation: Int
    public var stage: String
    public var status: StepStatus
    public var output: JSON?
    public var errorClass: ErrorClass?
    public var errorMessage: String?
    /// The delay scheduled before the next attempt, when this one failed and was retried.
    public var retryDelayMilliseconds: Int?
    /// When this attempt failed with a retry delay: milliseconds from the read until the next
    /// attempt may start (≤ 0: it may start now).
    public var retryInMilliseconds: Int?
    /// The `for_each` item it ran for (nil: the step itself).
    public var item: Int?
    public var startedAt: String
    public var finishedAt: String?
    /// Milliseconds from `startedAt` to when the row was read.
    public var ageMilliseconds: Int

    static let columns = """
        step_id, attempt, generation, stage, status, output::text, error_class, error_message, retry_delay_ms,
        genflow.iso(started_at) AS started_at, genflow.iso(finished_at) AS finished_at,
        (extract(epoch FROM now() - started_at) * 1000)::bigint AS age_ms, item,
        (extract(epoch FROM retry_at - now()) * 1000)::bigint AS retry_in_ms
        """

    init(row: PostgresRow) throws {
        stepID = row["step_id"] ?? ""
        attempt = row.decode("attempt") ?? 0
        generation = row.decode("generation") ?? 0
        stage = row["stage"] ?? ""
        status = row["status"].flatMap(StepStatus.init(rawValue:)) ?? .pending
        output = try row["output"].map { try JSON(parsing: $0) }
        errorClass = row["error_class"].map(ErrorClass.init(rawValue:))
        errorMessage = row["error_message"]
        retryDelayMilliseconds = row.decode("retry_delay_ms")
        startedAt = row["started_at"] ?? ""
        finishedAt = row["finished_at"]
        ageMilliseconds = row.decode("age_ms") ?? 0
        item = row.decode("item")
        retryInMilliseconds = row.decode("retry_in_ms")
    }
}

/// A step of a pipeline version as job documents show it.
public struct StepOutline: Sendable, Hashable {
    public var id: String
    public var stage: String
    /// The steps it waits for: as written, else the step above it.
    public var needs: [String]
    /// It runs once per item (`for_each`).
    public var perItem: Bool

    public init(id: String, stage: String, needs: [String] = [], perItem: Bool = false) {
        self.id = id
        self.stage = stage
        self.needs = needs
        self.perItem = perItem
    }
}

/// A stored event.
public struct Event: Sendable, Hashable {
    public var id: Int64
    /// The writing transaction's id: events are delivered in (tx, id) order.
    public var tx: String
    public var userID: String
    public var jobID: String?
    public var type: String
    public var step: String?
    public var data: JSON
    public var createdAt: String

    /// The catalogue's name for `type`; nil for a pipeline's or a plugin's own event.
    public var kind: EventType? { EventType(rawValue: type) }

    static let columns = "id, tx::text, user_id, job_id::text, type, step, data::text, more::text, genflow.iso(created_at) AS created_at"

    /// The events of one stored row (`NewEvent.rows`): the first in its columns, the others in
    /// `more`, their ids following the row's.
    static func events(row: PostgresRow) throws -> [Event] {
        let first = try Event(row: row)
        guard let more = row["more"] else { return [first] }
        guard case .array(let packed) = try JSON(parsing: more) else {
            throw PostgresError(message: "event row \(first.id): `more` is not an array")
        }
        var events = [first]
        events.reserveCapacity(packed.count + 1)
        for (offset, item) in packed.enumerated() {
            var event = first
            event.id = first.id + Int64(offset) + 1
            event.type = item["type"]?.stringValue ?? ""
            event.step = item["step"]?.stringValue
            event.data = item["data"] ?? [:]
            events.append(event)
        }
        return events
    }

    init(row: PostgresRow) throws {
        id = row.decode("id") ?? 0
        tx = row["tx"] ?? "0"
        userID = row["user_id"] ?? ""
        jobID = row["job_id"]
        type = row["type"] ?? ""
        step = row["step"]
        data = try JSON(parsing: row["data"] ?? "{}")
        createdAt = row["created_at"] ?? ""
    }
}

/// An event to record in the transaction that makes the change it reports.
public struct NewEvent: Sendable {
    public var userID: String
    public var jobID: String?
    public var type: String
    public var step: String?
    public var data: JSON

    public init(userID: String, jobID: String?, type: String, step: String? = nil, data: JSON = [:]) {
        self.userID = userID
        self.jobID = jobID
        self.type = type
        self.step = step
        self.data = data
    }

    public init(userID: String, jobID: String?, type: EventType, step: String? = nil, data: JSON = [:]) {
        self.init(userID: userID, jobID: jobID, type: type.rawValue, step: step, data: data)
    }

    /// Most events one row holds: ids of rows step by this much (migration 13), each event of a
    /// row takes the next id after the one before it.
    public static let perRow = 64

    /// Events in rows: a run of events of one user and job (a job's events in one flush) shares a
    /// row, up to `perRow`; its first event goes in the row's columns, the others in `more`. A
    /// job's four events of a one-step run were four rows with four index entries each, half of
    /// the database's work per job.
    static func rows(_ events: [NewEvent]) -> [(first: NewEvent, more: [NewEvent])] {
        var rows: [(first: NewEvent, more: [NewEvent])] = []
        for event in events {
            if let last = rows.last, last.first.userID == event.userID, last.first.jobID == event.jobID, last.more.count + 1 < perRow {
                rows[rows.count - 1].more.append(event)
            } else {
                rows.append((event, []))
            }
        }
        return rows
    }

    /// `more` of a row: the events after its first, as `[{type, step?, data}]` text (written
    /// directly: a dictionary per event, hashed and then written, was a third of the cost).
    static func packedText(_ events: [NewEvent]) -> String {
        var text = "["
        for (index, event) in events.enumerated() {
            text += index == 0 ? "{\"type\":" : ",{\"type\":"
            text += JSON.string(event.type).jsonbText
            if let step = event.step { text += ",\"step\":" + JSON.string(step).jsonbText }
            text += ",\"data\":" + event.data.jsonbText + "}"
        }
        return text + "]"
    }

    /// `$1…$6` of `StoreSession.insertEvents`: the events' rows as columns of arrays.
    static func columns(_ events: [NewEvent]) -> [(any PostgresEncodable)?] {
        let rows = rows(events), firsts = rows.map(\.first)
        return [
            PostgresArray(firsts.map(\.userID)), PostgresArray(firsts.map(\.jobID)), PostgresArray(firsts.map(\.type)),
            PostgresArray(firsts.map(\.step)), PostgresArray(firsts.map(\.data.jsonbText)),
            PostgresArray(rows.map { $0.more.isEmpty ? nil : packedText($0.more) }),
        ]
    }
}

extension JSON: PostgresEncodable {
    public var postgresText: String { description }
}

/// What `GET /v1/stats` shows operators (`StoreSession.jobStats`).
public struct JobStats: Sendable {
    /// Jobs by status, how many finished well, how long completed ones took, and how many are
    /// runnable now.
    public struct Figures: Sendable {
        public var byStatus: [String: Int] = [:]
        public var duration: (p50: Double?, p95: Double?) = (nil, nil)
        public var queueDepth = 0

        /// Completed among completed and failed, to 4 places; nil before any finished.
        public var successRate: Double? {
            let completed = byStatus["completed"] ?? 0, finished = completed + (byStatus["failed"] ?? 0)
            return finished == 0 ? nil : (Double(completed) / Double(finished) * 10_000).rounded() / 10_000
        }
    }

    /// What jobs cost in money: in all, by pipeline, by user (the 50 who spent most), by "provider model".
    public struct Cost: Sendable {
        public var total = Money.zero
        public var byPipeline: [String: Money] = [:]
        public var byUser: [String: Money] = [:]
        public var byModel: [String: Money] = [:]
    }

    public var overall = Figures()
    public var pipelines: [String: Figures] = [:]
    public var cost = Cost()
}
