internal import CCurl
internal import Synchronization

/// Easy handles kept for the next transfers. A fresh handle costs its allocations, and curl then
/// allocates its 16 KiB download buffer at the transfer's start and frees it with the handle: with
/// thousands of model calls a second that was most of the curl thread's malloc time (glibc
/// consolidating its free lists at each 16 KiB request). A handle given back is reset
/// (`curl_easy_reset`: every option cleared, its buffers kept) and handed to the next transfer, as
/// libcurl's documentation recommends; at most `capacity` wait, the rest are cleaned up.
final class EasyHandles: Sendable {
    private struct Handle: @unchecked Sendable {
        let easy: UnsafeMutableRawPointer
    }

    private let idle = Mutex<[Handle]>([])
    private let capacity: Int

    init(capacity: Int = 1_024) {
        self.capacity = capacity
    }

    deinit {
        idle.withLock { $0.forEach { curl_easy_cleanup($0.easy) } }
    }

    /// A reset handle, or a new one; nil if curl cannot make one.
    func take() -> UnsafeMutableRawPointer? {
        idle.withLock { $0.popLast() }?.easy ?? curl_easy_init()
    }

    /// Takes back a handle that is in no multi handle any more.
    func give(_ easy: UnsafeMutableRawPointer) {
        curl_easy_reset(easy)
        let kept = idle.withLock { handles -> Bool in
            guard handles.count < capacity else { return false }
            handles.append(Handle(easy: easy))
            return true
        }
        if !kept { curl_easy_cleanup(easy) }
    }
}
