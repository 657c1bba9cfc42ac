/// A position in a source file, 1-based like compilers print it.
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:col`
    public var description: String { "\(file):\(line):\(column)" }

    public static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
        (lhs.file, lhs.line, lhs.column) < (rhs.file, rhs.line, rhs.column)
    }
}

/// A problem found in a file, reported compiler style: `file:line:col: error: message`.
public struct Diagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable {
        case error
        case warning
    }

    public var location: SourceLocation
    public var severity: Severity
    public var message: String

    public init(_ severity: Severity = .error, at location: SourceLocation, _ message: String) {
        self.location = location
        self.severity = severity
        self.message = message
    }

    /// The one-line form: `file:line:col: error: message`.
    public var description: String { "\(location): \(severity.rawValue): \(message)" }

    /// The one-line form followed by the offending source line and a caret under the column.
    public func rendered(source: String?) -> String {
        guard let source, let line = Self.line(location.line, of: source), !line.isEmpty else { return description }
        let number = String(location.line)
        let gutter = String(repeating: " ", count: number.count)
        let caretIndent = line.prefix(max(0, location.column - 1)).map { $0 == "\t" ? "\t" : " " }.joined()
        return """
            \(description)
            \(gutter) |
            \(number) | \(line)
            \(gutter) | \(caretIndent)^
            """
    }

    private static func line(_ number: Int, of source: String) -> Substring? {
        var current = 1
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == number { return line.last == "\r" ? line.dropLast() : line }
            current += 1
        }
        return nil
    }
}

/// Several diagnostics at once, thrown when a file fails validation.
public struct DiagnosticsError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
