import Foundation
import GenflowCore
import Synchronization

/// `<crash-dir>/current-<target>.bin`: the input being run, written before it runs, so a crash (or a
/// hang the watchdog ends) leaves the input that caused it behind. Removed after a clean finish.
///
/// One descriptor stays open for the whole campaign; each input is a `pwrite` and an `ftruncate`
/// into the page cache, never synced. The descriptor is closed in `deinit`.
final class CurrentInputFile {
    let path: String
    private let descriptor: Int32

    init(directory: String, target: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = "\(directory)/current-\(target).bin"
        descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
    }

    deinit {
        close(descriptor)
    }

    /// Replaces the file's contents with `bytes`.
    func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let result = pwrite(descriptor, buffer.baseAddress! + written, buffer.count - written, off_t(written))
                if result <= 0 { break }
                written += result
            }
        }
        _ = ftruncate(descriptor, off_t(bytes.count))
    }

    /// Deletes the file: the campaign finished without crashing.
    func remove() {
        unlink(path)
    }
}

/// Ends the process when one input runs far past the time limit, so a hang is reported (its input
/// stays in the current-input file) instead of stalling the run. A thread of its own polls twice a
/// second.
final class Watchdog: Sendable {
    /// Uptime in nanoseconds when the current input started; 0 between inputs.
    private let startedAt = Atomic<UInt64>(0)
    private let limit: Duration

    /// - Parameter limit: how long one input may run before the process is ended as hung.
    init(limit: Duration) {
        self.limit = limit
        Thread { [self] in watch() }.start()
    }

    /// Marks the start of an input.
    func begin() {
        startedAt.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
    }

    /// Marks the end of an input.
    func end() {
        startedAt.store(0, ordering: .relaxed)
    }

    private func watch() {
        let limitNanoseconds = UInt64(limit.nanoseconds)
        while true {
            Thread.sleep(forTimeInterval: 0.5)
            let started = startedAt.load(ordering: .relaxed)
            guard started != 0, DispatchTime.now().uptimeNanoseconds - started > limitNanoseconds else { continue }
            FileHandle.standardError.write(Data("genflow-fuzz: an input has run for more than \(limit): ending the process as hung\n".utf8))
            exit(1)
        }
    }
}
