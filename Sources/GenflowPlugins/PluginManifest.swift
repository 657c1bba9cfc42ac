public import GenflowCore
public import GenflowPipeline
internal import GenflowYAML
internal import Foundation

/// A plugin's `plugin.yaml` (SPEC §7): what it is, how to start it, the stages it provides.
public struct PluginManifest: Sendable {
    public struct StageSpec: Sendable {
        public var name: String
        public var description: String
        public var config: JSONSchema
    }

    public static let protocolName = "genflow-plugin/1"

    public var name: String
    public var version: String
    /// The executable and its arguments, started without a shell; a relative executable path is
    /// relative to `directory`.
    public var command: [String]
    public var instances: Int
    public var stages: [StageSpec]
    /// The plugin's folder (its working directory).
    public var directory: String
    public var file: String

    static let topKeys = ["name", "version", "protocol", "command", "instances", "stages"]

    /// Reads and checks `<directory>/plugin.yaml`; every problem comes back with its `file:line:col`.
    public static func load(directory: String) throws(DiagnosticsError) -> PluginManifest {
        let file = directory.hasSuffix("/") ? directory + "plugin.yaml" : directory + "/plugin.yaml"
        guard let data = FileManager.default.contents(atPath: file) else {
            throw DiagnosticsError([Diagnostic(at: SourceLocation(file: file, line: 1, column: 1), "cannot read the plugin manifest")])
        }
        let root: YAMLNode
        do {
            root = try YAMLParser.parse(bytes: Array(data), file: file)
        } catch {
            throw DiagnosticsError([error])
        }
        var reader = NodeReader()
        let manifest = read(root, directory: directory, file: file, reader: &reader)
        reader.sortByLocation()
        guard let manifest, reader.diagnostics.isEmpty else { throw DiagnosticsError(reader.diagnostics) }
        return manifest
    }

    private static func read(_ root: YAMLNode, directory: String, file: String, reader: inout NodeReader) -> PluginManifest? {
        guard let top = reader.mapping(root, "a plugin manifest", allowedKeys: topKeys, required: ["name", "version", "protocol", "command", "stages"]) else {
            return nil
        }
        var manifest = PluginManifest(name: "", version: "", command: [], instances: 1, stages: [], directory: directory, file: file)
        if let node = top["name"]?.value, let name = reader.string(node, "name") {
            if isName(name) { manifest.name = name } else {
                reader.error(at: node.location, "plugin name '\(name)' must be lowercase letters, digits, '-' and '_', starting with a letter")
            }
        }
        if let node = top["version"]?.value { manifest.version = reader.text(node, "version") ?? "" }
        if let node = top["protocol"]?.value, let text = reader.string(node, "protocol"), text != protocolName {
            reader.error(at: node.location, "protocol '\(text)' is not supported (this genflow speaks \(protocolName))")
        }
        if let node = top["command"]?.value, let parts = reader.stringList(node, "command") {
            if parts.isEmpty { reader.error(at: node.location, "command must name an executable") }
            manifest.command = parts.map(\.0)
        }
        if let node = top["instances"]?.value { manifest.instances = reader.int(node, "instances", in: 1...64) ?? 1 }
        if let node = top["stages"]?.value, let list = reader.list(node, "stages") {
            if list.isEmpty { reader.error(at: node.location, "a plugin must provide at least one stage") }
            for element in list {
                guard let entries = reader.mapping(element, "a plugin stage", allowedKeys: ["name", "description", "config"], required: ["name"]) else { continue }
                guard let nameNode = entries["name"]?.value, let name = reader.string(nameNode, "stage name") else { continue }
                guard name.split(separator: ".").count >= 2, name.split(separator: ".").allSatisfy({ isName(String($0)) }) else {
                    reader.error(at: nameNode.location, "plugin stage '\(name)' must be a dotted name such as \(manifest.name.isEmpty ? "acme" : manifest.name).generate_image")
                    continue
                }
                if manifest.stages.contains(where: { $0.name == name }) {
                    reader.error(at: nameNode.location, "stage '\(name)' is declared twice")
                    continue
                }
                let description = entries["description"].flatMap { reader.string($0.value, "description", allowEmpty: true) } ?? ""
                var config = JSONSchema.object([])
                if let node = entries["config"]?.value { config = JSONSchema.read(node, "config of '\(name)'", impliedType: "object", reader: &reader) ?? config }
                manifest.stages.append(StageSpec(name: name, description: description, config: config))
            }
        }
        return manifest
    }

    static func isName(_ text: String) -> Bool {
        text.first?.isLetter == true && text.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// The plugin folders (those with a `plugin.yaml`) directly in `directory`, sorted.
    public static func pluginDirectories(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().map { "\(directory)/\($0)" }.filter { FileManager.default.fileExists(atPath: "\($0)/plugin.yaml") }
    }

    /// The executable's path: as given when absolute; a bare name beside the running `genflow`
    /// (so a plugin built or installed with it is found in a source tree, debug or release, and
    /// wherever Genflow is installed), else on PATH; anything else relative to the plugin's folder.
    var executable: String {
        guard let first = command.first else { return "" }
        if first.hasPrefix("/") { return first }
        if !first.contains("/") {
            let beside = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
            let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
            for directory in [beside] + path {
                let candidate = "\(directory)/\(first)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return "\(directory)/\(first)"
    }
}

extension PluginManifest {
    /// The JSON Schema of `plugin.yaml`, for editors (`genflow schema plugin`).
    public static var editorSchema: JSON {
        let name: JSON = ["type": "string", "pattern": "^[a-z][a-z0-9_-]*$"]
        return [
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Genflow plugin manifest (plugin.yaml)",
            "type": "object", "additionalProperties": false,
            "required": ["name", "version", "protocol", "command", "stages"],
            "properties": [
                "name": name,
                "version": ["type": "string", "description": "The plugin's own version."],
                "protocol": ["const": .string(protocolName)],
                "command": [
                    "type": "array", "minItems": 1, "items": ["type": "string"],
                    "description": "Executable and arguments, started without a shell in the plugin's folder; a relative executable is relative to that folder, a bare name is looked up on PATH.",
                ],
                "instances": ["type": "integer", "minimum": 1, "maximum": 64, "default": 1],
                "stages": [
                    "type": "array", "minItems": 1,
                    "items": [
                        "type": "object", "additionalProperties": false, "required": ["name"],
                        "properties": [
                            "name": ["type": "string", "pattern": "^[a-z][a-z0-9_-]*(\\.[a-z][a-z0-9_-]*)+$"],
                            "description": ["type": "string"],
                            "config": ["type": "object", "description": "JSON Schema (subset) of the step's with: block."],
                        ],
                    ],
                ],
            ],
        ]
    }
}
