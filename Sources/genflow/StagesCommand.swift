import ArgumentParser
import Foundation
import GenflowConfig
import GenflowCore
import GenflowPipeline

/// `genflow stages`: every registered stage with its config fields.
struct StagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stages",
        abstract: "List every registered stage (built-in and plugin) with its config fields."
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Print one JSON document: [{name, origin, summary, config}].")
    var json = false

    func run() async throws {
        let config: DaemonConfig
        do {
            config = try options.loadConfig()
        } catch {
            var printer = DiagnosticPrinter(brief: false)
            error.diagnostics.forEach { printer.print($0) }
            throw ExitCode(1)
        }
        let plugins = await config.loadPlugins(start: false)
        for failure in plugins.failures { FileHandle.standardError.write(Data("genflow: \(failure)\n".utf8)) }
        let descriptors = config.makeStageRegistry(plugins: plugins).descriptors
        if json {
            print(JSON.array(descriptors.map(\.json)))
            return
        }
        for (index, descriptor) in descriptors.enumerated() {
            if index > 0 { print() }
            print("\(descriptor.name)  (\(descriptor.origin))")
            print("  \(descriptor.summary)")
            let schema = descriptor.config
            if schema.properties.isEmpty {
                print("  with: (no fields)")
                continue
            }
            print("  with:")
            let width = schema.properties.map(\.name.count).max() ?? 0
            for property in schema.properties {
                var line = "    \(property.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(Self.typeText(property.schema))"
                if schema.required.contains(property.name) { line += ", required" }
                if let value = property.schema.defaultValue { line += ", default \(value)" }
                if let description = property.schema.description { line += " — \(description)" }
                print(line)
            }
        }
    }

    private static func typeText(_ schema: JSONSchema) -> String {
        var text = schema.types.isEmpty ? "any" : schema.types.joined(separator: "|")
        if let items = schema.items, !items.types.isEmpty { text += " of \(items.types.joined(separator: "|"))" }
        if let values = schema.enumValues { text += " (\(values.map { $0.stringValue ?? $0.description }.joined(separator: ", ")))" }
        var bounds: [String] = []
        if let minimum = schema.minimum { bounds.append("≥ \(JSON.double(minimum))") }
        if let maximum = schema.maximum { bounds.append("≤ \(JSON.double(maximum))") }
        if !bounds.isEmpty { text += " " + bounds.joined(separator: " ") }
        return text
    }
}
