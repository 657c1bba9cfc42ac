import ArgumentParser
import Foundation
import GenflowConfig
import GenflowCore
import GenflowEngine
import GenflowQueue
import GenflowStages
import GenflowTesting

/// `genflow submit PIPELINE --input JSON`: enqueue a job, optionally following it to the end.
struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Enqueue a job; with --follow, show its progress until it ends (exit 0 completed, 1 failed, 2 cancelled)."
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Pipeline name.")
    var pipeline: String

    @Option(help: "Job input: JSON text, or @FILE to read it from a file.")
    var input: String = "{}"

    @Option(help: "User the job belongs to.")
    var user: String = "local"

    @Option(help: "Higher runs first.")
    var priority: Int = 0

    @Option(name: .customLong("idempotency-key"), help: "Submitting again with the same key returns the same job.")
    var idempotencyKey: String?

    @Option(name: .customLong("run-at"), help: "ISO 8601 time before which the job does not run.")
    var runAt: String?

    @Flag(help: "Follow the job's events until it ends.")
    var follow = false

    @Option(help: "Wait for the job to end and write the replies its model, HTTP and plugin steps received to FILE (JSON), for a test case's replies_from or genflow run --replies.")
    var record: String?

    @Flag(help: "Print one JSON document: {job, created}.")
    var json = false

    func run() async throws {
        let config = try options.loadConfigOrExit()
        let value = try Self.parseInput(input)
        let catalog = await options.makeCatalog(config)
        let outcome: Int32 = try await options.withStore(config) { store in
            let submitter = JobSubmitter(catalog: catalog, store: store)
            let submitted: (job: Job, created: Bool)
            do {
                submitted = try await submitter.submit(
                    pipeline: pipeline, input: value, userID: user, priority: priority, idempotencyKey: idempotencyKey, runAt: runAt
                )
            } catch let error as SubmissionError {
                printError(error.description)
                for failure in catalog.failures {
                    failure.diagnostics.forEach { FileHandle.standardError.write(Data("  rejected: \($0)\n".utf8)) }
                }
                return 1
            }
            let job = submitted.job
            if json && !follow {
                let steps = try await store.read { try $0.pipelineSteps(name: job.pipeline, version: job.pipelineVersion) }
                print(JSON.object(["job": job.json(steps: StepState.of(job, steps: steps, runs: [])), "created": .bool(submitted.created)]))
                return 0
            }
            print(submitted.created ? "queued job \(job.id) (\(job.pipeline) \(job.pipelineVersion.prefix(12)))"
                                    : "job \(job.id) already exists for this idempotency key (status \(job.status.rawValue))")
            guard follow || record != nil else { return 0 }
            let outcome = follow ? try await Self.follow(jobID: job.id, store: store) : try await Self.wait(jobID: job.id, store: store)
            if let record {
                let document = try await Self.recording(jobID: job.id, pipeline: job.pipeline, store: store)
                try Data((document.description + "\n").utf8).write(to: URL(fileURLWithPath: record))
                print("recorded the replies of \(document["replies"]?.objectValue?.count ?? 0) steps to \(record)")
            }
            return outcome
        }
        if outcome != 0 { throw ExitCode(outcome) }
    }

    static func parseInput(_ text: String) throws -> JSON {
        var source = text
        if text.hasPrefix("@") {
            guard let data = FileManager.default.contents(atPath: String(text.dropFirst())) else {
                throw CommandFailure("cannot read input file \(text.dropFirst())")
            }
            source = String(decoding: data, as: UTF8.self)
        }
        do {
            let value = try JSON(parsing: source)
            guard case .object = value else { throw CommandFailure("--input must be a JSON object, not \(value.typeName)") }
            return value
        } catch let error as JSONParseError {
            throw CommandFailure("--input is not valid JSON: \(error.message)")
        }
    }

    /// Prints the job's events as they are committed until it ends; returns the exit code.
    /// On a terminal, the steps running now (branches and items side by side) are lines under the
    /// events, each with its progress bar, redrawn in place (`FollowBoard`); otherwise every event
    /// is a plain line.
    static func follow(jobID: String, store: JobStore) async throws -> Int32 {
        var cursor = EventCursor.start
        let isTerminal = isatty(STDOUT_FILENO) == 1
        var board = FollowBoard()
        var drawn = 0
        let watch = EventWatch(store: store)
        defer { watch.stop() }
        while true {
            let current = cursor
            let events = try await store.read { try $0.events(after: current, jobID: jobID) }
            guard !events.isEmpty else {
                await watch.next(timeout: .seconds(1))
                try Task.checkCancellation()
                continue
            }
            var output = ""
            if isTerminal { output += String(repeating: "\u{1B}[1A\u{1B}[2K", count: drawn) }  // erase the board
            for event in events {
                cursor = EventCursor(after: event)
                let onBoard = board.apply(event)
                if !isTerminal || !(onBoard && (event.kind == .stepProgress || event.kind == .canvasObjects)) {
                    output += describe(event) + "\n"
                }
            }
            if isTerminal {
                let lines = board.rendered
                output += lines.map { $0 + "\n" }.joined()
                drawn = lines.count
            }
            print(output, terminator: "")
            fflush(nil)  // each line as it happens, also when stdout is a pipe
            for event in events {
                switch event.kind {
                case .jobCompleted?: return 0
                case .jobFailed?: return 1
                case .jobCancelled?: return 2
                default: break
                }
            }
        }
    }

    /// Waits quietly for the job to end; returns the exit code `follow` would.
    static func wait(jobID: String, store: JobStore) async throws -> Int32 {
        let watch = EventWatch(store: store)
        defer { watch.stop() }
        while true {
            let status = try await store.read { try $0.job(id: jobID) }?.status
            switch status {
            case .completed?: return 0
            case .failed?, nil: return 1
            case .cancelled?: return 2
            default:
                // A job's end commits its job.* event: wait for the next commit of events.
                await watch.next(timeout: .seconds(1))
                try Task.checkCancellation()
            }
        }
    }

    /// The replies the job's outside calls received, call by call (`call_model`, `http.request`,
    /// plugin stages): a model's text with its usage, another output as is, a failure as its class
    /// and message. An attempt cut short by a daemon's death had no answer and is left out.
    static func recording(jobID: String, pipeline: String, store: JobStore) async throws -> JSON {
        let runs = try await store.read { try $0.stepRuns(jobID: jobID) }.sorted { ($0.stepID, $0.attempt) < ($1.stepID, $1.attempt) }
        var replies: [String: [ScriptedReply]] = [:]
        // A for_each step's own checkpoint gathers its items' outputs: the items' rows are the calls.
        let perItem = Set(runs.filter { $0.item != nil }.map(\.stepID))
        for run in runs where run.stage == "call_model" || run.stage == "http.request" || !BuiltinStages.names.contains(run.stage) {
            if run.item == nil && perItem.contains(run.stepID) { continue }
            let reply: ScriptedReply
            if let output = run.output {
                if run.stage == "call_model", output["images"] == nil, let text = output["text"]?.stringValue {
                    reply = .text(text, usage: output["usage"], finishReason: output["finish_reason"]?.stringValue)
                } else {
                    reply = .output(output)
                }
            } else if let errorClass = run.errorClass, run.status == .failed {
                reply = .failure(StepError(errorClass, run.errorMessage ?? ""))
            } else {
                continue
            }
            replies[run.item.map { "\(run.stepID)[\($0)]" } ?? run.stepID, default: []].append(reply)
        }
        return RecordedReplies.document(pipeline: pipeline, jobID: jobID, replies: replies)
    }

    static func describe(_ event: Event) -> String {
        let step = event.step.map { _ in " " + FollowBoard.unit(of: event) } ?? ""
        switch event.kind {
        case .stepStarted?: return "step\(step) started (attempt \(event.data["attempt"]?.intValue ?? 1))"
        case .stepCompleted?:
            if let items = event.data["items"]?.intValue { return "step\(step) completed: \(items) items" }
            if let error = event.data["error"] {
                return "step\(step) failed, continuing: \(error["class"]?.stringValue ?? "?"): \(error["message"]?.stringValue ?? "")"
            }
            return "step\(step) completed in \(event.data["duration_ms"]?.intValue ?? 0) ms"
        case .stepRetrying?:
            let error = event.data["error"]
            let delay = event.data["delay_ms"]?.intValue.map { " in \($0) ms" } ?? ""
            return "step\(step) retrying\(delay): \(error?["class"]?.stringValue ?? "?"): \(error?["message"]?.stringValue ?? "")"
        case .stepProgress?:
            return "step\(step) \(Int((event.data["fraction"]?.doubleValue ?? 0) * 100))% \(event.data["message"]?.stringValue ?? "")"
        case .jobFailed?, .jobCancelled?:
            guard let error = event.data["error"], let errorClass = error["class"]?.stringValue else { return "\(event.type)\(step)" }
            return "\(event.type)\(step): \(errorClass): \(error["message"]?.stringValue ?? "")"
        default:
            return "\(event.type)\(step)"
        }
    }
}
