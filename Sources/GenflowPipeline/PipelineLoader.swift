public import GenflowCore
internal import GenflowYAML
internal import Crypto
internal import Foundation

/// Reads pipeline files and validates them like a compiler: every problem in a file is reported,
/// each with `file:line:col`, and a file with any error yields no pipeline.
public struct PipelineLoader: Sendable {
    public var registry: StageRegistry

    public init(registry: StageRegistry) {
        self.registry = registry
    }

    static let topKeys = ["name", "description", "input", "defaults", "steps"]
    static let stepKeys = [
        "id", "stage", "description", "needs", "for_each", "max_parallel", "with", "retry", "timeout", "deadline", "on_invalid", "continue_on_error",
    ]
    static let defaultsKeys = ["retry", "timeout", "deadline"]
    static let retryKeys = ["max_attempts", "initial_interval", "backoff", "max_interval", "jitter", "non_retryable"]
    static let referenceRoots = ["input", "steps", "job"]
    /// References that only a `for_each` step has.
    static let itemRoots = ["item", "index"]
    static let jobFields = ["id", "user_id", "pipeline"]

    /// Loads the pipeline in `file`.
    public func load(file: String) throws(DiagnosticsError) -> Pipeline {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw DiagnosticsError([Diagnostic(at: SourceLocation(file: file, line: 1, column: 1), "cannot read file: \(Self.describeReadError(file))")])
        }
        return try load(bytes: Array(data), file: file)
    }

    static func describeReadError(_ file: String) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "it is a directory" }
        return "permission denied"
    }

    /// Loads every pipeline file in `directory` (`*.yaml`, `*.yml`; not recursive). A name used by two
    /// files is an error in the second; a file that fails keeps none of its pipeline.
    public func load(directory: String) -> (pipelines: [Pipeline], failures: [DiagnosticsError]) {
        load(files: Self.pipelineFiles(in: directory))
    }

    /// Whether a file name is a pipeline's: `*.yaml` or `*.yml`, but not a plugin manifest
    /// (`plugin.yaml`) or a pipeline test (`*.test.yaml`).
    public static func isPipelineFileName(_ name: String) -> Bool {
        (name.hasSuffix(".yaml") || name.hasSuffix(".yml")) && name != "plugin.yaml" && !name.hasSuffix(".test.yaml")
    }

    /// The pipeline files directly in `directory`, sorted.
    public static func pipelineFiles(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter(isPipelineFileName).sorted().map { directory.hasSuffix("/") ? directory + $0 : directory + "/" + $0 }
    }

    /// Loads `files`, checking that pipeline names are unique across them.
    public func load(files: [String]) -> (pipelines: [Pipeline], failures: [DiagnosticsError]) {
        var pipelines: [Pipeline] = []
        var failures: [DiagnosticsError] = []
        for file in files {
            do {
                let pipeline = try load(file: file)
                if let first = pipelines.first(where: { $0.name == pipeline.name }) {
                    failures.append(DiagnosticsError([Diagnostic(at: pipeline.nameLocation, "pipeline '\(pipeline.name)' is already defined in \(first.nameLocation)")]))
                } else {
                    pipelines.append(pipeline)
                }
            } catch {
                failures.append(error)
            }
        }
        return (pipelines, failures)
    }

    /// Validates and builds the pipeline written in `source`; `file` is the name used in diagnostics.
    public func load(source: String, file: String) throws(DiagnosticsError) -> Pipeline {
        try load(bytes: Array(source.utf8), file: file)
    }

    private func load(bytes: [UInt8], file: String) throws(DiagnosticsError) -> Pipeline {
        let root: YAMLNode
        do {
            root = try YAMLParser.parse(bytes: bytes, file: file)
        } catch {
            throw DiagnosticsError([error])
        }
        var reader = NodeReader()
        let pipeline = build(root, file: file, reader: &reader)
        reader.sortByLocation()
        if !reader.diagnostics.isEmpty || pipeline == nil {
            throw DiagnosticsError(reader.diagnostics)
        }
        return pipeline!
    }

    private func build(_ root: YAMLNode, file: String, reader: inout NodeReader) -> Pipeline? {
        guard let top = reader.mapping(root, "a pipeline", allowedKeys: Self.topKeys, required: ["name", "steps"]) else { return nil }
        var name = ""
        if let node = top["name"]?.value, let text = reader.string(node, "name") {
            if text.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || "-_.".contains($0)) }), text.first?.isLetter == true {
                name = text
            } else {
                reader.error(at: node.location, "pipeline name '\(text)' must start with a lowercase letter and use only a-z, 0-9, '-', '_' and '.'")
            }
        }
        let description = top["description"].flatMap { reader.string($0.value, "description", allowEmpty: true) } ?? ""
        var input = JSONSchema.freeObject()
        if let node = top["input"]?.value {
            input = JSONSchema.read(node, "input", impliedType: "object", reader: &reader) ?? input
            if input.types != ["object"] {
                reader.error(at: node.location, "input must describe an object (type: object), not \(input.types.joined(separator: " or "))")
            }
        }
        var defaults = RetrySettings()
        if let node = top["defaults"]?.value, let entries = reader.mapping(node, "defaults", allowedKeys: Self.defaultsKeys) {
            defaults = readRetry(entries, reader: &reader)
            checkIntervals(RetrySettings.resolve([defaults]), at: entries["retry"]?.value.location ?? node.location, of: "defaults", reader: &reader)
        }
        var steps: [PipelineStep] = []
        var graph: StepGraph?
        if let node = top["steps"]?.value, let elements = reader.list(node, "steps") {
            if elements.isEmpty { reader.error(at: node.location, "a pipeline needs at least one step") }
            let ids = stepIDs(elements, reader: &reader)
            let needs = stepNeeds(elements, ids: ids, reader: &reader)
            graph = StepGraph(ids: ids.compactMap { $0 }, needs: needs)
            let order = Order(ids: ids, graph: graph)
            for (index, element) in elements.enumerated() {
                if let step = buildStep(element, index: index, order: order, needs: ids[index].flatMap { needs[$0] } ?? [], input: input, defaults: defaults, reader: &reader) {
                    steps.append(step)
                }
            }
        }
        let canonical = root.json
        let version = SHA256.hash(data: canonical.canonicalData).map { String(format: "%02x", $0) }.joined()
        guard let graph else { return nil }
        return Pipeline(
            name: name, description: description, file: file, nameLocation: top["name"]?.value.location ?? root.location, input: input, steps: steps,
            graph: graph, version: version, canonical: canonical)
    }

    /// The steps' ids (file order, nil where malformed) and, once the needs form no cycle, the graph.
    struct Order {
        var ids: [String?]
        var graph: StepGraph?
    }

    /// Each step's needs: as written (`needs: [a, b]` or `needs: a`), else the step above it.
    /// Reports unknown and repeated ids, a step that needs itself, and a cycle (with its path).
    private func stepNeeds(_ elements: [YAMLNode], ids: [String?], reader: inout NodeReader) -> [String: [String]] {
        var needs: [String: [String]] = [:]
        var locations: [String: SourceLocation] = [:]
        let known = ids.compactMap { $0 }
        for (index, element) in elements.enumerated() {
            guard let id = ids[index] else { continue }
            guard let node = element["needs"] else {
                needs[id] = index > 0 ? ids[index - 1].map { [$0] } ?? [] : []
                continue
            }
            locations[id] = node.location
            let written: [(String, YAMLNode)]
            if node.scalar != nil, let one = reader.string(node, "needs") {
                written = [(one, node)]
            } else {
                written = reader.stringList(node, "needs") ?? []
            }
            var list: [String] = []
            for (need, needNode) in written {
                if need == id {
                    reader.error(at: needNode.location, "step '\(id)' cannot need itself")
                } else if !known.contains(need) {
                    reader.error(at: needNode.location, "unknown step '\(need)' in needs\(Suggestions.didYouMean(need, in: known)) (steps: \(known.joined(separator: ", ")))")
                } else if list.contains(need) {
                    reader.error(at: needNode.location, "step '\(need)' is named twice in needs")
                } else {
                    list.append(need)
                }
            }
            needs[id] = list
        }
        if let cycle = StepGraph.cycle(ids: known, needs: needs) {
            let at = locations[cycle[0]] ?? locations.values.first ?? elements[0].location
            reader.error(at: at, "the steps' needs form a cycle: \(cycle.joined(separator: " needs ")); no step of it could ever run")
        }
        return needs
    }

    /// The ids of all steps in order (nil where missing or malformed), reporting malformed and duplicate ids.
    private func stepIDs(_ elements: [YAMLNode], reader: inout NodeReader) -> [String?] {
        var firstSeen: [String: SourceLocation] = [:]
        return elements.map { element in
            guard let node = element["id"], case .string(let id) = node.json else { return nil }
            guard let first = id.first, first.isLetter || first == "_",
                  id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
                reader.error(at: node.location, "step id '\(id)' must start with a letter or '_' and use only ASCII letters, digits, '_' and '-'")
                return nil
            }
            if let seen = firstSeen[id] {
                reader.error(at: node.location, "duplicate step id '\(id)' (first used at line \(seen.line), column \(seen.column))")
                return nil
            }
            firstSeen[id] = node.location
            return id
        }
    }

    private func buildStep(
        _ node: YAMLNode, index: Int, order: Order, needs: [String], input: JSONSchema, defaults: RetrySettings, reader: inout NodeReader
    ) -> PipelineStep? {
        guard let entries = reader.mapping(node, "a step", allowedKeys: Self.stepKeys, required: ["id", "stage"]) else { return nil }
        if let idNode = entries["id"]?.value { _ = reader.string(idNode, "id") }
        if let descriptionNode = entries["description"]?.value { _ = reader.string(descriptionNode, "description", allowEmpty: true) }
        let id = order.ids[index]
        let scope = ReferenceScope(stepIndex: index, order: order, hasItems: entries["for_each"] != nil)
        let label = id.map { "step '\($0)'" } ?? "step \(index + 1)"
        var stage: (any Stage)?
        if let stageNode = entries["stage"]?.value, let name = reader.string(stageNode, "stage") {
            stage = registry.stage(named: name)
            if stage == nil {
                reader.error(at: stageNode.location, "unknown stage '\(name)'\(Suggestions.didYouMean(name, in: registry.names)) (`genflow stages` lists them)")
            }
        }
        var withNode = entries["with"]?.value ?? YAMLNode(.mapping([]), at: entries["stage"]?.key.location ?? node.location)
        if withNode.isNull { withNode.content = .mapping([]) }  // `with:` left empty means no settings
        let config = withNode.json
        if withNode.mapping == nil {
            reader.error(at: withNode.location, "'with' of \(label) must be a mapping, not \(withNode.kindDescription)")
        } else if let stage {
            reader.append(stage.descriptor.config.diagnostics(for: withNode, allowTemplates: true, context: "'with' of \(label)"))
        }
        checkReferences(in: withNode, scope: scope, input: input, reader: &reader)
        var forEach: ForEach?
        if let itemsNode = entries["for_each"]?.value {
            checkReferences(in: itemsNode, scope: scope, input: input, reader: &reader)
            if itemsNode.mapping != nil || itemsNode.isNull {
                reader.error(at: itemsNode.location, "'for_each' of \(label) must be a list, a number or a '{{reference}}' to one, not \(itemsNode.kindDescription)")
            } else if case .string(let text) = itemsNode.json, !TemplateScanner.isTemplate(text) {
                reader.error(at: itemsNode.location, "'for_each' of \(label) must be a list, a number or a '{{reference}}' to one, not the text '\(text)'")
            } else if let items = try? ValueTemplate.compile(itemsNode.json) {
                let maxParallel = entries["max_parallel"].flatMap { reader.int($0.value, "max_parallel", in: ForEach.maxParallelRange) }
                forEach = ForEach(items: items, maxParallel: maxParallel ?? ForEach.defaultMaxParallel)
            }
        } else if let maxNode = entries["max_parallel"] {
            reader.error(at: maxNode.key.location, "'max_parallel' of \(label) only applies to a step with 'for_each'")
        }
        let continueOnError = entries["continue_on_error"].flatMap { reader.bool($0.value, "continue_on_error") } ?? false
        // Malformed tags were reported by checkReferences with their position.
        let template = try? ValueTemplate.compile(config)
        let settings = readRetry(entries, reader: &reader)
        var onInvalid: OnInvalid?
        if let node = entries["on_invalid"]?.value,
           let fields = reader.mapping(node, "on_invalid", allowedKeys: ["retry_step", "max"], required: ["retry_step"]) {
            let max = fields["max"].flatMap { reader.int($0.value, "max", in: OnInvalid.maxRange) } ?? 1
            if let targetNode = fields["retry_step"]?.value, let target = reader.string(targetNode, "retry_step"),
               checkStepReference(target, at: targetNode.location, scope: scope, reader: &reader) {
                onInvalid = OnInvalid(retryStep: target, max: max)
            }
        }
        let policy = RetrySettings.resolve([settings, defaults, stage?.descriptor.retryDefaults ?? RetrySettings()])
        if settings.initialInterval != nil || settings.maxInterval != nil {
            checkIntervals(policy, at: entries["retry"]?.value.location ?? node.location, of: label, reader: &reader)
        }
        guard let id, let stage, let template else { return nil }
        return PipelineStep(
            id: id, stage: stage.name, config: config, template: template, retry: policy, onInvalid: onInvalid,
            needs: needs, forEach: forEach, continueOnError: continueOnError, location: node.location
        )
    }

    private func checkIntervals(_ policy: RetryPolicy, at location: SourceLocation, of label: String, reader: inout NodeReader) {
        guard policy.maxInterval < policy.initialInterval else { return }
        reader.error(at: location, "max_interval (\(DurationText.format(policy.maxInterval))) of \(label) is shorter than its initial_interval (\(DurationText.format(policy.initialInterval)))")
    }

    /// Reads `retry:`, `timeout:` and `deadline:` from a step or from `defaults:`.
    private func readRetry(_ entries: [String: YAMLPair], reader: inout NodeReader) -> RetrySettings {
        var settings = RetrySettings()
        let intervals = RetryPolicy.Limits.interval
        if let node = entries["timeout"]?.value { settings.timeout = reader.duration(node, "timeout", in: intervals) }
        if let node = entries["deadline"]?.value { settings.deadline = reader.duration(node, "deadline", in: intervals) }
        guard let node = entries["retry"]?.value, let retry = reader.mapping(node, "retry", allowedKeys: Self.retryKeys) else {
            return settings
        }
        if let node = retry["max_attempts"]?.value { settings.maxAttempts = reader.int(node, "max_attempts", in: RetryPolicy.Limits.maxAttempts) }
        if let node = retry["initial_interval"]?.value { settings.initialInterval = reader.duration(node, "initial_interval", in: intervals) }
        if let node = retry["max_interval"]?.value { settings.maxInterval = reader.duration(node, "max_interval", in: intervals) }
        if let node = retry["backoff"]?.value { settings.backoff = reader.double(node, "backoff", in: RetryPolicy.Limits.backoff) }
        if let node = retry["jitter"]?.value { settings.jitter = reader.double(node, "jitter", in: RetryPolicy.Limits.jitter) }
        if let node = retry["non_retryable"]?.value, let names = reader.stringList(node, "non_retryable") {
            var classes = Set<ErrorClass>()
            for (name, nameNode) in names {
                let errorClass = ErrorClass(rawValue: name)
                if ErrorClass.known.contains(errorClass) {
                    classes.insert(errorClass)
                } else {
                    reader.error(at: nameNode.location, "unknown error class '\(name)'\(Suggestions.didYouMean(name, in: ErrorClass.known.map(\.rawValue))) (classes: \(ErrorClass.known.map(\.rawValue).joined(separator: ", ")))")
                }
            }
            settings.nonRetryable = classes
        }
        return settings
    }

    // MARK: References

    static let problemsShownPerValue = 10

    /// Where a reference is written: which step, and what it may see.
    struct ReferenceScope {
        var stepIndex: Int
        var order: Order
        /// The step has `for_each`: `{{item}}` and `{{index}}` mean something.
        var hasItems: Bool
    }

    /// Checks every `{{…}}` tag in the scalars under `node`.
    private func checkReferences(in node: YAMLNode, scope: ReferenceScope, input: JSONSchema, reader: inout NodeReader) {
        switch node.content {
        case .mapping(let pairs):
            for pair in pairs { checkReferences(in: pair.value, scope: scope, input: input, reader: &reader) }
        case .sequence(let elements):
            for element in elements { checkReferences(in: element, scope: scope, input: input, reader: &reader) }
        case .scalar(let scalar):
            guard TemplateScanner.isTemplate(scalar.text) else { return }
            let tags: [TemplateScanner.Tag]
            do {
                tags = try TemplateScanner.tags(in: scalar.text)
            } catch {
                reader.error(at: node.location(ofOffset: error.offset), error.message)
                return
            }
            // The first few problems of one value, then a count: a value of ten thousand bad tags
            // is one mistake repeated, and placing each costs a scan of the text.
            let problems = tags.lazy.filter { $0.kind != .sectionEnd }.compactMap { tag in
                problem(with: tag, scope: scope, input: input).map { (tag, $0) }
            }
            for (index, (tag, message)) in problems.enumerated() {
                guard index < Self.problemsShownPerValue else {
                    let more = problems.count - Self.problemsShownPerValue
                    reader.error(at: node.location(ofOffset: tag.offset), "… and \(more) more \(more == 1 ? "problem" : "problems") with references in this value, from here")
                    break
                }
                reader.error(at: node.location(ofOffset: tag.offset), message)
            }
        }
    }

    /// What is wrong with the reference in `tag`, if anything.
    private func problem(with tag: TemplateScanner.Tag, scope: ReferenceScope, input: JSONSchema) -> String? {
        if tag.name == "." {
            return tag.depth > 0 ? nil : "'{{.}}' only means something inside a section ({{#list}}…{{/list}})"
        }
        let parts = tag.name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        switch parts[0] {
        case "input":
            guard parts.count > 1 else { return nil }
            if input.property(parts[1]) == nil && !input.additionalProperties {
                let names = input.properties.map(\.name)
                return "unknown input '\(parts[1])' in '{{\(tag.name)}}'\(Suggestions.didYouMean(parts[1], in: names)) (inputs: \(names.joined(separator: ", ")))"
            }
            return nil
        case "steps":
            guard parts.count > 1 else { return "'{{steps}}' needs a step: write '{{steps.<id>.output}}'" }
            if let message = stepProblem(parts[1], scope: scope, in: "'{{\(tag.name)}}'") { return message }
            guard parts.count > 2, parts[2] == "output" else {
                return "'{{\(tag.name)}}' must go through the step's output: write '{{steps.\(parts[1]).output…}}'"
            }
            return nil
        case "job":
            guard parts.count == 2, Self.jobFields.contains(parts[1]) else {
                return "unknown job field in '{{\(tag.name)}}' (job fields: \(Self.jobFields.map { "job.\($0)" }.joined(separator: ", ")))"
            }
            return nil
        case "item", "index":
            guard scope.hasItems else {
                return "'{{\(tag.name)}}' only means something in a step with for_each (it is the item that step runs for)"
            }
            return parts[0] == "index" && parts.count > 1 ? "'{{\(tag.name)}}': the index is a number, it has no fields" : nil
        case "env":
            return "'{{\(tag.name)}}': environment variables are not available to pipelines; secrets belong in the daemon config"
        default:
            if tag.depth > 0 { return nil }
            let roots = Self.referenceRoots + (scope.hasItems ? Self.itemRoots : [])
            return "unknown reference '{{\(tag.name)}}'\(Suggestions.didYouMean(parts[0], in: roots).replacingOccurrences(of: "'?", with: ".…'?")) (references start with input., steps.<id>.output or job.\(scope.hasItems ? ", or are item or index" : ""))"
        }
    }

    /// Checks that `target` names a step upstream of the step in `scope`; reports otherwise.
    private func checkStepReference(_ target: String, at location: SourceLocation, scope: ReferenceScope, reader: inout NodeReader) -> Bool {
        if scope.order.ids.firstIndex(of: target) == scope.stepIndex {
            reader.error(at: location, "on_invalid.retry_step '\(target)' is this step; name an earlier step to run again")
            return false
        }
        guard let message = stepProblem(target, scope: scope, in: "'\(target)'") else { return true }
        reader.error(at: location, message)
        return false
    }

    /// What is wrong with naming step `target` from the step in `scope`: it must be upstream of it
    /// (needed by it, directly or through others), so that its output exists when this step runs.
    private func stepProblem(_ target: String, scope: ReferenceScope, in context: String) -> String? {
        let ids = scope.order.ids
        let graph = scope.order.graph
        let id = ids[scope.stepIndex]
        // With a cycle (reported on its own) nothing is known to be upstream.
        let upstream = graph.flatMap { graph in id.flatMap { graph.upstream[$0] } }
        let listed = ids.compactMap { $0 }.filter { upstream?.contains($0) == true }
        let around = listed.isEmpty ? "no step runs before this one" : "upstream of this step: \(listed.joined(separator: ", "))"
        guard let position = ids.firstIndex(of: target) else {
            return "unknown step '\(target)' in \(context)\(Suggestions.didYouMean(target, in: ids.compactMap { $0 })) (\(around))"
        }
        if position == scope.stepIndex { return "\(context): a step cannot use its own output" }
        guard let graph, let id, let upstream, !upstream.contains(target) else { return nil }
        if graph.upstream[target]?.contains(id) == true {
            return "\(context): step '\(target)' runs after this step (it needs this one); only upstream steps' outputs are available"
        }
        return "\(context): step '\(target)' is not upstream of this step, so its output may not exist when this step runs; add it to needs (\(around))"
    }
}
