public import GenflowPostgres

/// The database schema, as numbered migrations embedded in the binary. Applied in order, each in
/// its own transaction, under an advisory lock so daemons starting together do not race.
public enum Migrations {
    /// One schema change. Never edit a shipped one: add the next.
    public struct Migration: Sendable {
        public var version: Int
        public var name: String
        public var sql: String
    }

    /// Key of the advisory lock held while migrating ("genflow" in ASCII).
    static let lockKey = 0x67656e666c6f77

    public static let all: [Migration] = [
        Migration(version: 1, name: "queue", sql: """
            CREATE FUNCTION genflow.iso(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE
                AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

            CREATE TABLE genflow.pipeline_versions (
                name text NOT NULL,
                version text NOT NULL,
                definition jsonb NOT NULL,
                file text NOT NULL,
                loaded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (name, version)
            );

            CREATE TABLE genflow.jobs (
                id uuid PRIMARY KEY,
                pipeline text NOT NULL,
                pipeline_version text NOT NULL,
                user_id text NOT NULL,
                input jsonb NOT NULL,
                status text NOT NULL CHECK (status IN ('queued', 'running', 'waiting_retry', 'completed', 'failed', 'cancelled')),
                priority integer NOT NULL DEFAULT 0,
                run_at timestamptz NOT NULL DEFAULT now(),
                attempts integer NOT NULL DEFAULT 0,
                rescues integer NOT NULL DEFAULT 0,
                generation integer NOT NULL DEFAULT 0,
                lease_owner text,
                lease_expires_at timestamptz,
                cancel_requested boolean NOT NULL DEFAULT false,
                idempotency_key text,
                current_step text,
                result jsonb,
                error jsonb,
                created_at timestamptz NOT NULL DEFAULT now(),
                started_at timestamptz,
                finished_at timestamptz,
                updated_at timestamptz NOT NULL DEFAULT now(),
                FOREIGN KEY (pipeline, pipeline_version) REFERENCES genflow.pipeline_versions (name, version)
            );
            CREATE UNIQUE INDEX jobs_idempotency ON genflow.jobs (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
            CREATE INDEX jobs_ready ON genflow.jobs (priority DESC, run_at, id) WHERE status IN ('queued', 'waiting_retry');
            CREATE INDEX jobs_leases ON genflow.jobs (lease_expires_at) WHERE status = 'running';
            CREATE INDEX jobs_user ON genflow.jobs (user_id, created_at DESC, id DESC);
            CREATE INDEX jobs_finished ON genflow.jobs (finished_at) WHERE finished_at IS NOT NULL;

            CREATE TABLE genflow.step_runs (
                job_id uuid NOT NULL REFERENCES genflow.jobs ON DELETE CASCADE,
                step_id text NOT NULL,
                attempt integer NOT NULL,
                generation integer NOT NULL DEFAULT 0,
                stage text NOT NULL,
                status text NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'interrupted', 'superseded')),
                output jsonb,
                error_class text,
                error_message text,
                retry_delay_ms bigint,
                started_at timestamptz NOT NULL DEFAULT now(),
                finished_at timestamptz,
                PRIMARY KEY (job_id, step_id, attempt)
            );
            -- A step has at most one checkpoint: a completed step is never run again.
            CREATE UNIQUE INDEX step_runs_checkpoint ON genflow.step_runs (job_id, step_id) WHERE status = 'completed';

            -- Events are read in (tx, id) order, and only from transactions older than every one
            -- still running: a bigserial id is not commit order (SPEC §8).
            CREATE TABLE genflow.events (
                id bigserial PRIMARY KEY,
                tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
                user_id text NOT NULL,
                job_id uuid,
                type text NOT NULL,
                step text,
                data jsonb NOT NULL DEFAULT '{}',
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX events_order ON genflow.events (tx, id);
            CREATE INDEX events_user ON genflow.events (user_id, tx, id);
            CREATE INDEX events_job ON genflow.events (job_id, tx, id);
            CREATE INDEX events_created ON genflow.events (created_at);
            """),
        Migration(version: 2, name: "tokens", sql: """
            CREATE TABLE genflow.token_accounts (
                user_id text PRIMARY KEY,
                balance bigint NOT NULL DEFAULT 0,
                updated_at timestamptz NOT NULL DEFAULT now()
            );
            -- Append-only: a change is a new row; the idempotency key makes each debit happen once.
            CREATE TABLE genflow.token_ledger (
                id bigserial PRIMARY KEY,
                user_id text NOT NULL,
                change bigint NOT NULL,
                balance_after bigint NOT NULL,
                reason text NOT NULL,
                job_id uuid,
                step text,
                idempotency_key text NOT NULL UNIQUE,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX token_ledger_user ON genflow.token_ledger (user_id, id DESC);
            """),
        Migration(version: 3, name: "canvases", sql: """
            CREATE TABLE genflow.prompts (
                id uuid PRIMARY KEY,
                user_id text NOT NULL,
                job_id uuid UNIQUE,
                instructions text NOT NULL,
                style text,
                color_scheme text,
                status text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
                request_metadata jsonb NOT NULL DEFAULT '{}',
                error text,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX prompts_user ON genflow.prompts (user_id, created_at DESC, id DESC);
            CREATE TABLE genflow.canvases (
                id uuid PRIMARY KEY,
                user_id text NOT NULL,
                prompt_id uuid REFERENCES genflow.prompts ON DELETE CASCADE,
                job_id uuid,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE UNIQUE INDEX canvases_job ON genflow.canvases (job_id) WHERE job_id IS NOT NULL;
            CREATE INDEX canvases_prompt ON genflow.canvases (prompt_id);
            CREATE TABLE genflow.canvas_objects (
                canvas_id uuid NOT NULL REFERENCES genflow.canvases ON DELETE CASCADE,
                object_id text NOT NULL,
                position integer NOT NULL,
                type text NOT NULL,
                data jsonb NOT NULL,
                job_id uuid,
                PRIMARY KEY (canvas_id, object_id)
            );
            """),
        Migration(version: 4, name: "generated_images", sql: """
            CREATE TABLE genflow.generated_images (
                id uuid PRIMARY KEY,
                user_id text NOT NULL,
                job_id uuid,
                step text,
                position integer NOT NULL DEFAULT 0,
                prompt text NOT NULL,
                full_prompt text,
                image_url text,
                dataset_id text,
                style text,
                aspect_ratio text,
                quality text,
                format text,
                resolution text,
                reference_images_count integer NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            -- One row per image of a job step: a step run again replaces, never adds.
            CREATE UNIQUE INDEX generated_images_job ON genflow.generated_images (job_id, step, position) WHERE job_id IS NOT NULL;
            CREATE INDEX generated_images_user ON genflow.generated_images (user_id, created_at DESC, id DESC);
            CREATE INDEX generated_images_dataset ON genflow.generated_images (user_id, dataset_id, created_at DESC);
            """),
        Migration(version: 5, name: "model_cache_and_image_files", sql: """
            -- call_model's `cache: {ttl}`: a response by the SHA-256 of its request.
            CREATE TABLE genflow.model_cache (
                key text PRIMARY KEY,
                response jsonb NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz NOT NULL
            );
            CREATE INDEX model_cache_expiry ON genflow.model_cache (expires_at);
            -- Images the provider sent as bytes live under the state directory; the API serves them.
            ALTER TABLE genflow.generated_images ADD COLUMN file_path text, ADD COLUMN byte_count bigint;
            -- A prompt's history finds the canvas its job drew on.
            CREATE INDEX canvas_objects_job ON genflow.canvas_objects (job_id) WHERE job_id IS NOT NULL;
            """),
        Migration(version: 6, name: "lease_tokens", sql: """
            -- Every claim takes a new token; a daemon's writes hold only under the token it claimed
            -- with, so a run whose lease was taken over writes nothing, even after a later claim.
            ALTER TABLE genflow.jobs ADD COLUMN lease_token bigint NOT NULL DEFAULT 0;
            -- Room on each page for the new versions of a row, so the updates of a running job
            -- (step, attempts, leases: no index reads them) stay HOT.
            ALTER TABLE genflow.jobs SET (fillfactor = 70);
            ALTER TABLE genflow.step_runs SET (fillfactor = 80);
            """),
        Migration(version: 7, name: "events_created_brin", sql: """
            -- Only retention reads events by age, in bulk: a BRIN index (events come in time order)
            -- serves it, and an event row costs four B-tree entries instead of five.
            DROP INDEX genflow.events_created;
            CREATE INDEX events_created ON genflow.events USING brin (created_at);
            """),
        Migration(version: 8, name: "step_runs_order", sql: """
            -- The order attempts were written in. A flush places each attempt's start by how long
            -- before it the daemon saw it, so two attempts of one job written by two flushes could
            -- get their start times swapped by a few microseconds: order by this instead. Rows
            -- written before it have none (they sort first, by their start times, as they did).
            CREATE SEQUENCE genflow.step_runs_seq;
            ALTER TABLE genflow.step_runs ADD COLUMN seq bigint;
            ALTER TABLE genflow.step_runs ALTER COLUMN seq SET DEFAULT nextval('genflow.step_runs_seq');
            """),
        Migration(version: 9, name: "job_costs", sql: """
            -- What a job cost in money (US dollars, exact): the sum of its steps' `cost`, added by the
            -- flush that checkpoints each step. No index: every completed paid step changes it.
            ALTER TABLE genflow.jobs ADD COLUMN cost numeric(20, 9) NOT NULL DEFAULT 0;
            """),
        Migration(version: 10, name: "spend_holds", sql: """
            -- The estimated cost of priced model calls in flight (limits.budget): counted as spent
            -- from before a call until the flush that checkpoints it (which deletes the hold and adds
            -- the cost to the job), or until it expires (its daemon died).
            CREATE TABLE genflow.spend_holds (
                id bigserial PRIMARY KEY,
                user_id text NOT NULL,
                job_id uuid NOT NULL,
                amount numeric(20, 9) NOT NULL,
                expires_at timestamptz NOT NULL
            );
            CREATE INDEX spend_holds_user ON genflow.spend_holds (user_id);
            """),
        Migration(version: 11, name: "step_items", sql: """
            -- A `for_each` step runs once per item: each item's attempts carry its index, and each
            -- item has at most one checkpoint, as a step does (the step's own checkpoint, the items'
            -- outputs in order, has none). Attempt numbers stay unique per step.
            -- Branches wait for their retries on their own: a failed attempt keeps when the next may
            -- start (`genflow test` moves it to now, as it moves the job's run_at).
            ALTER TABLE genflow.step_runs ADD COLUMN item integer, ADD COLUMN retry_at timestamptz;
            DROP INDEX genflow.step_runs_checkpoint;
            CREATE UNIQUE INDEX step_runs_checkpoint ON genflow.step_runs (job_id, step_id, coalesce(item, -1)) WHERE status = 'completed';
            """),
        Migration(version: 12, name: "iso_inlined", sql: """
            -- `to_char` is STABLE, so a function declared IMMUTABLE around it could not be inlined:
            -- every statement that returned a job parsed, planned and ran the function's own query
            -- (perf: fmgr_sql, a tenth of the server's CPU while submitted jobs ran at once).
            -- Declared STABLE, what it is, the planner puts the expression in its place.
            CREATE OR REPLACE FUNCTION genflow.iso(t timestamptz) RETURNS text LANGUAGE sql STABLE
                AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;
            """),
        Migration(version: 13, name: "event_rows", sql: """
            -- A row holds the events one transaction wrote for one job in a row (up to 64): the
            -- first in its columns, the others in `more` as [{type, step?, data}]. A one-step job
            -- wrote four rows of four index entries each; now one or two. Row ids step by 64 and
            -- each event of a row takes the next id after the one before it, so every event keeps
            -- an id of its own, in delivery order. Rows written before hold one event each.
            -- `json`, not `jsonb`: only the daemon reads it, whole, and PostgreSQL takes json text
            -- as it is (checked) instead of building a jsonb tree: half the cost of the insert
            -- on canvas jobs, whose objects ride in events.
            ALTER TABLE genflow.events ADD COLUMN more json;
            ALTER SEQUENCE genflow.events_id_seq INCREMENT BY 64;
            -- One row per event, for SQL readers (the daemon reads rows and unpacks them itself).
            -- `data` is json: what `more` holds is not always something jsonb would take (U+0000).
            CREATE VIEW genflow.event_log AS
                SELECT id, tx, user_id, job_id, type, step, data::json AS data, created_at FROM genflow.events
                UNION ALL
                SELECT e.id + m.n, e.tx, e.user_id, e.job_id, m.event->>'type', m.event->>'step', m.event->'data', e.created_at
                FROM genflow.events e CROSS JOIN LATERAL json_array_elements(e.more) WITH ORDINALITY AS m(event, n)
                WHERE e.more IS NOT NULL;
            """),
        Migration(version: 14, name: "attempts_without_foreign_key", sql: """
            -- The foreign key of step_runs checked every new attempt row with a query of its own
            -- (its job's row, FOR KEY SHARE: ~6 µs a row, six per canvas job). Attempt rows are
            -- written only by the flush that has just locked their job under its lease (the fence),
            -- so the check could not fail. Deleting jobs still deletes their attempts: a trigger,
            -- once per statement.
            ALTER TABLE genflow.step_runs DROP CONSTRAINT step_runs_job_id_fkey;
            CREATE FUNCTION genflow.delete_attempts_of_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM genflow.step_runs s USING deleted d WHERE s.job_id = d.id;
                RETURN NULL;
            END $$;
            CREATE TRIGGER jobs_delete_attempts AFTER DELETE ON genflow.jobs REFERENCING OLD TABLE AS deleted
                FOR EACH STATEMENT EXECUTE FUNCTION genflow.delete_attempts_of_deleted_jobs();
            """),
    ]

    /// Applies the migrations `connection`'s database lacks; returns the versions applied.
    @discardableResult
    public static func migrate(_ connection: PostgresConnection) throws -> [Int] {
        try connection.query("SELECT pg_advisory_lock($1)", [lockKey])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [lockKey]) }
        try connection.execute("""
            CREATE SCHEMA IF NOT EXISTS genflow;
            CREATE TABLE IF NOT EXISTS genflow.schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """)
        let applied = Set(try connection.query("SELECT version FROM genflow.schema_migrations").rows.compactMap { $0.decode("version", as: Int.self) })
        var done: [Int] = []
        for migration in all where !applied.contains(migration.version) {
            try connection.transaction { connection in
                try connection.execute(migration.sql)
                try connection.query("INSERT INTO genflow.schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name])
            }
            done.append(migration.version)
        }
        return done
    }

    /// The newest version applied to the database, 0 for none.
    public static func currentVersion(_ connection: PostgresConnection) throws -> Int {
        let exists = try connection.query("SELECT to_regclass('genflow.schema_migrations') IS NOT NULL AS present").rows.first?.decode("present", as: Bool.self) ?? false
        guard exists else { return 0 }
        return try connection.query("SELECT coalesce(max(version), 0) AS v FROM genflow.schema_migrations").rows.first?.decode("v", as: Int.self) ?? 0
    }
}
