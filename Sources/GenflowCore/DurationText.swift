/// Durations as operators write them: `500ms`, `2s`, `1.5s`, `1m30s`, `2h`.
public enum DurationText {
    private static let units: [(suffix: String, milliseconds: Double)] = [
        ("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]

    /// The regular expression of the accepted syntax, for editor schemas.
    public static let pattern = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$"

    /// Parses a duration; nil when the text is not one (no unit, unknown unit, negative, empty,
    /// spaces). Matches the editor schema's pattern `^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$`.
    public static func parse(_ text: String) -> Duration? {
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        var totalMilliseconds = 0.0
        while !rest.isEmpty {
            let number = rest.prefix(while: { ("0"..."9").contains($0) || $0 == "." })
            let parts = number.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count <= 2, parts.allSatisfy({ !$0.isEmpty }), let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix(while: { $0.isLetter })
            guard let unit = units.first(where: { $0.suffix == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            totalMilliseconds += value * unit.milliseconds
        }
        guard totalMilliseconds.isFinite, totalMilliseconds < 1e13 else { return nil }
        return .milliseconds(Int64(totalMilliseconds.rounded()))
    }

    /// The shortest text that parses back to `duration` at millisecond precision (`1m30s`, `250ms`).
    public static func format(_ duration: Duration) -> String {
        var milliseconds = duration.milliseconds
        if milliseconds == 0 { return "0s" }
        var text = milliseconds < 0 ? "-" : ""
        milliseconds = abs(milliseconds)
        for (suffix, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] as [(String, Int64)] {
            if milliseconds >= size {
                text += "\(milliseconds / size)\(suffix)"
                milliseconds %= size
            }
        }
        return text
    }
}

extension Duration {
    /// Whole milliseconds, rounded toward zero.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }

    /// Whole nanoseconds, rounded toward zero (what swift-metrics timers record).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Seconds as a floating-point number.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
