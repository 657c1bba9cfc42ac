public import GenflowCore

/// How many connections each client address holds, and whether it may open another: at most
/// `connectionsPerAddress` open, of which at most `unfinishedPerAddress` still sending their first
/// request head. Connections from trusted proxies are not counted (the proxy limits its clients).
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

    private func isTrusted(_ address: UInt32) -> Bool {
        limits.trustedProxies.contains { $0.contains(address) }
    }

    private mutating func change(_ address: UInt32, _ body: (inout (open: Int, unfinished: Int)) -> Void) {
        guard !isTrusted(address), var count = counts[address] else { return }
        body(&count)
        counts[address] = count.open <= 0 ? nil : count
    }
}
