/// The event names the daemon writes itself. Pipelines (`notify`) and plugins name their own
/// events; a name under one of these prefixes would let them forge a job's lifecycle, so it is refused.
public enum EventNames {
    public static let reservedPrefixes = ["job.", "step.", "canvas.", "pipeline.", "token_balance_updated"]

    /// Whether `name` is the daemon's own.
    public static func isReserved(_ name: String) -> Bool { reservedPrefixes.contains(where: name.hasPrefix) }
}
