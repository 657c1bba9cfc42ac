public import GenflowCore
internal import GenflowYAML

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

    static let keys = [
        "header_timeout", "body_timeout", "keep_alive_timeout", "max_head_bytes", "max_target_bytes", "max_connections_per_address",
        "max_unfinished_per_address", "trusted_proxies", "ping_after", "hang_up_after",
    ]

    mutating func read(_ entries: [String: YAMLPair], reader: inout NodeReader) {
        func seconds(_ key: String, _ value: inout Duration, _ range: ClosedRange<Duration>) {
            guard let node = entries[key]?.value, let read = reader.duration(node, "listener.\(key)", in: range) else { return }
            if read.components.attoseconds != 0 {
                reader.error(at: node.location, "'listener.\(key)' is counted in whole seconds")
            } else {
                value = read
            }
        }
        func count(_ key: String, _ value: inout Int, _ range: ClosedRange<Int>) {
            if let node = entries[key]?.value { value = reader.int(node, "listener.\(key)", in: range) ?? value }
        }
        seconds("header_timeout", &headerTimeout, .seconds(1)...(.seconds(600)))
        seconds("body_timeout", &bodyTimeout, .seconds(1)...(.seconds(3_600)))
        seconds("keep_alive_timeout", &keepAliveTimeout, .seconds(1)...(.seconds(3_600)))
        seconds("ping_after", &pingAfter, .seconds(1)...(.seconds(3_600)))
        seconds("hang_up_after", &hangUpAfter, .seconds(2)...(.seconds(7_200)))
        count("max_head_bytes", &maxHeadBytes, 1_024...65_000)
        count("max_target_bytes", &maxTargetBytes, 256...65_000)
        count("max_connections_per_address", &maxConnectionsPerAddress, 1...1_000_000)
        count("max_unfinished_per_address", &maxUnfinishedPerAddress, 1...1_000_000)
        if let node = entries["trusted_proxies"]?.value, let items = reader.stringList(node, "listener.trusted_proxies") {
            trustedProxies = items.compactMap { text, item in
                guard let range = IPv4Range(text) else {
                    reader.error(at: item.location, "'\(text)' in listener.trusted_proxies is not an IPv4 address or CIDR block (e.g. 10.0.0.0/8)")
                    return nil
                }
                return range
            }
        }
        if hangUpAfter <= pingAfter, let node = entries["hang_up_after"]?.value ?? entries["ping_after"]?.value {
            reader.error(at: node.location, "'listener.hang_up_after' must be longer than 'listener.ping_after'")
        }
        if maxTargetBytes > maxHeadBytes, let node = entries["max_target_bytes"]?.value ?? entries["max_head_bytes"]?.value {
            reader.error(at: node.location, "'listener.max_target_bytes' cannot exceed 'listener.max_head_bytes'")
        }
    }
}
