import ArgumentParser
import GenflowConfig
import GenflowCore
import GenflowPipeline
import GenflowPlugins
import GenflowStages
import GenflowTesting

/// `genflow schema pipeline|config`: the JSON Schemas editors use, generated from the validation tables.
struct SchemaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema of pipeline files, the daemon config, plugin manifests or pipeline test files (for editors).",
        discussion: """
            The pipeline schema knows the built-in stages and the plugin stages of the config's \
            plugins_dir (their manifests: names and config schemas; nothing is started). The shipped \
            copies live in etc/schema/; regenerate them with `make schemas`.
            """
    )

    enum Document: String, ExpressibleByArgument, CaseIterable {
        case pipeline, config, plugin, test
    }

    @OptionGroup var options: GlobalOptions

    @Argument(help: "pipeline, config, plugin or test")
    var document: Document

    func run() async throws {
        switch document {
        case .pipeline:
            // Without provider names, so the shipped schema does not depend on one deployment's config.
            let config = (try? options.loadConfig()) ?? DaemonConfig()
            let plugins = await config.loadPlugins(start: false)
            let registry = DaemonConfig().makeStageRegistry(testStages: false, plugins: plugins.stages)
            print(EditorSchema.pipeline(registry: registry).prettyPrinted, terminator: "")
        case .config:
            print(DaemonConfig.editorSchema.prettyPrinted, terminator: "")
        case .plugin:
            print(PluginManifest.editorSchema.prettyPrinted, terminator: "")
        case .test:
            print(PipelineTestFile.editorSchema.prettyPrinted, terminator: "")
        }
    }
}
