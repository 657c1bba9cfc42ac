public import GenflowCore

/// The `listener` section: how long a client may take to send a request (and to start the next
/// one on a kept-alive connection), how many connections
/// one address may hold, how large a request head may be, and when a silent WebSocket is pinged
/// and dropped. The defaults suit a daemon reached directly; behind a reverse proxy, name the
/// proxy in `trusted_proxies` (its connections are not counted per address) and limit clients
/// at the proxy.
public struct ListenerLimits: Sendable, Equatable {
    public var headerTimeout: Duration = .seconds(10)
    public var bodyTimeout: Duration = .seconds(60)
    public var keepAliveTimeout: Duration = .seconds(15)
    public var maxHeadBytes = 8_192
    public var maxTargetBytes = 4_096
    public var maxConnectionsPerAddress = 1_024
    public var maxUnfinishedPerAddress = 128
    public var trustedProxies: [IPv4Range] = []
    public var pingAfter: Duration = .seconds(30)
    public var hangUpAfter: Duration = .seconds(70)

    public init() {}

    /// What is wrong with the limits taken together, each with the keys to point at (the first
    /// one written).
    var problems: [(keys: [String], message: String)] {
        var problems: [(keys: [String], message: String)] = []
        if hangUpAfter <= pingAfter {
            problems.append((["hang_up_after", "ping_after"], "'listener.hang_up_after' must be longer than 'listener.ping_after'"))
        }
        if maxTargetBytes > maxHeadBytes {
            problems.append((["max_target_bytes", "max_head_bytes"], "'listener.max_target_bytes' cannot exceed 'listener.max_head_bytes'"))
        }
        return problems
    }
}
