/// An amount of money, exact: a whole number of billionths of the currency unit (US dollars in
/// prices and costs), so sums never drift as floating point does. Written as a decimal string
/// (`"0.000123"`) in JSON and as `numeric` in PostgreSQL.
public struct Money: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var nanos: Int64

    public static let zero = Money(nanos: 0)

    public init(nanos: Int64) {
        self.nanos = nanos
    }

    /// A decimal such as `12`, `0.15` or `-3.000000001`; nil for anything else, or more than nine
    /// decimal places.
    public init?(_ text: String) {
        var digits = Substring(text)
        let negative = digits.first == "-"
        if negative { digits.removeFirst() }
        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy(\.isASCII), let units = Int64(whole), units < 9_000_000_000 else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            let decimals = parts[1]
            guard !decimals.isEmpty, decimals.count <= 9, decimals.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(decimals) else { return nil }
            fraction = value * Self.power(9 - decimals.count)
        }
        nanos = (units * 1_000_000_000 + fraction) * (negative ? -1 : 1)
    }

    /// A price as YAML or JSON reads it (a binary floating point number), to the nearest billionth.
    public init(_ value: Double) {
        nanos = Int64((value * 1_000_000_000).rounded())
    }

    /// From a JSON number or decimal string.
    public init?(_ json: JSON?) {
        switch json {
        case .string(let text)?: self.init(text)
        case .int(let value)?: self.init(nanos: Int64(value) * 1_000_000_000)
        case .double(let value)?: self.init(value)
        default: return nil
        }
    }

    /// `tokens` at `self` per million tokens, to the nearest billionth.
    public func perMillion(_ tokens: Int) -> Money {
        Money(nanos: (nanos * Int64(tokens) + 500_000) / 1_000_000)
    }

    /// The shortest exact decimal: `0`, `0.04`, `12.000000005`.
    public var description: String {
        let sign = nanos < 0 ? "-" : ""
        let magnitude = nanos.magnitude
        let whole = magnitude / 1_000_000_000, fraction = magnitude % 1_000_000_000
        guard fraction > 0 else { return "\(sign)\(whole)" }
        var decimals = String(fraction)
        decimals = String(repeating: "0", count: 9 - decimals.count) + decimals
        while decimals.hasSuffix("0") { decimals.removeLast() }
        return "\(sign)\(whole).\(decimals)"
    }

    public static func + (left: Money, right: Money) -> Money { Money(nanos: left.nanos + right.nanos) }
    public static func * (left: Money, right: Int) -> Money { Money(nanos: left.nanos * Int64(right)) }
    public static func < (left: Money, right: Money) -> Bool { left.nanos < right.nanos }

    private static func power(_ exponent: Int) -> Int64 { (0..<exponent).reduce(1) { value, _ in value * 10 } }
}
