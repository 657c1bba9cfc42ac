/// Finds the `{{…}}` tags of a mustache template without rendering it, so references can be checked
/// at load time (a misspelt `{{steps.genrate.output}}` is a validation error, not an empty string).
public enum TemplateScanner {
    /// The deepest nesting of `{{#section}}`s a template may have.
    public static let maxSectionDepth = 32
    /// The most tags one template may have, and its longest length in characters.
    public static let maxTags = 1_000
    public static let maxTemplateLength = 32_000

    /// A tag in a template.
    public struct Tag: Sendable, Hashable {
        public enum Kind: Sendable, Hashable {
            case variable, unescaped, section, invertedSection, sectionEnd, comment, partial, delimiters, pragma
        }

        public var kind: Kind
        /// The name inside the tag, trimmed; for a transform `upper(name)`, just `name`.
        public var name: String
        /// Character offset of the opening `{{` in the template text.
        public var offset: Int
        /// Number of sections enclosing the tag: names inside a section may be relative to it.
        public var depth: Int
        /// Whether the tag applies a transform (`{{uppercased(name)}}`), so it renders to text.
        public var hasTransform: Bool
    }

    /// A malformed tag.
    public struct SyntaxError: Error, Sendable, Hashable {
        public var offset: Int
        public var message: String
    }

    /// Whether `text` holds any tag at all.
    public static func isTemplate(_ text: String) -> Bool {
        text.contains("{{")
    }

    /// The reference when `text` is exactly one variable tag (`{{ steps.a.output }}`, spaces allowed
    /// around it): such a value keeps the referenced JSON type instead of rendering to a string.
    public static func singleReference(in text: String) -> String? {
        let trimmed = text.trimmingSpaces
        guard trimmed.hasPrefix("{{"), trimmed.hasSuffix("}}"),
              let tags = try? tags(in: trimmed), tags.count == 1,
              let tag = tags.first, tag.kind == .variable || tag.kind == .unescaped,
              !tag.hasTransform, tag.offset == 0, trimmed.count == tagLength(tag, in: trimmed) else { return nil }
        return tag.name
    }

    private static func tagLength(_ tag: Tag, in text: String) -> Int {
        let characters = Array(text)
        let triple = characters.count >= 3 && characters[2] == "{"
        guard let close = findClose(characters, from: triple ? 3 : 2, closer: triple ? "}}}" : "}}") else { return -1 }
        return close + (triple ? 3 : 2)
    }

    /// Every tag of `text`, in order. Set-delimiter tags and partials are refused: pipelines use
    /// plain `{{ }}` tags and have no partials.
    public static func tags(in text: String) throws(SyntaxError) -> [Tag] {
        let characters = Array(text)
        // The template engine's parser slows down with the product of a template's length and its
        // tags: a template past these bounds is refused at load time, not minutes into a reload.
        guard characters.count <= maxTemplateLength else {
            throw SyntaxError(offset: 0, message: "a template of \(characters.count) characters; templates may have at most \(maxTemplateLength)")
        }
        var tags: [Tag] = []
        var openSections: [(name: String, offset: Int)] = []
        var index = 0
        while index + 1 < characters.count {
            guard characters[index] == "{", characters[index + 1] == "{" else {
                index += 1
                continue
            }
            let start = index
            let isTriple = index + 2 < characters.count && characters[index + 2] == "{"
            let bodyStart = index + (isTriple ? 3 : 2)
            let closer = isTriple ? "}}}" : "}}"
            guard let close = findClose(characters, from: bodyStart, closer: closer) else {
                throw SyntaxError(offset: start, message: "unclosed tag '\(String(characters[start..<min(characters.count, start + 20)]))' (expected '\(closer)')")
            }
            var body = String(characters[bodyStart..<close]).trimmingSpaces
            index = close + closer.count
            var kind: Tag.Kind = isTriple ? .unescaped : .variable
            if !isTriple, let sigil = body.first, "#^/!>=&%".contains(sigil) {
                kind = switch sigil {
                case "#": .section
                case "^": .invertedSection
                case "/": .sectionEnd
                case "!": .comment
                case ">": .partial
                case "=": .delimiters
                case "&": .unescaped
                default: .pragma
                }
                body = String(body.dropFirst()).trimmingSpaces
            }
            switch kind {
            case .comment:
                continue
            case .pragma:
                throw SyntaxError(offset: start, message: "pragmas ('{{%\(body)}}') are not available in pipeline templates")
            case .partial:
                throw SyntaxError(offset: start, message: "partials ('{{>\(body)}}') are not available in pipeline templates")
            case .delimiters:
                throw SyntaxError(offset: start, message: "changing delimiters ('{{=…=}}') is not supported in pipeline templates")
            default:
                break
            }
            let name = referenceName(body)
            guard !name.isEmpty, name == "." || name.allSatisfy({ $0.isLetter || $0.isNumber || "_.-".contains($0) }) else {
                throw SyntaxError(offset: start, message: "'{{\(String(characters[bodyStart..<close]))}}' is not a reference (expected a name such as input.instructions)")
            }
            if kind == .sectionEnd {
                guard let open = openSections.popLast() else {
                    throw SyntaxError(offset: start, message: "'{{/\(name)}}' closes a section that was never opened")
                }
                guard open.name == name else {
                    throw SyntaxError(offset: start, message: "'{{/\(name)}}' closes section '\(open.name)', which was opened as '{{#\(open.name)}}'")
                }
            }
            guard tags.count < maxTags else { throw SyntaxError(offset: start, message: "more than \(maxTags) tags in one template") }
            tags.append(Tag(kind: kind, name: name, offset: start, depth: openSections.count, hasTransform: name != body))
            if kind == .section || kind == .invertedSection {
                // The template engine parses sections by recursion: a deep pile would overflow its stack.
                guard openSections.count < Self.maxSectionDepth else {
                    throw SyntaxError(offset: start, message: "sections nested deeper than \(Self.maxSectionDepth) levels")
                }
                openSections.append((name, start))
            }
        }
        if let open = openSections.last {
            throw SyntaxError(offset: open.offset, message: "section '{{#\(open.name)}}' is never closed (expected '{{/\(open.name)}}')")
        }
        return tags
    }

    /// `upper(input.name)` → `input.name`; a plain name is returned as is.
    private static func referenceName(_ body: String) -> String {
        guard let open = body.lastIndex(of: "("), body.hasSuffix(")") else { return body }
        return String(body[body.index(after: open)..<body.index(before: body.endIndex)]).trimmingSpaces
    }

    private static func findClose(_ characters: [Character], from start: Int, closer: String) -> Int? {
        let closer = Array(closer)
        var index = start
        while index + closer.count <= characters.count {
            if Array(characters[index..<index + closer.count]) == closer { return index }
            index += 1
        }
        return nil
    }
}

extension String {
    /// Without leading and trailing whitespace, in one pass from each end (index steps, not
    /// `dropLast()` copies: a tag padded with 20,000 spaces took seconds).
    var trimmingSpaces: String {
        guard let start = firstIndex(where: { !$0.isWhitespace }), let end = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[start...end])
    }
}
