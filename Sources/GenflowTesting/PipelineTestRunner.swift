public import GenflowCore
public import GenflowEngine
public import GenflowPipeline
internal import GenflowStages
public import GenflowQueue
internal import GenflowConfig
internal import Foundation
public import Logging

/// Runs pipeline test cases through the production engine (`Engine`, `JobRun`, the stages, the
/// store) on a database of their own. Nothing calls out: every provider is the offline model,
/// steps get their scripted replies, and `http.request` or plugin steps without one fail. A job
/// waiting for a retry is made due at once: the delays the policy computed are reported, not waited.
public struct PipelineTestRunner: Sendable {
    let store: JobStore
    let registry: StageRegistry
    let replies = ReplyBook()
    let logger: Logger

    /// - Parameters:
    ///   - providerNames: the provider names steps may name (`call_model`'s `provider:`); all run offline.
    ///   - stateDirectory: where image steps keep their files.
    ///   - plugins: plugin stages (their manifests; no process is started), run only on replies.
    public init(store: JobStore, providerNames: [String], stateDirectory: String, plugins: [any Stage], logger: Logger) {
        self.store = store
        self.logger = logger
        let offline = ProviderConfig.offline(delay: .zero)
        let providers = Dictionary((providerNames + ["default"]).map { ($0, offline) }) { first, _ in first }
        registry = BuiltinStages.makeRegistry(providers: providers, stateDirectory: stateDirectory, plugins: plugins, replies: replies)
    }

    /// One case's end.
    public struct CaseResult: Sendable {
        public var file: String
        public var name: String
        public var location: SourceLocation
        public var outcome: CaseOutcome?
        /// Expectations that did not hold; or why the case could not run.
        public var failures: [CaseFailure]
        public var elapsed: Duration
        public var passed: Bool { failures.isEmpty }
    }

    /// Runs every case of `files` in order, reporting each as it ends.
    public func run(_ files: [PipelineTestFile], report: (CaseResult) -> Void) async throws -> [CaseResult] {
        let loader = PipelineLoader(registry: registry)
        let catalog = PipelineCatalog(loader: loader)
        var loaded: [String: Result<Pipeline, DiagnosticsError>] = [:]
        for file in Set(files.map(\.pipelineFile)).sorted() {
            loaded[file] = Result { () throws(DiagnosticsError) in try loader.load(file: file) }
            if case .success(let pipeline) = loaded[file] { catalog.add(pipeline) }
        }
        var quiet = logger
        quiet.logLevel = .error
        let engine = Engine(
            store: store, catalog: catalog, registry: registry,
            configuration: EngineConfiguration(
                workers: 8, lease: .seconds(30), pollInterval: .milliseconds(10), shutdownGrace: .seconds(1), waitsOutRetries: false),
            logger: quiet
        )
        let task = Task { try await engine.run() }
        defer { task.cancel() }
        let watch = EventWatch(store: store)
        defer { watch.stop() }
        var results: [CaseResult] = []
        for file in files {
            for testCase in file.cases {
                let started = ContinuousClock.now
                var result = CaseResult(file: file.file, name: testCase.name, location: testCase.location, outcome: nil, failures: [], elapsed: .zero)
                switch loaded[file.pipelineFile] {
                case .success(let pipeline)?:
                    do {
                        let outcome = try await run(testCase, pipeline: pipeline, catalog: catalog, engine: engine, watch: watch)
                        result.outcome = outcome
                        result.failures = testCase.expectations.compactMap { $0.failure(in: outcome) }
                    } catch {
                        result.failures = [error as? CaseFailure ?? CaseFailure(location: testCase.location, message: "the case could not run: \(error)")]
                    }
                case .failure(let error)?:
                    result.failures = error.diagnostics.map { CaseFailure(location: $0.location, message: "the pipeline does not load: \($0.message)") }
                case nil:
                    result.failures = [CaseFailure(location: testCase.location, message: "no pipeline file")]
                }
                result.elapsed = ContinuousClock.now - started
                report(result)
                results.append(result)
            }
        }
        task.cancel()
        _ = await task.result
        return results
    }

    /// Throws a `CaseFailure` when the case cannot run.
    private func run(_ testCase: PipelineTestCase, pipeline: Pipeline, catalog: PipelineCatalog, engine: Engine, watch: EventWatch) async throws -> CaseOutcome {
        func problem(_ message: String) -> CaseFailure { CaseFailure(location: testCase.location, message: message) }
        do {
            let user = testCase.user
            let balance = testCase.balance
            try await store.write { session in
                let change = balance - (try session.balance(userID: user))
                if change != 0 {
                    _ = try session.recordTokens(userID: user, change: change, reason: "genflow test", idempotencyKey: "test:\(UUID().uuidString)")
                }
            }
            // Submitted for later, scripted, then made due: the engine never sees it unscripted.
            let job: Job
            do {
                job = try await JobSubmitter(catalog: catalog, store: store).submit(
                    pipeline: pipeline.name, input: testCase.input, userID: user, runAt: "2999-01-01T00:00:00Z"
                ).job
            } catch let error as SubmissionError {
                let details = error.details.map { "\n  \($0.path.joined(separator: ".")): \($0.message)" }.joined()
                throw problem("the input is refused: \(error.message)\(details)")
            }
            replies.script(jobID: job.id, replies: testCase.replies)
            defer { replies.forget(jobID: job.id) }
            let deadline = ContinuousClock.now + .seconds(60)
            while true {
                let id = job.id
                guard let current = try await store.read({ try $0.job(id: id) }) else { throw problem("the job disappeared") }
                if current.status.isTerminal { break }
                // A retry is due now, not after its delay (the case scripts the replies, not the clock).
                if try await store.write({ try $0.runNow(jobID: id) }) { engine.notify(channel: JobStore.jobsChannel) }
                guard ContinuousClock.now < deadline else { throw problem("the job did not end within 60 s (still \(current.status.rawValue))") }
                // Every change of the job commits an event: wait for the next commit.
                await watch.next(timeout: .milliseconds(200))
            }
            return try await outcome(of: job.id, user: user, watch: watch)
        } catch let failure as CaseFailure {
            throw failure
        } catch {
            throw problem("the case could not run: \(error)")
        }
    }

    /// The ended job as the expectations see it. Its events are read once the last one is visible
    /// (an older open transaction anywhere in the cluster can hold them back for a moment).
    private func outcome(of id: String, user: String, watch: EventWatch) async throws -> CaseOutcome {
        guard let detail = try await store.read({ try $0.jobDetail(id: id) }) else { throw CaseFailure(location: SourceLocation(file: "", line: 0, column: 0), message: "job \(id) not found") }
        var events: [Event] = []
        // Events become readable once every older transaction of the cluster has ended: on a
        // shared, busy cluster that can take seconds (a guard against a hang, not a timing check).
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            events = try await store.read { try $0.events(after: .start, jobID: id, limit: 10_000) }
            if events.contains(where: { $0.kind.map(EventType.jobEnds.contains) == true }) { break }
            await watch.next(timeout: .milliseconds(50))
        }
        let objects = try await store.read { try $0.canvasObjects(jobID: id) }
        let ledger = try await store.read { try $0.ledger(userID: user, limit: 1_000) }
        // Attempts: every time the step ran, a re-ask by a later step's on_invalid included.
        // A for_each step's items are also steps of their own, `id[index]`.
        let steps = detail.steps.flatMap { step in
            let starts = events.filter { $0.kind == .stepStarted && $0.step == step.id }
            let items = (step.items ?? []).map { item in
                let index = item.item ?? 0
                return (id: "\(step.id)[\(index)]", status: item.status.rawValue, attempts: starts.filter { $0.data["item"]?.intValue == index }.count)
            }
            return [(id: step.id, status: step.status.rawValue, attempts: starts.count)] + items
        }
        let retries: [CaseOutcome.Retry] = events.filter { $0.kind == .stepRetrying }.map { event in
            let error = event.data["error"]
            return CaseOutcome.Retry(
                step: (event.step ?? "") + (event.data["item"]?.intValue.map { "[\($0)]" } ?? ""), attempt: event.data["attempt"]?.intValue ?? 0,
                error: "\(error?["class"]?.stringValue ?? ""): \(error?["message"]?.stringValue ?? "")",
                delay: event.data["delay_ms"]?.intValue.map { .milliseconds($0) }, reAskedBy: event.data["retry_step"]?.stringValue
            )
        }
        return CaseOutcome(
            jobID: id, status: detail.job.status.rawValue, error: detail.job.error, result: detail.job.result ?? [:],
            steps: steps, retries: retries, canvasObjects: objects,
            events: events.map { ["type": .string($0.type), "step": $0.step.map(JSON.string) ?? .null, "data": $0.data] },
            debited: ledger.filter { $0.jobID == id && $0.change < 0 }.reduce(0) { $0 - $1.change }
        )
    }
}

