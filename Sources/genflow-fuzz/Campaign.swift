import Foundation
import GenflowCore

/// Runs a target over generated inputs (or one replayed input) in this process: saves each input
/// before it runs, times it, runs a sample twice to check determinism, and hands on one record per
/// input.
struct Campaign<Target: FuzzTarget> {
    /// An input slower than this is a violation.
    static var timeLimit: Duration { .seconds(2) }
    /// One input in this many is run twice, and both outcomes must be equal.
    static var determinismInterval: Int { 100 }

    var target: Target
    var seed: UInt64
    /// Where each input is saved before it runs; nil when replaying a saved input.
    var inputFile: CurrentInputFile?
    var crashDirectory: String
    var watchdog: Watchdog

    /// Runs the inputs numbered `range`, or only `replay` when given, passing each one's record to
    /// `record`, and removes the current-input file at the end. The first `describing` violations
    /// are described on stderr with their input saved as `violation-<target>-<index>.bin`.
    func run(_ range: Range<Int>, replay: [UInt8]?, describing: Int, record: (InputRecord) -> Void) {
        var described = 0
        for index in replay == nil ? range : 0..<1 {
            var rng = SplitMix64(seed: seed, index: index)
            let input = replay.map(target.input(replaying:)) ?? target.makeInput(using: &rng)
            let bytes = target.bytes(of: input)
            inputFile?.write(bytes)
            watchdog.begin()
            let before = ContinuousClock.now
            var verdict = target.run(input)
            let elapsed = before.duration(to: .now)
            watchdog.end()
            if elapsed > Self.timeLimit {
                verdict.fail("took \(Int(elapsed.seconds * 1_000)) ms (limit \(Int(Self.timeLimit.seconds * 1_000)) ms)")
            }
            if index % Self.determinismInterval == 0 {
                watchdog.begin()
                let again = target.run(input)
                watchdog.end()
                if again.isAccepted != verdict.isAccepted || again.messages != verdict.messages || again.fingerprint != verdict.fingerprint {
                    verdict.fail("not deterministic: a second run gave \(Self.summary(again)) after \(Self.summary(verdict))")
                }
            }
            if !verdict.violations.isEmpty && described < describing {
                described += 1
                describe(verdict.violations, input: index, bytes: bytes)
            }
            if replay != nil {
                FileHandle.standardError.write(Data("genflow-fuzz: \(target.name): \(Self.summary(verdict))\n".utf8))
            }
            record(InputRecord(
                index: index, isAccepted: verdict.isAccepted, milliseconds: elapsed.seconds * 1_000, violations: verdict.violations.count,
                messages: verdict.messages))
        }
        inputFile?.remove()
    }

    /// Prints broken properties to stderr and saves the input as `violation-<target>-<index>.bin`.
    private func describe(_ violations: [String], input index: Int, bytes: [UInt8]) {
        let path = "\(crashDirectory)/violation-\(target.name)-\(index).bin"
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        var text = ""
        for violation in violations {
            text += "genflow-fuzz: \(target.name) input #\(index) (seed \(seed)): \(violation)\n"
        }
        let preview = JSON.string(String(decoding: bytes.prefix(300), as: UTF8.self)).description
        text += "  input: \(bytes.count) bytes in \(path), starting \(preview)\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// A verdict in a few words, for messages.
    private static func summary(_ verdict: Verdict) -> String {
        let outcome = verdict.isAccepted ? "accepted" : "rejected (\(verdict.messages.first.map { JSON.string(String($0.prefix(200))).description } ?? "no message"))"
        return "\(outcome) [\(verdict.fingerprint.joined(separator: " | ").prefix(400))]"
    }
}

/// What the tally needs of one input; a worker process sends it to the supervisor as one line of
/// tab-separated fields.
struct InputRecord {
    var index: Int
    var isAccepted: Bool
    var milliseconds: Double
    var violations: Int
    /// Rejection messages, each on one line (tabs and line breaks become spaces).
    var messages: [String]

    init(index: Int, isAccepted: Bool, milliseconds: Double, violations: Int, messages: [String]) {
        self.index = index
        self.isAccepted = isAccepted
        self.milliseconds = milliseconds
        self.violations = violations
        self.messages = messages.map { String($0.map { $0 == "\t" || $0.isNewline ? " " : $0 }) }
    }

    /// Reads a record back from `line`; nil when it is not one.
    init?(line: String) {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count >= 4, let index = Int(fields[0]), let milliseconds = Double(fields[2]), let violations = Int(fields[3]) else { return nil }
        self.init(index: index, isAccepted: fields[1] == "1", milliseconds: milliseconds, violations: violations, messages: fields.dropFirst(4).map(String.init))
    }

    /// `index`, accepted (1 or 0), milliseconds, violations, then the messages.
    var line: String {
        ([String(index), isAccepted ? "1" : "0", String(milliseconds), String(violations)] + messages).joined(separator: "\t")
    }
}

/// The tally of one target's inputs, printed as one JSON line on stdout.
struct Report {
    let target: String
    let seed: UInt64
    var inputs = 0
    var accepted = 0
    var rejected = 0
    var violations = 0
    /// Inputs a worker process died on (each also a violation).
    var crashes = 0
    var slowestMilliseconds = 0.0
    var slowestInput = 0
    var seconds = 0.0
    /// Rejection messages by shape (quoted text and numbers masked): how often seen, and the shortest.
    private var shapes: [String: (count: Int, example: String)] = [:]

    init(target: String, seed: UInt64) {
        self.target = target
        self.seed = seed
    }

    /// Counts one input.
    mutating func record(_ record: InputRecord) {
        inputs += 1
        if record.isAccepted { accepted += 1 } else { rejected += 1 }
        violations += record.violations
        if record.milliseconds > slowestMilliseconds {
            slowestMilliseconds = record.milliseconds
            slowestInput = record.index
        }
        for message in record.messages {
            let shape = Self.shape(of: message)
            let seen = shapes[shape] ?? (0, message)
            shapes[shape] = (seen.count + 1, message.count < seen.example.count ? message : seen.example)
        }
    }

    /// Counts an input that crashed its worker.
    mutating func recordCrash() {
        inputs += 1
        crashes += 1
        violations += 1
    }

    /// `{"target":…,"inputs":…,…}`, keys in a fixed order; the examples are the shortest messages
    /// of the three most frequent shapes.
    var jsonLine: String {
        let examples = shapes.sorted { ($0.value.count, $1.key) > ($1.value.count, $0.key) }.prefix(3).map {
            JSON.string(String($0.value.example.prefix(160)))
        }
        let fields: [(String, JSON)] = [
            ("target", .string(target)), ("inputs", .int(inputs)), ("accepted", .int(accepted)), ("rejected", .int(rejected)),
            ("violations", .int(violations)), ("crashes", .int(crashes)), ("slowest_ms", .double((slowestMilliseconds * 10).rounded() / 10)),
            ("slowest_input", .int(slowestInput)), ("seconds", .double((seconds * 10).rounded() / 10)), ("seed", .int(Int(seed))),
            ("distinct_messages", .int(shapes.count)), ("examples", .array(Array(examples))),
        ]
        return "{" + fields.map { "\(JSON.string($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    /// A message with its quoted parts and numbers masked, so messages that differ only in the
    /// offending text count once: `unknown key 'x' at line 3` → `unknown key '…' at line N`.
    static func shape(of message: String) -> String {
        var shape = ""
        var rest = Substring(message)
        while let character = rest.first {
            rest = rest.dropFirst()
            if character == "'" || character == "\"", let close = rest.firstIndex(of: character) {
                shape += "\(character)…\(character)"
                rest = rest[rest.index(after: close)...]
            } else if character.isNumber {
                if shape.last != "N" { shape += "N" }
            } else {
                shape.append(character)
            }
        }
        return shape
    }
}
