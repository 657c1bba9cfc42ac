public import GenflowCore

/// A forgiving JSON reader for what models write: trailing commas, comments, single-quoted
/// strings, unquoted keys, `NaN` / `Infinity` (kept as non-finite numbers so validation can name
/// them), and text cut off mid-way — a list keeps the elements that were complete, and the cut-off
/// element is dropped.
public enum LenientJSON {
    /// What was read and whether the text ended before the value did.
    public struct Reading: Sendable {
        public var value: JSON
        public var isTruncated: Bool
    }

    /// Text that is not JSON even by these rules.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var offset: Int
        public var message: String
        public var description: String { "\(message) at character \(offset)" }
    }

    /// Reads one value starting at the beginning of `text` (after whitespace).
    public static func read(_ text: String) throws(Failure) -> Reading {
        var parser = Parser(Array(text.unicodeScalars))
        do throws(ParseError) {
            let value = try parser.value()
            return Reading(value: value, isTruncated: parser.hitEnd)
        } catch {
            switch error {
            case .truncated: throw Failure(offset: parser.index, message: "text ends inside the first value")
            case .invalid(let offset, let message): throw Failure(offset: offset, message: message)
            }
        }
    }
}

private enum ParseError: Error {
    case truncated
    case invalid(Int, String)
}

private struct Parser {
    let scalars: [Unicode.Scalar]
    var index = 0
    /// Set once the text ran out inside a value.
    var hitEnd = false
    /// Lists and objects open around the current position; past `maxDepth` the text is refused
    /// (a reply of a million `[` must not overflow the stack).
    var depth = 0
    static let maxDepth = 256

    mutating func enter() throws(ParseError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw .invalid(index, "lists and objects nested deeper than \(Self.maxDepth) levels") }
    }

    init(_ scalars: [Unicode.Scalar]) {
        self.scalars = scalars
    }

    var atEnd: Bool { index >= scalars.count }
    var current: Unicode.Scalar? { atEnd ? nil : scalars[index] }

    mutating func skipSpace() {
        while let scalar = current {
            // ASCII space, tab and line breaks first: the Unicode property lookup is slow on a hot path.
            if scalar.value < 0x80 ? (scalar == " " || (0x09...0x0D).contains(scalar.value)) : scalar.properties.isWhitespace {
                index += 1
            } else if scalar == "/", index + 1 < scalars.count, scalars[index + 1] == "/" {
                while let c = current, c != "\n" { index += 1 }
            } else if scalar == "/", index + 1 < scalars.count, scalars[index + 1] == "*" {
                index += 2
                while !atEnd && !(scalars[index] == "*" && index + 1 < scalars.count && scalars[index + 1] == "/") { index += 1 }
                index = min(index + 2, scalars.count)
            } else {
                return
            }
        }
    }

    mutating func value() throws(ParseError) -> JSON {
        skipSpace()
        guard let scalar = current else {
            hitEnd = true
            throw .truncated
        }
        switch scalar {
        case "[": return try array()
        case "{": return try object()
        case "\"", "'": return .string(try string())
        default:
            if scalar == "-" || scalar == "+" || scalar == "." || ("0"..."9").contains(scalar) { return try number() }
            let word = identifier()
            switch word {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "null", "undefined", "None": return .null
            case "NaN": return .double(.nan)
            case "Infinity": return .double(.infinity)
            case "":
                throw .invalid(index, "unexpected character '\(scalar)'")
            default:
                if atEnd, ["true", "false", "null", "NaN", "Infinity"].contains(where: { $0.hasPrefix(word) }) {
                    hitEnd = true
                    throw .truncated
                }
                throw .invalid(index - word.unicodeScalars.count, "unexpected word '\(word)'")
            }
        }
    }

    mutating func identifier() -> String {
        var word = String.UnicodeScalarView()
        while let scalar = current, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "$" {
            word.append(scalar)
            index += 1
        }
        return String(word)
    }

    mutating func number() throws(ParseError) -> JSON {
        let start = index
        var text = ""
        if current == "+" { index += 1 } else if current == "-" { text.append("-"); index += 1 }
        if identifierAhead("Infinity") {
            index += 8
            return .double(text == "-" ? -.infinity : .infinity)
        }
        while let scalar = current, ("0"..."9").contains(scalar) || ".eE+-".unicodeScalars.contains(scalar) {
            text.unicodeScalars.append(scalar)
            index += 1
        }
        if atEnd {
            hitEnd = true
            throw .truncated
        }
        if let integer = Int(text) { return .int(integer) }
        if let double = Double(text.hasPrefix(".") ? "0" + text : text.hasPrefix("-.") ? "-0" + text.dropFirst() : text) {
            return .double(double)
        }
        throw .invalid(start, "malformed number '\(text)'")
    }

    func identifierAhead(_ word: String) -> Bool {
        let target = Array(word.unicodeScalars)
        guard index + target.count <= scalars.count else { return false }
        return Array(scalars[index..<index + target.count]) == target
    }

    mutating func string() throws(ParseError) -> String {
        let quote = current!
        index += 1
        var result = String.UnicodeScalarView()
        while true {
            guard let scalar = current else {
                hitEnd = true
                throw .truncated
            }
            index += 1
            if scalar == quote { return String(result) }
            guard scalar == "\\" else {
                result.append(scalar)
                continue
            }
            guard let escaped = current else {
                hitEnd = true
                throw .truncated
            }
            index += 1
            switch escaped {
            case "n": result.append("\n")
            case "t": result.append("\t")
            case "r": result.append("\r")
            case "b": result.append("\u{8}")
            case "f": result.append("\u{c}")
            case "u":
                let code = try hex4()
                // A high surrogate joins the low one after it; anything else after it (another high
                // surrogate, a plain escape) is read on its own, and a lone surrogate becomes U+FFFD.
                if (0xD800...0xDBFF).contains(code), current == "\\", index + 1 < scalars.count, scalars[index + 1] == "u" {
                    let mark = index
                    index += 2
                    let low = try hex4()
                    if (0xDC00...0xDFFF).contains(low) {
                        result.append(Unicode.Scalar(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)) ?? "\u{FFFD}")
                        continue
                    }
                    index = mark
                }
                result.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: result.append(escaped)
            }
        }
    }

    mutating func hex4() throws(ParseError) -> UInt32 {
        guard index + 4 <= scalars.count else {
            hitEnd = true
            throw .truncated
        }
        let text = String(String.UnicodeScalarView(scalars[index..<index + 4]))
        guard let code = UInt32(text, radix: 16) else { throw .invalid(index, "malformed \\u escape") }
        index += 4
        return code
    }

    /// A list keeps its complete elements when the text ends inside it.
    mutating func array() throws(ParseError) -> JSON {
        try enter()
        defer { depth -= 1 }
        index += 1
        var elements: [JSON] = []
        while true {
            skipSpace()
            guard let scalar = current else {
                hitEnd = true
                return .array(elements)
            }
            if scalar == "]" {
                index += 1
                return .array(elements)
            }
            if scalar == "," {
                index += 1
                continue
            }
            do throws(ParseError) {
                let element = try value()
                if hitEnd { return .array(elements) }
                elements.append(element)
            } catch {
                guard case .truncated = error else { throw error }
                return .array(elements)
            }
        }
    }

    /// An object cut off by the end of the text is incomplete: the caller drops it. One cut inside
    /// a list member keeps that member's complete elements (`{"objects": [{…}, {…` streamed by a
    /// structured-output model); inside a list, the whole object is still dropped by `array()`.
    mutating func object() throws(ParseError) -> JSON {
        try enter()
        defer { depth -= 1 }
        index += 1
        var members: [String: JSON] = [:]
        while true {
            skipSpace()
            guard let scalar = current else {
                hitEnd = true
                throw .truncated
            }
            if scalar == "}" {
                index += 1
                return .object(members)
            }
            if scalar == "," {
                index += 1
                continue
            }
            let key: String
            if scalar == "\"" || scalar == "'" {
                key = try string()
            } else {
                key = identifier()
                guard !key.isEmpty else { throw .invalid(index, "expected a key, found '\(scalar)'") }
            }
            skipSpace()
            guard let colon = current else {
                hitEnd = true
                throw .truncated
            }
            guard colon == ":" else { throw .invalid(index, "expected ':' after key '\(key)'") }
            index += 1
            let member = try value()
            if hitEnd {
                guard case .array = member else { throw .truncated }
                members[key] = member
                return .object(members)
            }
            if members.isEmpty { members.reserveCapacity(8) }  // as JSONParser: no rehash at 1, 3 and 6 keys
            members[key] = member
        }
    }
}
