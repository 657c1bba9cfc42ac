public import GenflowCore

/// `${VAR}` and `${VAR:-default}` in scalar values, as the daemon config allows (`$$` is a literal `$`).
public enum EnvironmentExpansion {
    /// Expands every scalar value (not keys) of `node`. A variable that is unset and has no default is
    /// an error at its position; an empty default (`${VAR:-}`) is allowed.
    public static func expand(_ node: YAMLNode, environment: [String: String]) throws(DiagnosticsError) -> YAMLNode {
        var diagnostics: [Diagnostic] = []
        let result = expand(node, environment: environment, diagnostics: &diagnostics)
        if !diagnostics.isEmpty { throw DiagnosticsError(diagnostics) }
        return result
    }

    private static func expand(_ node: YAMLNode, environment: [String: String], diagnostics: inout [Diagnostic]) -> YAMLNode {
        var node = node
        switch node.content {
        case .scalar(var scalar):
            guard scalar.text.contains("$") else { return node }
            do {
                scalar.text = try expand(scalar.text, environment: environment)
                node.content = .scalar(scalar)
            } catch {
                diagnostics.append(Diagnostic(at: node.location(ofOffset: error.offset), error.message))
            }
        case .sequence(let elements):
            node.content = .sequence(elements.map { expand($0, environment: environment, diagnostics: &diagnostics) })
        case .mapping(let pairs):
            node.content = .mapping(pairs.map {
                YAMLPair(key: $0.key, value: expand($0.value, environment: environment, diagnostics: &diagnostics))
            })
        }
        return node
    }

    struct ExpansionError: Error {
        var offset: Int
        var message: String
    }

    /// Expands one string. `offset` in a thrown error counts characters from the start of `text`.
    static func expand(_ text: String, environment: [String: String]) throws(ExpansionError) -> String {
        var output = ""
        let characters = Array(text)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            guard character == "$", index + 1 < characters.count else {
                output.append(character)
                index += 1
                continue
            }
            if characters[index + 1] == "$" {
                output.append("$")
                index += 2
                continue
            }
            guard characters[index + 1] == "{" else {
                output.append(character)
                index += 1
                continue
            }
            guard let close = characters[(index + 2)...].firstIndex(of: "}") else {
                throw ExpansionError(offset: index, message: "unterminated '${' (expected '${NAME}' or '${NAME:-default}')")
            }
            let body = String(characters[(index + 2)..<close])
            let name: String, fallback: String?
            if let separator = body.range(of: ":-") {
                name = String(body[..<separator.lowerBound])
                fallback = String(body[separator.upperBound...])
            } else {
                name = body
                fallback = nil
            }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), !name.first!.isNumber else {
                throw ExpansionError(offset: index, message: "'${\(body)}' is not a variable reference (expected '${NAME}' or '${NAME:-default}')")
            }
            if let value = environment[name], !(value.isEmpty && fallback != nil) {
                output += value
            } else if let fallback {
                output += fallback
            } else {
                throw ExpansionError(offset: index, message: "environment variable '\(name)' is not set (write '${\(name):-default}' to give a default)")
            }
            index = close + 1
        }
        return output
    }
}
