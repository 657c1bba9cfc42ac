public import GenflowCore
internal import GenflowYAML
public import GenflowStages
internal import Foundation

/// A pipeline test file (`pipelines/tests/<name>.test.yaml`): the pipeline it tests and its cases.
public struct PipelineTestFile: Sendable {
    public var file: String
    /// The pipeline file, resolved against the test file's folder.
    public var pipelineFile: String
    public var cases: [PipelineTestCase]

    public init(file: String, pipelineFile: String, cases: [PipelineTestCase]) {
        self.file = file
        self.pipelineFile = pipelineFile
        self.cases = cases
    }

    static let topKeys = ["pipeline", "cases"]
    static let caseKeys = ["name", "input", "user", "balance", "replies", "replies_from", "expect"]
    static let expectKeys = ["status", "error", "steps", "outputs", "canvas", "events", "debited"]
    static let stepKeys = ["status", "attempts", "delays", "output"]

    /// Whether `name` is a test file's name.
    public static func isTestFileName(_ name: String) -> Bool { name.hasSuffix(".test.yaml") || name.hasSuffix(".test.yml") }

    /// The test files `paths` name: files as given, folders searched (not below their first level).
    public static func files(in paths: [String]) -> [String] {
        paths.flatMap { path -> [String] in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return [path] }
            let folder = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            let here = names.filter(isTestFileName).map { "\(folder)/\($0)" }
            // `genflow test pipelines/` finds pipelines/tests/*.test.yaml.
            let nested = names.contains("tests") ? files(in: ["\(folder)/tests"]) : []
            return (here + nested).sorted()
        }
    }

    /// Reads and checks a test file; every problem is reported with its `file:line:col`.
    public static func load(_ path: String) throws(DiagnosticsError) -> PipelineTestFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DiagnosticsError([Diagnostic(at: SourceLocation(file: path, line: 1, column: 1), "cannot read the test file")])
        }
        let root: YAMLNode
        do {
            root = try YAMLParser.parse(bytes: [UInt8](data), file: path)
        } catch {
            throw DiagnosticsError([error])
        }
        var reader = NodeReader()
        var test = PipelineTestFile(file: path, pipelineFile: "", cases: [])
        let folder = (path as NSString).deletingLastPathComponent
        if let top = reader.mapping(root, "a pipeline test file", allowedKeys: topKeys, required: topKeys) {
            if let node = top["pipeline"]?.value, let name = reader.string(node, "pipeline") {
                test.pipelineFile = name.hasPrefix("/") ? name : ((folder.isEmpty ? "." : folder) as NSString).appendingPathComponent(name)
                if !FileManager.default.fileExists(atPath: test.pipelineFile) {
                    reader.error(at: node.location, "pipeline file '\(name)' not found (looked for \(test.pipelineFile))")
                }
            }
            if let node = top["cases"]?.value, let list = reader.list(node, "cases") {
                if list.isEmpty { reader.error(at: node.location, "'cases' is empty: a test file needs at least one case") }
                var names: Set<String> = []
                for item in list {
                    guard let testCase = readCase(item, folder: folder, reader: &reader) else { continue }
                    if !names.insert(testCase.name).inserted { reader.error(at: item.location, "a second case named '\(testCase.name)'") }
                    test.cases.append(testCase)
                }
            }
        }
        reader.sortByLocation()
        guard reader.diagnostics.isEmpty else { throw DiagnosticsError(reader.diagnostics) }
        return test
    }

    private static func readCase(_ node: YAMLNode, folder: String, reader: inout NodeReader) -> PipelineTestCase? {
        guard let entries = reader.mapping(node, "a test case", allowedKeys: caseKeys, required: ["name", "expect"]),
              let nameNode = entries["name"]?.value, let name = reader.string(nameNode, "name") else { return nil }
        var testCase = PipelineTestCase(name: name, location: node.location)
        if let input = entries["input"]?.value {
            if case .object = input.json { testCase.input = input.json } else { reader.error(at: input.location, "'input' must be a mapping, not \(input.kindDescription)") }
        }
        if let user = entries["user"]?.value { testCase.user = reader.string(user, "user") ?? testCase.user }
        if let balance = entries["balance"]?.value { testCase.balance = reader.int(balance, "balance", in: 0...1_000_000_000) ?? testCase.balance }
        if let from = entries["replies_from"]?.value, let file = reader.string(from, "replies_from") {
            let path = file.hasPrefix("/") ? file : ((folder.isEmpty ? "." : folder) as NSString).appendingPathComponent(file)
            switch RecordedReplies.load(path) {
            case .success(let replies): testCase.replies = replies
            case .failure(let problem): reader.error(at: from.location, problem.description)
            }
        }
        if let node = entries["replies"]?.value, let steps = node.mapping {
            for pair in steps {
                guard let step = pair.key.keyText else { continue }
                let items = pair.value.sequence ?? [pair.value]
                var replies: [ScriptedReply] = []
                for item in items {
                    do {
                        replies.append(try ScriptedReply.parse(item.json))
                    } catch {
                        reader.error(at: item.location, "replies for step '\(step)': \(error.description)")
                    }
                }
                testCase.replies[step] = replies
            }
        } else if let node = entries["replies"]?.value {
            reader.error(at: node.location, "'replies' must map step ids to lists of replies, not \(node.kindDescription)")
        }
        if let node = entries["expect"]?.value { testCase.expectations = readExpectations(node, reader: &reader) }
        return testCase
    }

    private static func readExpectations(_ node: YAMLNode, reader: inout NodeReader) -> [Expectation] {
        guard let entries = reader.mapping(node, "expect", allowedKeys: expectKeys) else { return [] }
        var checks: [Expectation] = []
        func add(_ check: Expectation.Check, _ at: YAMLNode) { checks.append(Expectation(check: check, location: at.location)) }
        if let value = entries["status"]?.value, let status = reader.string(value, "status") {
            let statuses = ["completed", "failed", "cancelled"]
            if statuses.contains(status) { add(.status(status), value) } else {
                reader.error(at: value.location, "status '\(status)' is not an end state (\(statuses.joined(separator: ", ")))\(Suggestions.didYouMean(status, in: statuses))")
            }
        }
        if let value = entries["error"]?.value { add(.error(value.json), value) }
        if let value = entries["debited"]?.value, let amount = reader.int(value, "debited", in: 0...1_000_000_000) { add(.debited(amount), value) }
        if let value = entries["events"]?.value, let types = reader.stringList(value, "events") { add(.events(types.map(\.0)), value) }
        if let value = entries["outputs"]?.value, let pairs = value.mapping {
            for pair in pairs {
                guard let pointer = pair.key.keyText else { continue }
                guard pointer.hasPrefix("/") else {
                    reader.error(at: pair.key.location, "keys of 'outputs' are JSON pointers into the job's result, such as /objects/objects/0/type")
                    continue
                }
                add(.result(pointer: pointer, value: pair.value.json), pair.value)
            }
        }
        if let value = entries["canvas"]?.value, let canvas = reader.mapping(value, "canvas", allowedKeys: ["count", "types"]) {
            if let count = canvas["count"]?.value, let number = reader.int(count, "count", in: 0...10_000) { add(.canvasCount(number), count) }
            if let types = canvas["types"]?.value, let list = reader.stringList(types, "types") { add(.canvasTypes(list.map(\.0)), types) }
        }
        if let value = entries["steps"]?.value, let pairs = value.mapping {
            for pair in pairs {
                guard let step = pair.key.keyText, let fields = pair.value.mapping else {
                    reader.error(at: pair.value.location, "each entry of 'steps' maps a step id to what to expect of it")
                    continue
                }
                for field in fields {
                    guard let key = field.key.keyText else { continue }
                    switch key {
                    case "status":
                        if let status = reader.string(field.value, "status") { add(.stepStatus(step: step, status), field.value) }
                    case "attempts":
                        if let count = reader.int(field.value, "attempts", in: 0...1_000) { add(.attempts(step: step, count), field.value) }
                    case "delays":
                        if let list = reader.list(field.value, "delays") {
                            let delays = list.compactMap { reader.duration($0, "a retry delay", in: .zero...Duration.seconds(86_400)) }
                            if delays.count == list.count { add(.delays(step: step, delays), field.value) }
                        }
                    case "output":
                        add(.output(step: step, pointer: "", value: field.value.json), field.value)
                    case let pointer where pointer.hasPrefix("/"):
                        add(.output(step: step, pointer: pointer, value: field.value.json), field.value)
                    default:
                        reader.error(at: field.key.location, "unknown key '\(key)' for step '\(step)'\(Suggestions.didYouMean(key, in: stepKeys)) (\(stepKeys.joined(separator: ", ")), or a JSON pointer into its output)")
                    }
                }
            }
        }
        if checks.isEmpty { reader.error(at: node.location, "'expect' checks nothing") }
        return checks
    }
}

/// One case: a job's input, the replies its steps get, and what must come out.
public struct PipelineTestCase: Sendable {
    public var name: String
    public var location: SourceLocation
    public var input: JSON = [:]
    public var user = "test"
    /// Tokens credited to the user before the job.
    public var balance = 1_000
    public var replies: [String: [ScriptedReply]] = [:]
    public var expectations: [Expectation] = []

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

/// One thing a case expects, where the test file says it.
public struct Expectation: Sendable {
    public enum Check: Sendable {
        case status(String)
        /// A subset of the job's `error` ({class, message, step}).
        case error(JSON)
        case stepStatus(step: String, String)
        case attempts(step: String, Int)
        /// The retry delays the policy computed for the step, in order.
        case delays(step: String, [Duration])
        /// A subset of the step's output at the pointer (`""`: the whole output).
        case output(step: String, pointer: String, value: JSON)
        /// A subset of the job's result at the pointer.
        case result(pointer: String, value: JSON)
        case canvasCount(Int)
        case canvasTypes([String])
        /// Event types that must appear in this order (others may come between).
        case events([String])
        case debited(Int)
    }

    public var check: Check
    public var location: SourceLocation
}

/// Replies `genflow submit --record` wrote: `{"pipeline", "job_id", "replies": {step: [reply…]}}`.
public enum RecordedReplies {
    public static func load(_ path: String) -> Result<[String: [ScriptedReply]], Diagnostic> {
        let location = SourceLocation(file: path, line: 1, column: 1)
        guard let data = FileManager.default.contents(atPath: path), let document = try? JSON(parsing: data) else {
            return .failure(Diagnostic(at: location, "cannot read recorded replies from \(path) (a JSON file `genflow submit --record` writes)"))
        }
        guard let steps = document["replies"]?.objectValue else { return .failure(Diagnostic(at: location, "\(path) has no 'replies' object")) }
        var replies: [String: [ScriptedReply]] = [:]
        for (step, list) in steps {
            do {
                replies[step] = try (list.arrayValue ?? [list]).map { reply throws(ScriptedReply.Invalid) in try ScriptedReply.parse(reply) }
            } catch {
                return .failure(Diagnostic(at: location, "\(path): step '\(step)': \(error.description)"))
            }
        }
        return .success(replies)
    }

    /// The document `load` reads.
    public static func document(pipeline: String, jobID: String, replies: [String: [ScriptedReply]]) -> JSON {
        ["pipeline": .string(pipeline), "job_id": .string(jobID), "replies": .object(replies.mapValues { .array($0.map(\.json)) })]
    }
}
