import ArgumentParser
import Foundation
import GenflowConfig
import GenflowCore
import GenflowDaemon
import GenflowPipeline
import GenflowPlugins
import GenflowStages
import Logging

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    static let defaultConfigFile = "etc/genflow.yaml"

    @Option(name: .long, help: "Daemon config file.")
    var config: String?

    /// The config file in effect: the flag's, else the default path.
    var configFile: String { config ?? Self.defaultConfigFile }

    /// Loads the daemon config; the file must exist when named with `--config`.
    func loadConfig() throws(DiagnosticsError) -> DaemonConfig {
        try DaemonConfig.load(file: configFile, required: config != nil)
    }
}

extension DaemonConfig {
    /// The stage registry `genflow serve` would run with this config and `plugins`.
    func makeStageRegistry(plugins: PluginSet = PluginSet()) -> StageRegistry {
        makeStageRegistry(testStages: Daemon.testStagesEnabled, plugins: plugins.stages)
    }

    /// The plugins of plugins_dir: manifests only, or (`start`) running, to check their hello.
    func loadPlugins(start: Bool) async -> PluginSet {
        var logger = Logger(label: "genflow")
        logger.logLevel = .warning
        return await PluginSet.load(directory: pluginsDir, start: start, reserved: BuiltinStages.names, logger: logger)
    }
}

/// Prints diagnostics compiler style on standard error, with a source snippet unless `brief`.
struct DiagnosticPrinter {
    var brief: Bool
    private var sources: [String: String?] = [:]

    init(brief: Bool) {
        self.brief = brief
    }

    mutating func print(_ diagnostic: Diagnostic) {
        let text: String
        if brief {
            text = diagnostic.description
        } else {
            let file = diagnostic.location.file
            if sources[file] == nil { sources[file] = try? String(contentsOfFile: file, encoding: .utf8) }
            text = diagnostic.rendered(source: sources[file] ?? nil)
        }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
