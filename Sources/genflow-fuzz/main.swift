internal import GenflowCore

// genflow-fuzz [yaml|canvas|all] [--count N] [--seed S] [--crash-dir DIR] [--replay FILE]
//
// Property-based fuzzing of what reads untrusted text: the YAML loader with pipeline validation and
// the daemon config (`yaml`), and the canvas-object parser (`canvas`). Inputs are generated from a
// seed (`--seed`, default 1; the same seed gives the same inputs): the shipped files under
// `pipelines/` and `etc/` (read from the current directory) and handwritten replies, mutated byte
// by byte and token by token, plus documents and replies made from small grammars and pathological
// ones (deep nesting, alias bombs, very long strings).
//
// Every input must finish within 2 s without crashing; every rejection must carry a clear error
// (diagnostics with a message and a position inside the input, or `output_invalid` with a reason);
// and one input in 100 is run twice and must give the same outcome. Inputs run in a worker process:
// before it runs, each input is written to `<crash-dir>/current-<target>.bin` (default
// `.build/fuzz-crashes`), so when the worker crashes, or hangs for 30 s, that file holds the input
// that did it; it is kept as `crash-<target>-<index>.bin` and a new worker goes on after it. Two
// runs at once need different crash directories. `--replay FILE` runs one target on a saved input
// alone, in this process (it touches no current-input file), and says what it did.
//
// Prints one JSON line per target on stdout: inputs, accepted, rejected, violations, crashes, the
// slowest input, seconds, distinct rejection messages (quoted text and numbers masked) and three
// examples. Violations are described on stderr, their inputs saved as `<crash-dir>/violation-*.bin`.
// Exit status 1 when any property was violated, 2 for bad arguments.
import Foundation

/// The command line, parsed. `--worker`, `--start` and `--describe` are for the worker processes
/// the supervisor starts.
struct Options {
    var targets = ["yaml", "canvas"]
    var count = 100_000
    var seed: UInt64 = 1
    var crashDirectory = ".build/fuzz-crashes"
    /// A saved input to run alone (`--replay`).
    var replayFile: String?
    var isWorker = false
    /// The first input a worker runs.
    var start = 0
    /// How many violations a worker describes on stderr.
    var describing = Supervisor.describedViolations

    static let usage = "usage: genflow-fuzz [yaml|canvas|all] [--count N] [--seed S] [--crash-dir DIR] [--replay FILE]"

    init(_ arguments: ArraySlice<String>) {
        var arguments = arguments
        while let argument = arguments.popFirst() {
            switch argument {
            case "yaml", "canvas": targets = [argument]
            case "all": targets = ["yaml", "canvas"]
            case "--count": count = Self.number(arguments.popFirst(), for: argument)
            case "--seed": seed = UInt64(Self.number(arguments.popFirst(), for: argument))
            case "--crash-dir": crashDirectory = Self.value(arguments.popFirst(), for: argument)
            case "--replay": replayFile = Self.value(arguments.popFirst(), for: argument)
            case "--worker": isWorker = true
            case "--start": start = Self.number(arguments.popFirst(), for: argument)
            case "--describe": describing = Self.number(arguments.popFirst(), for: argument)
            case "-h", "--help":
                print(Self.usage)
                exit(0)
            default:
                Self.fail("unknown argument '\(argument)'")
            }
        }
        if (replayFile != nil || isWorker) && targets.count != 1 { Self.fail("--replay needs one target, yaml or canvas") }
    }

    private static func value(_ text: String?, for option: String) -> String {
        guard let text else { fail("\(option) needs a value") }
        return text
    }

    private static func number(_ text: String?, for option: String) -> Int {
        guard let number = Int(value(text, for: option)), number >= 0 else { fail("\(option) needs a whole number from 0") }
        return number
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("genflow-fuzz: \(message)\n\(usage)\n".utf8))
        exit(2)
    }
}

/// The YAML files to mutate: the shipped pipelines, their tests and the daemon config, when the
/// current directory is the repository.
func seedFiles() -> [String] {
    let directories = ["pipelines", "pipelines/tests"]
    let files = directories.flatMap { directory in
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted().filter { $0.hasSuffix(".yaml") }.map { "\(directory)/\($0)" }
    }
    if files.isEmpty {
        FileHandle.standardError.write(Data("genflow-fuzz: no pipelines/*.yaml here; the YAML seeds are the handwritten ones only\n".utf8))
    }
    return files + ["etc/genflow.yaml"].filter { FileManager.default.fileExists(atPath: $0) }
}

/// Runs `target` in this process over inputs `start..<count`, or on the replayed input alone,
/// passing each input's record to `record`. A replayed input is not copied to the current-input
/// file: its own file stands in for it.
func runInProcess(_ target: String, options: Options, record: (InputRecord) -> Void) {
    var replay: [UInt8]?
    var inputFile: CurrentInputFile?
    let inputPath: String
    if let path = options.replayFile {
        guard let data = FileManager.default.contents(atPath: path) else { Options.fail("cannot read \(path)") }
        replay = Array(data)
        inputPath = path
    } else {
        do {
            let file = try CurrentInputFile(directory: options.crashDirectory, target: target)
            inputFile = file
            inputPath = file.path
        } catch {
            Options.fail("cannot write to \(options.crashDirectory): \(error)")
        }
    }
    let watchdog = Watchdog(limit: .seconds(30))
    let range = options.start..<max(options.start, options.count)
    switch target {
    case "yaml":
        let yaml = YAMLTarget(inputFile: inputPath, seedFiles: seedFiles())
        Campaign(target: yaml, seed: options.seed, inputFile: inputFile, crashDirectory: options.crashDirectory, watchdog: watchdog)
            .run(range, replay: replay, describing: options.describing, record: record)
    default:
        Campaign(target: CanvasTarget(), seed: options.seed, inputFile: inputFile, crashDirectory: options.crashDirectory, watchdog: watchdog)
            .run(range, replay: replay, describing: options.describing, record: record)
    }
}

/// Prints a report as its JSON line on stdout.
func publish(_ report: Report) {
    FileHandle.standardOutput.write(Data((report.jsonLine + "\n").utf8))
}

let options = Options(CommandLine.arguments.dropFirst())
if options.isWorker {
    runInProcess(options.targets[0], options: options) { FileHandle.standardOutput.write(Data(($0.line + "\n").utf8)) }
    FileHandle.standardOutput.write(Data("done\n".utf8))
    exit(0)
}
if options.replayFile != nil {
    var report = Report(target: options.targets[0], seed: options.seed)
    runInProcess(options.targets[0], options: options) { report.record($0) }
    publish(report)
    exit(report.violations > 0 ? 1 : 0)
}
var violations = 0
for target in options.targets {
    let report = Supervisor(target: target, options: options).run()
    publish(report)
    violations += report.violations
}
exit(violations > 0 ? 1 : 0)
