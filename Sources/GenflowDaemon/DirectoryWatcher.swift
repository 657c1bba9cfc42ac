internal import Foundation
internal import Synchronization

/// Tells when files in some directories change (inotify: written and closed, moved in or out,
/// created, deleted), on a thread of its own that blocks in `read`. A watched directory that does
/// not exist is skipped; SIGHUP still reloads.
final class DirectoryWatcher: Sendable {
    /// Each batch of changes read at once; consumers debounce.
    let changes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let descriptor: Int32
    private let stopping = Atomic<Bool>(false)

    /// Watches `directories` (those that exist); nil when inotify is unavailable.
    init?(directories: [String]) {
        let descriptor = inotify_init1(Int32(IN_CLOEXEC))
        guard descriptor >= 0 else { return nil }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF)
        var watched = 0
        for directory in directories where inotify_add_watch(descriptor, directory, mask) >= 0 { watched += 1 }
        guard watched > 0 else {
            close(descriptor)
            return nil
        }
        self.descriptor = descriptor
        (changes, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        let thread = Thread { [self] in readLoop() }
        thread.name = "genflow-watch"
        thread.start()
    }

    private func readLoop() {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64 << 10, alignment: 8)
        defer { buffer.deallocate() }
        while !stopping.load(ordering: .relaxed) {
            let count = read(descriptor, buffer, 64 << 10)
            if count > 0 {
                continuation.yield()
            } else if count < 0 && errno != EINTR {
                break
            }
        }
        continuation.finish()
    }

    /// Stops the thread (closing the descriptor ends its `read`).
    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        close(descriptor)
    }
}
