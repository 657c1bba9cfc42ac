/// An IPv4 address or CIDR block (`10.0.0.0/8`, `127.0.0.1`), in host byte order.
public struct IPv4Range: Sendable, Equatable, CustomStringConvertible {
    public let base: UInt32
    public let prefix: Int

    /// Nil unless `text` is a dotted IPv4 address, optionally with `/0`…`/32`.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPv4Range.address(String(parts[0])) else { return nil }
        var prefix = 32
        if parts.count == 2 {
            guard let bits = Int(parts[1]), (0...32).contains(bits) else { return nil }
            prefix = bits
        }
        self.prefix = prefix
        base = address & IPv4Range.mask(prefix)
    }

    public func contains(_ address: UInt32) -> Bool { address & IPv4Range.mask(prefix) == base }

    public var description: String { Self.text(base) + (prefix == 32 ? "" : "/\(prefix)") }

    /// `a.b.c.d` of an address in host byte order.
    public static func text(_ address: UInt32) -> String {
        [24, 16, 8, 0].map { String((address >> UInt32($0)) & 0xFF) }.joined(separator: ".")
    }

    /// `a.b.c.d` in host byte order.
    public static func address(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard !octet.isEmpty, octet.count <= 3, octet.allSatisfy(\.isASCII), let byte = UInt8(octet) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    private static func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : UInt32.max << UInt32(32 - prefix) }
}
