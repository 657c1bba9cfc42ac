internal import CLinux
internal import Glibc

/// Owns an epoll instance (closed in `deinit`) and the buffer its waits fill. Level-triggered, as
/// curl expects. Used only on the curl thread.
final class EventPoll {
    /// One ready descriptor, with the tag it was watched with.
    struct Event {
        var fd: Int32
        var tag: UInt32
        var isReadable: Bool
        var isWritable: Bool
        /// An error or a hang-up.
        var isFailed: Bool
    }

    private let fd: Int32
    private let ready: UnsafeMutableBufferPointer<epoll_event>

    /// nil if the kernel will not make an epoll instance (no file descriptors left).
    init?(capacity: Int = 1_024) {
        fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { return nil }
        ready = .allocate(capacity: capacity)
    }

    deinit {
        close(fd)
        ready.deallocate()
    }

    /// Starts watching `descriptor`, or changes what for if it is watched already; false on failure.
    /// Its events come back with `tag`.
    @discardableResult
    func watch(_ descriptor: Int32, tag: UInt32, readable: Bool, writable: Bool, isNew: Bool) -> Bool {
        var event = epoll_event()
        event.events = (readable ? EPOLLIN.rawValue : 0) | (writable ? EPOLLOUT.rawValue : 0)
        event.data.u64 = UInt64(tag) << 32 | UInt64(UInt32(bitPattern: descriptor))
        if epoll_ctl(fd, isNew ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, descriptor, &event) == 0 { return true }
        // The other operation covers a descriptor curl closed and reopened under the same number.
        let retry = errno == EEXIST ? EPOLL_CTL_MOD : errno == ENOENT ? EPOLL_CTL_ADD : nil
        return retry.map { epoll_ctl(fd, $0, descriptor, &event) == 0 } ?? false
    }

    /// Stops watching `descriptor`. Harmless if it is closed already (the kernel dropped it then).
    func unwatch(_ descriptor: Int32) {
        epoll_ctl(fd, EPOLL_CTL_DEL, descriptor, nil)
    }

    /// Waits up to `timeoutMilliseconds` (-1: no limit) and calls `body` for each ready descriptor.
    func wait(timeoutMilliseconds: Int32, _ body: (Event) -> Void) {
        let count = epoll_wait(fd, ready.baseAddress, Int32(ready.count), timeoutMilliseconds)
        guard count > 0 else { return }  // 0: timed out; -1: EINTR
        for event in ready[..<Int(count)] {
            body(Event(
                fd: Int32(bitPattern: UInt32(truncatingIfNeeded: event.data.u64)),
                tag: UInt32(truncatingIfNeeded: event.data.u64 >> 32),
                isReadable: event.events & EPOLLIN.rawValue != 0,
                isWritable: event.events & EPOLLOUT.rawValue != 0,
                isFailed: event.events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
            ))
        }
    }
}
