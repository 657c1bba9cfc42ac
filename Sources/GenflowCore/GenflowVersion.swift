/// Genflow's release version: `genflow --version`, the User-Agent of outgoing HTTP calls, and the
/// `service.version` of exported traces. Raised with each release (docs/operations.md, Upgrading).
public enum GenflowVersion {
    public static let version = "1.1.0"
}
