import Foundation
import GenflowCore

/// Runs one target's campaign in worker processes (this executable with `--worker`), so that an
/// input which crashes Genflow's code costs that input, not the run: the supervisor tallies the
/// record a worker prints for each input, and when a worker dies (or its watchdog ends it) it keeps
/// the worker's current-input file as `crash-<target>-<index>.bin`, counts a violation, and starts
/// a new worker at the next input.
///
/// Only the first crash of a run gets the Swift runtime's backtrace on stderr; later workers run
/// with `SWIFT_BACKTRACE=enable=no`, as a backtrace takes seconds.
struct Supervisor {
    /// Violations described on stderr (with their input saved) before the rest are only counted.
    static let describedViolations = 20

    var target: String
    var options: Options

    func run() -> Report {
        var report = Report(target: target, seed: options.seed)
        let started = ContinuousClock.now
        var next = 0
        var nextProgress = max(1, options.count / 10)
        while next < options.count {
            let budget = max(0, Self.describedViolations - report.violations)
            let ending = runWorker(from: next, hasCrashed: report.crashes > 0, describing: budget) { record in
                report.record(record)
                next = record.index + 1
                if report.inputs >= nextProgress {
                    nextProgress += max(1, options.count / 10)
                    FileHandle.standardError.write(Data(
                        "genflow-fuzz: \(target) \(report.inputs)/\(options.count) inputs, \(report.violations) violations, \(Int(started.duration(to: .now).seconds)) s\n".utf8))
                }
            }
            guard let ending else { break }
            keepCrash(input: next, ending: ending, describe: report.violations < Self.describedViolations)
            report.recordCrash()
            next += 1
        }
        report.seconds = started.duration(to: .now).seconds
        return report
    }

    /// Runs a worker over inputs `start..<count`, passing on its records. Returns nil when it got
    /// through them all, else how it ended (while running the input after its last record).
    private func runWorker(from start: Int, hasCrashed: Bool, describing: Int, record: (InputRecord) -> Void) -> String? {
        let process = Process()
        process.executableURL = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = [
            target, "--worker", "--start", String(start), "--count", String(options.count), "--seed", String(options.seed),
            "--crash-dir", options.crashDirectory, "--describe", String(describing),
        ]
        if hasCrashed {
            process.environment = ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { $1 }
        }
        let output = Pipe()
        process.standardOutput = output
        do {
            try process.run()
        } catch {
            Options.fail("cannot start a worker: \(error)")
        }
        var isDone = false
        var pending = Data()
        while true {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            pending.append(chunk)
            var lineStart = pending.startIndex
            while let newline = pending[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[lineStart..<newline], as: UTF8.self)
                if line == "done" {
                    isDone = true
                } else if let parsed = InputRecord(line: line) {
                    record(parsed)
                }
                lineStart = newline + 1
            }
            pending = Data(pending[lineStart...])
        }
        process.waitUntilExit()
        if isDone { return nil }
        return process.terminationReason == .uncaughtSignal
            ? "crashed (signal \(process.terminationStatus))" : "ended with status \(process.terminationStatus) before the last input"
    }

    /// Keeps the input a worker died on as `crash-<target>-<index>.bin`, and says so on stderr.
    private func keepCrash(input index: Int, ending: String, describe: Bool) {
        let current = "\(options.crashDirectory)/current-\(target).bin"
        let kept = "\(options.crashDirectory)/crash-\(target)-\(index).bin"
        try? FileManager.default.removeItem(atPath: kept)
        let size = (try? FileManager.default.attributesOfItem(atPath: current)[.size] as? Int) ?? 0
        let fate = (try? FileManager.default.moveItem(atPath: current, toPath: kept)) != nil
            ? "the input (\(size) bytes) is kept in \(kept)" : "its input is lost: \(current) is gone (does another run use \(options.crashDirectory)?)"
        if describe {
            FileHandle.standardError.write(Data("genflow-fuzz: \(target) input #\(index) (seed \(options.seed)): the worker \(ending) running it; \(fate)\n".utf8))
        }
    }
}
