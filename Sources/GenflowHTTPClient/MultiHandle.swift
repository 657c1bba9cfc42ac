internal import CCurl
internal import CCurlShims

/// Owns a curl multi handle (freed in `deinit`). Used only on the curl thread.
final class MultiHandle {
    /// curl's socket callback: `(easy, socket, CURL_POLL_* action, socket data, the socket's assigned pointer)`.
    typealias SocketFunction = @convention(c) (
        UnsafeMutableRawPointer?, curl_socket_t, Int32, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?
    ) -> Int32
    /// curl's timer callback: `(multi, milliseconds or -1 to cancel, timer data)`.
    typealias TimerFunction = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeMutableRawPointer?) -> Int32

    private let raw: UnsafeMutableRawPointer

    init?() {
        guard let raw = curl_multi_init() else { return nil }
        self.raw = raw
    }

    deinit {
        curl_multi_cleanup(raw)
    }

    /// Installs the socket and timer callbacks; both get `context` back.
    func setCallbacks(context: UnsafeMutableRawPointer, socket: SocketFunction, timer: TimerFunction) {
        gf_curl_multi_setopt_ptr(raw, CURLMOPT_SOCKETDATA, context)
        gf_curl_multi_setopt_socket_function(raw, socket)
        gf_curl_multi_setopt_ptr(raw, CURLMOPT_TIMERDATA, context)
        gf_curl_multi_setopt_timer_function(raw, timer)
    }

    /// Removes the callbacks, so `curl_multi_cleanup` (closing cached connections) calls none.
    func removeCallbacks() {
        gf_curl_multi_setopt_socket_function(raw, nil)
        gf_curl_multi_setopt_timer_function(raw, nil)
        gf_curl_multi_setopt_ptr(raw, CURLMOPT_SOCKETDATA, nil)
        gf_curl_multi_setopt_ptr(raw, CURLMOPT_TIMERDATA, nil)
    }

    /// Starts driving `easy`; false if curl refuses it.
    func add(_ easy: UnsafeMutableRawPointer) -> Bool {
        curl_multi_add_handle(raw, easy) == CURLM_OK
    }

    func remove(_ easy: UnsafeMutableRawPointer) {
        curl_multi_remove_handle(raw, easy)
    }

    /// Tells curl that `socket` is ready (`CURL_CSELECT_*` bits), or with `CURL_SOCKET_TIMEOUT`
    /// that its timer expired.
    func socketAction(_ socket: curl_socket_t, events: Int32) {
        var running: Int32 = 0
        curl_multi_socket_action(raw, socket, events, &running)
    }

    /// Attaches `pointer` to `socket`: curl hands it back to the socket callback from then on.
    func assign(_ socket: curl_socket_t, _ pointer: UnsafeMutableRawPointer?) {
        curl_multi_assign(raw, socket, pointer)
    }

    /// The next finished transfer's easy handle and result, if any. Read both before removing the handle.
    func nextFinished() -> (easy: UnsafeMutableRawPointer, result: CURLcode)? {
        var left: Int32 = 0
        while let message = curl_multi_info_read(raw, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            return (easy, message.pointee.data.result)
        }
        return nil
    }
}
