import CCurl
import CCurlShims
import CEventLoop
import CLinux
import CWebSocketsShims
import Foundation
import Testing

@Suite("C shims", .timeLimit(.minutes(1)))
struct ShimTests {
    @Test("LWS_PRE comes through the shim")
    func lwsPre() {
        #expect(gf_lws_pre() == 16)
    }

    @Test("the typed curl_easy_setopt shims set options on a real handle")
    func curlOptions() throws {
        let handle = try #require(curl_easy_init())
        defer { curl_easy_cleanup(handle) }
        #expect(gf_curl_easy_setopt_string(handle, CURLOPT_URL, "http://127.0.0.1:1/") == CURLE_OK)
        #expect(gf_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 200) == CURLE_OK)
        #expect(gf_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1) == CURLE_OK)
        // Port 1 on loopback refuses: a real transfer attempt, failing fast with a connection error.
        #expect(curl_easy_perform(handle) == CURLE_COULDNT_CONNECT)
        var code = 0
        #expect(gf_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK)
        #expect(code == 0)
    }

    @Test("a libev timer fires on the loop's thread and gf_ev_break ends gf_ev_run")
    func eventLoopTimer() throws {
        let loop = try #require(gf_ev_loop_new())
        defer { gf_ev_loop_destroy(loop) }
        // The context is the loop itself, so the C callback needs no captures.
        let started = gf_ev_timer_start(loop, 0.01, { context, fd in
            if fd == -1 { gf_ev_break(context) }
        }, loop)
        let timer = try #require(started)
        gf_ev_run(loop)  // returns only because the timer broke the loop
        gf_ev_timer_stop(loop, timer)
    }

    @Test("a libev readable watcher fires with its descriptor")
    func eventLoopReadable() throws {
        let loop = try #require(gf_ev_loop_new())
        defer { gf_ev_loop_destroy(loop) }
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        #expect(write(ends[1], "x", 1) == 1)
        let started = gf_ev_readable_start(loop, ends[0], { context, _ in gf_ev_break(context) }, loop)
        let watcher = try #require(started)
        gf_ev_run(loop)
        gf_ev_readable_stop(loop, watcher)
    }

    @Test("gf_set_current_thread_name names the thread, as /proc shows it")
    func threadName() throws {
        let named = Thread.detachNewThreadAndWait {
            _ = gf_set_current_thread_name("genflow-shim")
            return try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
        }
        #expect(named == "genflow-shim\n")
    }

    @Test("gf_accept returns a non-blocking, close-on-exec, no-delay socket and the peer's IPv4 address")
    func accept() throws {
        let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listening) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                try #require(bind(listening, raw, length) == 0)
                try #require(listen(listening, 1) == 0)
                try #require(getsockname(listening, raw, &length) == 0)
            }
        }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) }
        }
        #expect(connected == 0)
        var peer: UInt32 = 0
        let fd = gf_accept(listening, &peer)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(peer == 0x7f00_0001)
        #expect(fcntl(fd, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        var noDelay: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        #expect(getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, &size) == 0)
        #expect(noDelay == 1)
    }

    @Test("gf_spawn runs a program in / with its output in a file and no inherited descriptor past stderr")
    func spawn() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("shim-spawn-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let arguments = ["/bin/sh", "-c", "pwd; ls /proc/self/fd | wc -l; echo oops >&2"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let pid = gf_spawn(&argv, output)
        try #require(pid > 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        // 0, 1, 2 and the descriptor ls opens to read /proc/self/fd.
        #expect(lines == ["/", "4", "oops"])
    }
}

extension Thread {
    /// Runs `body` on a new thread and returns its result (for what must happen on a thread of its own).
    static func detachNewThreadAndWait<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: T?
        Thread.detachNewThread {
            result = body()
            done.signal()
        }
        done.wait()
        return result!
    }
}
