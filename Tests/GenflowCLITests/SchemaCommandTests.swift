import Foundation
import Testing

@Suite("Editor schemas", .timeLimit(.minutes(3)))
struct SchemaCommandTests {
    @Test("etc/schema/*.json are what `genflow schema` generates (run `make schemas` after changing stages or config keys)",
          arguments: [("pipeline", "pipeline"), ("config", "config"), ("plugin", "plugin"), ("test", "pipeline-test")])
    func upToDate(document: String, file: String) async throws {
        let result = try await genflow("schema", document)
        #expect(result.status == 0)
        let shipped = try String(contentsOfFile: "etc/schema/\(file).schema.json", encoding: .utf8)
        #expect(result.stdout == shipped)
    }

    @Test("the pipeline schema offers every stage and checks each stage's with:")
    func pipelineSchema() async throws {
        let result = try await genflow("schema", "pipeline")
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let step = try #require((schema["definitions"] as? [String: Any])?["step"] as? [String: Any])
        let stage = try #require((step["properties"] as? [String: Any])?["stage"] as? [String: Any])
        // The built-in stages and the two shipped plugins' (plugins/: anthropic.messages, moderation.check).
        #expect((stage["enum"] as? [String])?.count == StagesCommandTests.builtins.count + 2)
        #expect((step["allOf"] as? [Any])?.count == StagesCommandTests.builtins.count + 2)
    }

    @Test("every shipped pipeline, plugin stages and graphs included, passes the editor schema under a real JSON Schema validator; a broken one does not")
    func shippedPipelinesValidate() async throws {
        func files(_ directory: String) throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") && !$0.hasSuffix(".test.yaml") }.sorted().map { "\(directory)/\($0)" }
        }
        let pipelines = try files("pipelines") + files("pipelines/tests")
        #expect(pipelines.contains("pipelines/claude-canvas-generation.yaml") && pipelines.contains("pipelines/tests/variants.yaml"))
        let accepted = try await run("/usr/bin/python3", ["Tests/Fixtures/validate_schema.py", "etc/schema/pipeline.schema.json"] + pipelines)
        #expect(accepted.status == 0, "\(accepted.stdout)\(accepted.stderr)")

        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let broken = try directory.write("broken.yaml", """
            name: broken
            steps:
              - {id: a, stage: moderation.check, with: {text: 42}}
              - {id: b, stage: notify, needs: a, for_each: {x: 1}, with: {event: x}}
            """)
        let refused = try await run("/usr/bin/python3", ["Tests/Fixtures/validate_schema.py", "etc/schema/pipeline.schema.json", broken])
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("steps/0/with: {'text': 42} is not valid"), "a plugin stage's settings are checked: \(refused.stdout)")
        #expect(refused.stdout.contains("steps/1/for_each"), "\(refused.stdout)")
    }

    @Test("the config schema names exactly the keys the loader accepts")
    func configSchema() async throws {
        let result = try await genflow("schema", "config")
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let keys = try #require((schema["properties"] as? [String: Any])?.keys)
        #expect(Set(keys) == ["listen", "database", "state_dir", "pipelines_dir", "plugins_dir", "workers", "auth", "providers", "limits", "retention", "log", "queue", "cors_origins", "listener", "telemetry"])
    }
}
