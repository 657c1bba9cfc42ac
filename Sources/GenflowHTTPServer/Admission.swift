public import GenflowCore

/// How many connections each client address holds, and whether it may open another: at most
/// `connectionsPerAddress` open, of which at most `unfinishedPerAddress` still sending their first
/// request head. Connections from trusted proxies are not counted as the proxy's; a WebSocket
/// through one is counted by the client address it forwarded (`X-Forwarded-For`), so one client
/// behind the proxy holds no more sockets than one that connects directly. (Plain requests through
/// a proxy share its kept-alive connections: the proxy limits those.)
///
/// Pure: the listener's service thread owns it.
struct Admission {
    struct Limits: Sendable {
        var connectionsPerAddress = 1_024
        var unfinishedPerAddress = 128
        var trustedProxies: [IPv4Range] = []
    }

    let limits: Limits
    private var counts: [UInt32: (open: Int, unfinished: Int)] = [:]
    private var forwarded: [String: Int] = [:]

    init(limits: Limits) {
        self.limits = limits
    }

    /// Counts a new connection from `address`, or says why it is refused.
    mutating func admit(_ address: UInt32) -> ListenerRefusal? {
        if isTrusted(address) { return nil }
        let count = counts[address] ?? (0, 0)
        guard count.open < limits.connectionsPerAddress, count.unfinished < limits.unfinishedPerAddress else { return .tooManyConnections }
        counts[address] = (count.open + 1, count.unfinished + 1)
        return nil
    }

    /// The connection's first request head is complete.
    mutating func finished(_ address: UInt32) {
        change(address) { $0.unfinished -= 1 }
    }

    /// The connection is gone.
    mutating func closed(_ address: UInt32, wasFinished: Bool) {
        change(address) { count in
            count.open -= 1
            if !wasFinished { count.unfinished -= 1 }
        }
    }

    /// Counts a WebSocket from a trusted proxy by its forwarded client, or refuses it.
    mutating func admitForwarded(_ client: String) -> ListenerRefusal? {
        let count = forwarded[client] ?? 0
        guard count < limits.connectionsPerAddress else { return .tooManyConnections }
        forwarded[client] = count + 1
        return nil
    }

    /// A WebSocket counted by `admitForwarded` is gone.
    mutating func closedForwarded(_ client: String) {
        guard let count = forwarded[client] else { return }
        forwarded[client] = count <= 1 ? nil : count - 1
    }

    func isTrusted(_ address: UInt32) -> Bool {
        limits.trustedProxies.contains { $0.contains(address) }
    }

    private mutating func change(_ address: UInt32, _ body: (inout (open: Int, unfinished: Int)) -> Void) {
        guard !isTrusted(address), var count = counts[address] else { return }
        body(&count)
        counts[address] = count.open <= 0 ? nil : count
    }
}
