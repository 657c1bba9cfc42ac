internal import CWebSockets
internal import CWebSocketsShims
internal import GenflowCore

/// The identity Genflow gives each connection lws holds (never reused within a server).
typealias ConnectionID = UInt64

/// The WebSocket side of the listener: lws's callbacks for the connections the front door handed
/// over (the upgrade, each message in and out, pings, the close), on the service thread.
extension HTTPServer {
    /// lws's callback for every connection it holds, on the service thread.
    func callback(_ wsi: OpaquePointer, _ reason: lws_callback_reasons, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        let key = ConnectionID(UInt(bitPattern: lws_get_opaque_user_data(wsi)))
        switch reason {
        case LWS_CALLBACK_WSI_CREATE:
            if let (id, address, client) = adopting {
                addresses[id] = (address, client)
                adopting = nil
            }
            return 0
        case LWS_CALLBACK_WSI_DESTROY:
            if let holder = addresses.removeValue(forKey: key) { frontDoor?.closed(holder.address, client: holder.client) }
            return 0
        case LWS_CALLBACK_HTTP:
            // Only upgrades reach lws; one it would not upgrade is closed.
            return -1
        case LWS_CALLBACK_CLOSED_HTTP:
            pendingUpgrades[key] = nil
            refusals[key] = nil
            return 0
        case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
            return confirmUpgrade(wsi, key)
        case LWS_CALLBACK_ESTABLISHED:
            return established(wsi, key)
        case LWS_CALLBACK_RECEIVE:
            sockets[key]?.heard = silence.now
            return receive(wsi, key, input, length)
        case LWS_CALLBACK_RECEIVE_PONG:
            sockets[key]?.heard = silence.now
            return 0
        case LWS_CALLBACK_SERVER_WRITEABLE:
            return writable(wsi, key)
        case LWS_CALLBACK_CLOSED:
            guard let socket = sockets.removeValue(forKey: key) else { return 0 }
            socket.connection.markClosed()
            socket.handler?.closed(socket.connection)
            activity.withLock { $0.webSockets -= 1 }
            quiet.signal()
            return 0
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
            drainInbox()
            return 0
        default:
            return lws_callback_http_dummy(wsi, reason, nil, input, length)
        }
    }

    /// The front door's upgrade request: the upgrader accepts it (its handler waits for the
    /// handshake) or refuses it.
    private func confirmUpgrade(_ wsi: OpaquePointer, _ key: ConnectionID) -> Int32 {
        guard let request = upgrades.removeValue(forKey: lws_get_socket_fd(wsi)) else { return -1 }
        switch upgrader(request) {
        case .success(let handler):
            pendingUpgrades[key] = handler
        case .failure(let refusal):
            // An HTTP error here would be answered as HTTP/1.0, which WebSocket clients reject,
            // and browsers hide its status anyway: upgrade, then close with 4000 + status.
            refusals[key] = refusal
        }
        return 0
    }

    /// The handshake is done: the connection opens for its handler (or closes with its refusal).
    private func established(_ wsi: OpaquePointer, _ key: ConnectionID) -> Int32 {
        let handler = pendingUpgrades.removeValue(forKey: key)
        let refusal = refusals.removeValue(forKey: key)
        guard handler != nil || refusal != nil else { return -1 }
        let connection = WebSocketConnection(id: key, limit: options.webSocketQueueLimit) { [weak self] id in self?.wake(id) }
        sockets[key] = Socket(wsi: wsi, connection: connection, handler: handler, heard: silence.now)
        activity.withLock { $0.webSockets += 1 }
        silence.schedule(key, at: silence.now + options.pingAfter)
        if let refusal {
            connection.close(code: UInt16(4_000 + refusal.status), reason: refusal.body)
        } else {
            handler?.opened(connection)
        }
        return 0
    }

    /// One write: a ping that is due, else the next message, else the close.
    private func writable(_ wsi: OpaquePointer, _ key: ConnectionID) -> Int32 {
        guard let socket = sockets[key] else { return 0 }
        if socket.isPingDue {
            sockets[key]?.isPingDue = false
            // With a payload: lws 4.1 does not report an empty pong.
            var payload = Array("genflow".utf8)
            if Self.write(wsi, &payload, LWS_WRITE_PING) < 0 { return -1 }
            if socket.connection.hasWork { lws_callback_on_writable(wsi) }
            return 0
        }
        switch socket.connection.next() {
        case .message(let text, let more):
            var bytes = Array(text.utf8)
            if Self.write(wsi, &bytes, LWS_WRITE_TEXT) < 0 { return -1 }
            if more { lws_callback_on_writable(wsi) }
            return 0
        case .close(let code, let reason):
            return Self.closeNow(wsi, code: code, reason)
        case .nothing:
            return 0
        }
    }

    private func receive(_ wsi: OpaquePointer, _ key: ConnectionID, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        guard var socket = sockets[key] else { return -1 }
        if lws_frame_is_binary(wsi) != 0 {
            return Self.closeNow(wsi, code: 1003, "binary messages are not accepted; send JSON text")
        }
        if let input { socket.received.append(contentsOf: UnsafeRawBufferPointer(start: input, count: length)) }
        if socket.received.count > options.maxMessageBytes {
            return Self.closeNow(wsi, code: 1009, "message larger than \(options.maxMessageBytes) bytes")
        }
        guard lws_is_final_fragment(wsi) != 0, lws_remaining_packet_payload(wsi) == 0 else {
            sockets[key] = socket
            return 0
        }
        let text = String(decoding: socket.received, as: UTF8.self)
        socket.received = []
        sockets[key] = socket
        socket.handler?.received(text, on: socket.connection)
        return 0
    }

    private static func closeNow(_ wsi: OpaquePointer, code: UInt16, _ reason: String) -> Int32 {
        var bytes = Array(reason.utf8.prefix(120))
        lws_close_reason(wsi, lws_close_status(rawValue: UInt32(code)), &bytes, bytes.count)
        return -1
    }

    /// One `lws_write` of `bytes` with `LWS_PRE` headroom; the count written, or -1.
    private static func write(_ wsi: OpaquePointer, _ bytes: inout [UInt8], _ kind: lws_write_protocol) -> Int {
        let pre = gf_lws_pre()
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: pre + max(bytes.count, 1))
        defer { buffer.deallocate() }
        bytes.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { (buffer + pre).update(from: base, count: source.count) }
        }
        let written = Int(lws_write(wsi, buffer + pre, bytes.count, kind))
        return written < bytes.count ? -1 : written
    }
}
