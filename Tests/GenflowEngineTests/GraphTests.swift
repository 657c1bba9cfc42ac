import Foundation
import GenflowCore
import GenflowQueue
import GenflowTestHarness
import Testing

/// A fan-out and fan-in: `a`, then `b` and `c` (both need `a`), then `d` (needs both). `b` and `c`
/// are written by `with` (test.step settings, JSON).
private func diamond(b: String, c: String, bExtra: String = "") -> String {
    """
    name: diamond
    steps:
      - id: a
        stage: test.step
        with: {output: start}
      - id: b
        stage: test.step
        needs: [a]\(bExtra)
        with: \(b)
      - id: c
        stage: test.step
        needs: [a]
        with: \(c)
      - id: d
        stage: test.step
        needs: [b, c]
        with: {output: {b: "{{steps.b.output}}", c: "{{steps.c.output.output}}"}}
    """
}

/// Seconds since the epoch of a stored timestamp (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).
private func seconds(_ text: String) -> Double {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let whole = formatter.date(from: String(text.prefix(23)) + "Z")?.timeIntervalSince1970 ?? 0
    return whole + (Double("0." + text.dropFirst(23).prefix(3)) ?? 0) / 1000
}

/// The most attempts of `runs` that were running at once. Each attempt counts from 50 ms after
/// its start to 50 ms before its end: flushes place the times of one job's attempts to within a
/// few milliseconds of each other, and an attempt that starts as another ends is not beside it.
private func mostAtOnce(_ runs: [StepRun]) -> Int {
    var edges: [(Double, Int)] = []
    for run in runs {
        edges.append((seconds(run.startedAt) + 0.05, 1))
        edges.append(((run.finishedAt.map(seconds) ?? .infinity) - 0.05, -1))
    }
    var current = 0, most = 0
    for (_, change) in edges.sorted(by: { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }) {
        current += change
        most = max(most, current)
    }
    return most
}

@Suite("Pipelines as graphs: branches, items, failures", .serialized, .timeLimit(.minutes(3)))
struct GraphTests {
    @Test("branches run side by side: b and c overlap; d runs once both completed and sees both outputs")
    func branches() async throws {
        let harness = try await Harness.make(pipelines: ["diamond": diamond(
            b: "{sleep: 600ms, record: /dev/null, output: left}", c: "{sleep: 600ms, record: /dev/null, output: right}")])
        let finished = try await harness.running(harness.engine(workers: 1)) {
            try await harness.wait(for: try await harness.submit("diamond").id)
        }
        #expect(finished.status == .completed)
        #expect(finished.result?["d"]?["output"]?["c"] == "right")
        #expect(finished.result?["d"]?["output"]?["b"]?["output"] == "left")
        let runs = try await harness.runs(finished.id)
        #expect(mostAtOnce(runs.filter { ["b", "c"].contains($0.stepID) }) == 2, "b and c ran at once, on one worker")
        let events = try await harness.events(finished.id)
        // d started after b and c completed, in commit order (the attempts' times come from the
        // clocks of different flushes, and a few microseconds apart they may cross).
        let dStarted = try #require(events.firstIndex { $0.type == "step.started" && $0.step == "d" })
        let bcCompleted = events.indices.filter { events[$0].type == "step.completed" && ["b", "c"].contains(events[$0].step ?? "") }
        #expect(bcCompleted.count == 2 && bcCompleted.allSatisfy { $0 < dStarted })
        #expect(events.filter { $0.type == "step.started" }.compactMap(\.step).sorted() == ["a", "b", "c", "d"])
    }

    @Test("a branch waiting for its retry does not hold the other: c goes on, b runs again when due, in the same claim")
    func branchRetry() async throws {
        let harness = try await Harness.make(pipelines: ["diamond": diamond(
            b: "{fail_attempts: 1, retry_after: 200ms, output: again}", c: "{sleep: 5s, record: /dev/null, output: slow}")])
        let job = try await harness.submit("diamond")
        let finished = try await harness.running(harness.engine(workers: 1)) { try await harness.wait(for: job.id) }
        #expect(finished.status == .completed)
        let runs = try await harness.runs(job.id)
        #expect(runs.filter { $0.stepID == "b" }.map(\.status) == [.failed, .completed])
        #expect(runs.filter { $0.stepID == "c" }.map(\.status) == [.completed])
        let retryDone = try #require(runs.last { $0.stepID == "b" }?.finishedAt)
        let cDone = try #require(runs.first { $0.stepID == "c" }?.finishedAt)
        #expect(retryDone < cDone, "b's retry ran while c still ran")
        #expect(finished.leaseToken == job.leaseToken + 1, "one claim: the job never went back to the database to wait")
    }

    @Test("when only a waiting branch is left, the job waits in the database holding no worker; what completed does not run again")
    func waitsInDatabase() async throws {
        let record = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-graph-\(UUID().uuidString)").path
        let harness = try await Harness.make(pipelines: ["diamond": diamond(
            b: "{fail_attempts: 1, retry_after: 60s, output: again}", c: "{record: \(record), output: quick}")])
        let job = try await harness.submit("diamond")
        let engine = harness.engine(workers: 1)
        let finished = try await harness.running(engine) {
            // b waits a minute, so the test cannot miss the wait however slow the machine; then
            // its retry is made due now, as `genflow test` does.
            #expect(try await harness.wait(for: job.id, [.waitingRetry]).status == .waitingRetry)
            #expect(try await harness.store.write { try $0.runNow(jobID: job.id) })
            engine.notify(channel: JobStore.jobsChannel)
            return try await harness.wait(for: job.id)
        }
        #expect(finished.status == .completed)
        #expect(finished.leaseToken == job.leaseToken + 2, "two claims: the job went back to the database to wait")
        #expect(try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n").count == 1, "c ran once")
        #expect(try await harness.runs(job.id).filter { $0.stepID == "b" }.map(\.status) == [.failed, .completed])
    }

    @Test("a branch that fails for good fails the job and cancels the running branch; continue_on_error lets the job go on with the error as output")
    func failures() async throws {
        let failing = "{fail_attempts: 5, fail_class: invalid_request}"
        let harness = try await Harness.make(pipelines: [
            "diamond": diamond(b: failing, c: "{sleep: 30s, record: /dev/null}"),
            "tolerant": diamond(b: failing, c: "{output: fine}", bExtra: "\n    continue_on_error: true").replacingOccurrences(of: "name: diamond", with: "name: tolerant"),
        ])
        let (failed, tolerated) = try await harness.running(harness.engine(workers: 2)) {
            let failed = try await harness.wait(for: try await harness.submit("diamond").id)
            let tolerated = try await harness.wait(for: try await harness.submit("tolerant").id)
            return (failed, tolerated)
        }
        #expect(failed.status == .failed)
        #expect(failed.error?["step"] == "b" && failed.error?["class"] == "invalid_request")
        let runs = try await harness.runs(failed.id)
        #expect(runs.first { $0.stepID == "c" }?.status == .cancelled, "the running branch was stopped")
        #expect(runs.contains { $0.stepID == "d" } == false)

        #expect(tolerated.status == .completed)
        #expect(tolerated.result?["b"]?["error"]?["class"] == "invalid_request")
        #expect(tolerated.result?["d"]?["output"]?["b"]?["error"]?["class"] == "invalid_request", "d saw b's error")
        let completed = try await harness.events(tolerated.id).first { $0.type == "step.completed" && $0.step == "b" }
        #expect(completed?.data["continued"] == true)
    }

    @Test("for_each runs an item per element, at most max_parallel at once; the output is the items' outputs in order; a retry redoes only its item")
    func forEach() async throws {
        let yaml = """
            name: fan
            input:
              properties:
                names: {type: array, items: {type: string}}
            steps:
              - id: each
                stage: test.step
                for_each: "{{input.names}}"
                max_parallel: 2
                with: {sleep: 400ms, record: /dev/null, output: "{{index}}:{{item}}"}
              - id: flaky
                stage: test.step
                for_each: 3
                with: {output: "{{item}}", fail_attempts: 1, retry_after: 100ms}
              - id: after
                stage: test.step
                with: {output: "{{steps.each.output}}"}
            """
        let harness = try await Harness.make(pipelines: ["fan": yaml])
        let job = try await harness.submit("fan", input: ["names": ["ann", "bob", "cy", "dee", "eve"]])
        let finished = try await harness.running(harness.engine(workers: 1)) { try await harness.wait(for: job.id) }
        #expect(finished.status == .completed)
        #expect(finished.result?["each"]?.arrayValue?.map { $0["output"] } == ["0:ann", "1:bob", "2:cy", "3:dee", "4:eve"])
        #expect(finished.result?["flaky"]?.arrayValue?.map { $0["output"] } == [0, 1, 2])
        let runs = try await harness.runs(job.id)
        let items = runs.filter { $0.stepID == "each" && $0.item != nil }
        #expect(items.map(\.item).sorted { ($0 ?? 0) < ($1 ?? 0) } == [0, 1, 2, 3, 4])
        #expect(mostAtOnce(items) == 2, "two at once, never more: \(items.map { "\($0.item ?? -1) \($0.startedAt) \($0.finishedAt ?? "-")" })")
        let flaky = runs.filter { $0.stepID == "flaky" && $0.item != nil }
        for item in 0..<3 {
            #expect(flaky.filter { $0.item == item }.map(\.status) == [.failed, .completed], "item \(item) retried alone")
        }
        let events = try await harness.events(job.id)
        #expect(events.filter { $0.type == "step.retrying" && $0.step == "flaky" }.compactMap { $0.data["item"]?.intValue }.sorted() == [0, 1, 2])
        #expect(events.first { $0.type == "step.completed" && $0.step == "each" && $0.data["items"] != nil }?.data["items"] == 5)
    }

    @Test("on_invalid on a for_each step: the item that failed asks the earlier step again, then runs again alone; the other items keep their outputs")
    func itemReask() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-reask-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let yaml = """
            name: reasking
            input:
              properties:
                fails: {type: array, items: {type: integer}}
            steps:
              - id: source
                stage: test.step
                with: {record: "\(directory)/source", output: fresh}
              - id: each
                stage: test.step
                for_each: "{{input.fails}}"
                on_invalid: {retry_step: source, max: 1}
                with: {record: "\(directory)/each-{{index}}", fail_attempts: "{{item}}", fail_class: output_invalid, output: "{{index}}"}
            """
        let harness = try await Harness.make(pipelines: ["reasking": yaml])
        let job = try await harness.submit("reasking", input: ["fails": [0, 1, 0]])
        let finished = try await harness.running(harness.engine(workers: 1)) { try await harness.wait(for: job.id) }
        #expect(finished.status == .completed, "\(finished.error ?? .null)")
        #expect(finished.result?["each"]?.arrayValue?.map { $0["output"] } == [0, 1, 2])
        func runs(_ file: String) throws -> Int { try String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8).split(separator: "\n").count }
        #expect(try runs("source") == 2, "asked again once")
        #expect(try [runs("each-0"), runs("each-1"), runs("each-2")] == [1, 2, 1], "only the item that failed ran again")
        let retrying = try await harness.events(job.id).filter { $0.type == "step.retrying" }
        #expect(retrying.map { $0.data["item"] } == [1] && retrying.first?.data["retry_step"] == "source")
    }

    @Test("for_each over something that is not a list or a number fails the job with a clear error")
    func badItems() async throws {
        let yaml = """
            name: bad
            input:
              properties:
                n: {type: string}
            steps:
              - id: each
                stage: test.step
                for_each: "{{input.n}}"
                with: {output: "{{item}}"}
            """
        let harness = try await Harness.make(pipelines: ["bad": yaml])
        let failed = try await harness.running(harness.engine()) { try await harness.wait(for: try await harness.submit("bad", input: ["n": "three"]).id) }
        #expect(failed.status == .failed)
        #expect(failed.error?["class"] == "invalid_request")
        #expect(failed.error?["message"]?.stringValue?.contains("for_each gave a value of type string") == true, "\(failed.error ?? .null)")
    }

    @Test("kill -9 during for_each items: after each crash only the unfinished items run again")
    func itemsAfterCrash() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-items-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Each item kills its daemon the first time it runs (its marker file does not exist yet).
        let yaml = """
            name: crashing-items
            steps:
              - id: each
                stage: test.step
                for_each: 3
                max_parallel: 1
                with: {record: "\(directory)/ran-{{index}}", crash: "\(directory)/crashed-{{index}}", output: "{{item}}"}
            """
        let harness = try await Harness.make(pipelines: ["crashing-items": yaml])
        let job = try await harness.submit("crashing-items")
        for _ in 0..<4 where try await harness.job(job.id).status != .completed {
            let daemon = try await DaemonProcess(harness: harness, lease: "1s")
            while daemon.process.isRunning, try await harness.job(job.id).status != .completed {
                try await Task.sleep(for: .milliseconds(20))
            }
            await daemon.terminate()
        }
        let finished = try await harness.wait(for: job.id)
        #expect(finished.status == .completed)
        #expect(finished.result?["each"]?.arrayValue?.map { $0["output"] } == [0, 1, 2])
        #expect(finished.rescues == 3)
        for item in 0..<3 {
            let starts = try String(contentsOfFile: "\(directory)/ran-\(item)", encoding: .utf8).split(separator: "\n").count
            #expect(starts == 2, "item \(item) ran \(starts) times: once to crash, once to complete, never again after")
        }
        let runs = try await harness.runs(job.id).filter { $0.item != nil }
        for item in 0..<3 { #expect(runs.filter { $0.item == item }.map(\.status) == [.interrupted, .completed]) }
    }
}
