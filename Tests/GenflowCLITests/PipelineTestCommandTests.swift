import Foundation
import Testing

/// `genflow test` and `genflow run --dry-run` as operators run them. They make their throwaway
/// database on the test cluster (GENFLOW_TEST_DATABASE_URL, which `make test` sets).
@Suite("genflow test and genflow run --dry-run", .timeLimit(.minutes(3)))
struct PipelineTestCommandTests {
    let repository = FileManager.default.currentDirectoryPath

    @Test("the shipped pipeline tests pass; retries show their attempts and computed delays, and on_invalid its re-ask")
    func shipped() async throws {
        let result = try await genflow("test", "pipelines/")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("22 passed, 0 failed"))
        #expect(result.stdout.contains("ok    illustrated-canvas › the picture branch retries on its own; the canvas branch is not asked again"))
        #expect(result.stdout.contains("variants[1]: attempt 1 failed, rate_limited: slow down → retry after 2s (computed, not waited)"))
        #expect(result.stdout.contains("ok    fallbacks › the first target fails with a server error, the fallback answers in the same attempt"))
        #expect(result.stdout.contains("ok    canvas-generation › a rate limit, then an answer; the retry waits what the provider asked"))
        #expect(result.stdout.contains("generate: attempt 1 failed, rate_limited: slow down → retry after 7s (computed, not waited)"))
        #expect(result.stdout.contains("generate: attempt 2 failed, rate_limited: overloaded → retry after 5s (computed, not waited)"))
        #expect(result.stdout.contains("objects: output_invalid: no canvas objects in the reply: the reply holds no JSON list or object → asks generate again (on_invalid)"))
    }

    @Test("a broken expectation fails the run with the expected and actual values at the expectation's file:line:col")
    func brokenExpectation() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let file = try directory.write("broken.test.yaml", """
            pipeline: \(repository)/pipelines/canvas-generation.yaml
            cases:
              - name: wrong on purpose
                input: {instructions: "a flowchart with 3 steps"}
                expect:
                  status: completed
                  debited: 320
                  canvas: {count: 9}
            """)
        let result = try await genflow("test", file)
        #expect(result.status == 1)
        #expect(result.stdout.contains("FAIL  broken › wrong on purpose"))
        #expect(result.stdout.contains("\(file):7:16: error: debited: expected 320, got 319"), "\(result.stdout)")
        #expect(!result.stdout.contains("canvas.count"), "the expectations that hold are quiet")
        #expect(result.stdout.contains("0 passed, 1 failed"))
    }

    @Test("a malformed test file is refused with file:line:col before anything runs")
    func malformedFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let file = try directory.write("bad.test.yaml", """
            pipeline: \(repository)/pipelines/canvas-generation.yaml
            cases:
              - name: typo
                expct: {status: completed}
                replies:
                  generate:
                    - {error: rate_limit}
            """)
        let result = try await genflow("test", file)
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(file):4:5: error: unknown key 'expct' in a test case; did you mean 'expect'?"), "\(result.stderr)")
        #expect(result.stderr.contains("\(file):7:11: error: replies for step 'generate': 'error' must be an error class"), "\(result.stderr)")
        #expect(result.stderr.contains("did you mean 'rate_limited'?"))
    }

    @Test("genflow run --dry-run prints each step's output and the events, touching no configured database")
    func dryRun() async throws {
        let result = try await genflow("run", "canvas-generation", "--input", #"{"instructions": "a flowchart with 2 steps"}"#, "--dry-run",
                                 "--database-url", ProcessInfo.processInfo.environment["GENFLOW_TEST_DATABASE_URL"] ?? "")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("completed in"))
        #expect(result.stdout.contains("  generate completed, 1 attempt: {\"cached\":false"))
        #expect(result.stdout.contains("  canvas.objects generate {\"objects\":"))
        #expect(result.stdout.contains("  job.completed"))
        #expect(result.stdout.contains("started: balance → prompt → record → generate → objects → save → done → debit"))
        #expect(result.stdout.contains("order (") == false, "a chain has no levels to show")
        let branching = try await genflow("run", "illustrated-canvas", "--input", #"{"instructions": "a cat"}"#, "--dry-run", "--balance", "1000",
                                    "--database-url", ProcessInfo.processInfo.environment["GENFLOW_TEST_DATABASE_URL"] ?? "")
        #expect(branching.status == 0, "\(branching.stderr)")
        #expect(branching.stdout.contains("order (steps on one line run side by side):\n  1. balance\n  2. prompt\n  3. record, picture\n  4. generate, picture_saved\n"))
        let refused = try await genflow("run", "canvas-generation", "--input", "{}")
        #expect(refused.status == 2 && refused.stderr.contains("needs --dry-run"))
    }
}
