import ArgumentParser
import GenflowCore

/// `genflow`: the daemon and its operator tools, one binary.
@main
struct Genflow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "genflow",
        abstract: "Run AI generation pipelines defined in YAML.",
        version: "genflow \(GenflowVersion.version) (commit \(BuildInfo.commit))",
        subcommands: [
            ServeCommand.self, ValidateCommand.self, MigrateCommand.self, SubmitCommand.self, JobsCommand.self,
            CreditCommand.self, TokenCommand.self, StagesCommand.self, SchemaCommand.self, TestCommand.self, RunCommand.self,
        ]
    )
}
