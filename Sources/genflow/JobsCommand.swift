import ArgumentParser
import Foundation
import GenflowConfig
import GenflowCore
import GenflowQueue

/// `genflow jobs list|show|cancel|retry`: the operator's view of the queue.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List, inspect, cancel and retry jobs.",
        subcommands: [List.self, Show.self, Cancel.self, Retry.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Jobs, newest first.")

        @OptionGroup var options: GlobalOptions
        @Option(help: "queued, running, waiting_retry, completed, failed or cancelled.") var status: String?
        @Option(help: "Only this pipeline's jobs.") var pipeline: String?
        @Option(help: "Only this user's jobs.") var user: String?
        @Option(help: "Page size (1–1000).") var limit: Int = 50
        @Option(help: "next_cursor of the previous page.") var cursor: String?
        @Flag(help: "Print one JSON document: {items, next_cursor}.") var json = false

        func run() async throws {
            let config = try options.loadConfigOrExit()
            guard (1...1_000).contains(limit) else { throw ValidationError("--limit must be between 1 and 1000") }
            let statusFilter = try status.map { text -> JobStatus in
                guard let value = JobStatus(rawValue: text) else {
                    throw ValidationError("unknown status '\(text)' (statuses: \(JobStatus.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return value
            }
            let after = try cursor.map { text -> PageCursor in
                guard let cursor = PageCursor(text: text) else { throw ValidationError("--cursor is not a cursor from a previous page") }
                return cursor
            }
            let (user, pipeline, limit) = (user, pipeline, limit)
            let jobs = try await options.withStore(config) { store in
                try await store.read { try $0.jobs(userID: user, status: statusFilter, pipeline: pipeline, before: after, limit: limit) }
            }
            let next = jobs.count == limit ? jobs.last.map { PageCursor(after: $0).text } : nil
            if json {
                let items = jobs.map { $0.json() }
                print(JSON.object(["items": .array(items), "next_cursor": next.map(JSON.string) ?? .null]))
                return
            }
            if jobs.isEmpty { print("no jobs") }
            for job in jobs {
                print("\(job.id)  \(job.status.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0))  \(job.pipeline)  user \(job.userID)  attempts \(job.attempts)  cost $\(job.cost)  created \(job.createdAt)")
            }
            if let next { print("next page: --cursor \(next)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A job with its steps, attempts, errors and timings.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "Job id.") var id: String
        @Flag(help: "Print one JSON document.") var json = false

        func run() async throws {
            let config = try options.loadConfigOrExit()
            let id = id
            let found = try await options.withStore(config) { store in
                try await store.read { try $0.jobDetail(id: id) }
            }
            guard let found else {
                printError("no job \(id)")
                throw ExitCode(1)
            }
            if json {
                print(found.json)
                return
            }
            let (job, steps, runs) = (found.job, found.steps, found.runs)
            print("job \(job.id)")
            print("  pipeline  \(job.pipeline) (version \(job.pipelineVersion.prefix(12)))")
            print("  user      \(job.userID)")
            print("  status    \(job.status.rawValue)\(job.cancelRequested && !job.status.isTerminal ? " (cancel requested)" : "")")
            print("  priority  \(job.priority)   attempts \(job.attempts)   rescues \(job.rescues)   cost $\(job.cost)")
            print("  created   \(job.createdAt)   started \(job.startedAt ?? "-")   finished \(job.finishedAt ?? "-")")
            if job.status == .waitingRetry || job.status == .queued { print("  run at    \(job.runAt)") }
            if let error = job.error {
                print("  error     \(error["class"]?.stringValue ?? "?") in step \(error["step"]?.stringValue ?? "-"): \(error["message"]?.stringValue ?? "")")
            }
            print("  steps")
            for (index, step) in steps.enumerated() {
                let mine = runs.filter { $0.stepID == step.id }
                let after = step.needs == (index == 0 ? [] : [steps[index - 1].id]) ? "" : "  needs \(step.needs.isEmpty ? "nothing" : step.needs.joined(separator: ", "))"
                print("    \(step.id) (\(step.stage)\(step.items != nil ? ", for each item" : "")): \(step.status)\(after)")
                for run in mine {
                    var line = "      \(run.item.map { "item \($0)  " } ?? "")attempt \(run.attempt)  \(run.status)  started \(run.startedAt)  finished \(run.finishedAt ?? "-")"
                    if let errorClass = run.errorClass { line += "  \(errorClass): \(run.errorMessage ?? "")" }
                    if let delay = run.retryDelayMilliseconds { line += "  retry in \(delay) ms" }
                    print(line)
                }
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a queued, waiting or running job.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "Job id.") var id: String

        func run() async throws {
            let config = try options.loadConfigOrExit()
            let id = id
            let outcome = try await options.withStore(config) { store in try await store.write { try $0.cancelJob(id: id) } }
            switch outcome {
            case .cancelled: print("cancelled job \(id)")
            case .requested: print("job \(id) is running: its daemon was told to stop it")
            case .notAllowed(let status):
                printError("job \(id) is \(status.rawValue); only queued, waiting_retry or running jobs can be cancelled")
                throw ExitCode(1)
            case .notFound:
                printError("no job \(id)")
                throw ExitCode(1)
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue a failed or cancelled job again, from its first unfinished step.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "Job id.") var id: String

        func run() async throws {
            let config = try options.loadConfigOrExit()
            let id = id
            let (job, status) = try await options.withStore(config) { store in try await store.write { try $0.retryJob(id: id) } }
            if job != nil {
                print("queued job \(id) again")
            } else if let status {
                printError("job \(id) is \(status.rawValue); only failed or cancelled jobs can be retried")
                throw ExitCode(1)
            } else {
                printError("no job \(id)")
                throw ExitCode(1)
            }
        }
    }
}
