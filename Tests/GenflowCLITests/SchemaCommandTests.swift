import Foundation
import Testing

@Suite("Editor schemas")
struct SchemaCommandTests {
    @Test("etc/schema/*.json are what `genflow schema` generates (run `make schemas` after changing stages or config keys)",
          arguments: [("pipeline", "pipeline"), ("config", "config"), ("plugin", "plugin"), ("test", "pipeline-test")])
    func upToDate(document: String, file: String) throws {
        let result = try genflow("schema", document)
        #expect(result.status == 0)
        let shipped = try String(contentsOfFile: "etc/schema/\(file).schema.json", encoding: .utf8)
        #expect(result.stdout == shipped)
    }

    @Test("the pipeline schema offers every stage and checks each stage's with:")
    func pipelineSchema() throws {
        let result = try genflow("schema", "pipeline")
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let step = try #require((schema["definitions"] as? [String: Any])?["step"] as? [String: Any])
        let stage = try #require((step["properties"] as? [String: Any])?["stage"] as? [String: Any])
        #expect((stage["enum"] as? [String])?.count == StagesCommandTests.builtins.count)
        #expect((step["allOf"] as? [Any])?.count == StagesCommandTests.builtins.count)
    }

    @Test("the config schema names exactly the keys the loader accepts")
    func configSchema() throws {
        let result = try genflow("schema", "config")
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let keys = try #require((schema["properties"] as? [String: Any])?.keys)
        #expect(Set(keys) == ["listen", "database", "state_dir", "pipelines_dir", "plugins_dir", "workers", "auth", "providers", "limits", "retention", "log", "queue", "cors_origins", "listener"])
    }
}
