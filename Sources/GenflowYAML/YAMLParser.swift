internal import CYAML
public import GenflowCore

/// Reads YAML text into a `YAMLNode` tree with 1-based positions, on libyaml's event parser.
///
/// Beyond libyaml it rejects duplicate keys, unknown aliases, more than one document, and alias
/// expansion past `maxNodes` (a "billion laughs" document). Errors are `Diagnostic`s.
public enum YAMLParser {
    /// Most nodes a document may expand to once aliases are resolved.
    public static let maxNodes = 200_000
    /// The deepest nesting of lists and mappings a file may have.
    public static let maxDepth = 128

    /// Parses the single document in `text`; an empty document is a null scalar.
    /// - Parameter file: the path reported in diagnostics.
    public static func parse(_ text: String, file: String) throws(Diagnostic) -> YAMLNode {
        try parse(bytes: Array(text.utf8), file: file)
    }

    /// Parses raw bytes, so invalid UTF-8 is reported by libyaml at its position.
    public static func parse(bytes: [UInt8], file: String) throws(Diagnostic) -> YAMLNode {
        let reader = EventReader(bytes: bytes, file: file)
        var builder = TreeBuilder(reader: reader, file: file)
        return try builder.document()
    }
}

/// One libyaml event, copied into Swift values so the C event can be freed at once.
private struct Event {
    var type: yaml_event_type_t
    var location: SourceLocation
    var text: String = ""
    var anchor: String?
    var tag: String?
    var style: YAMLScalar.Style = .plain
}

/// Owns a `yaml_parser_t` and the bytes it reads; both are freed in `deinit`.
private final class EventReader {
    private let parser: UnsafeMutablePointer<yaml_parser_t>
    private let bytes: UnsafeMutableBufferPointer<UInt8>
    private let file: String

    init(bytes source: [UInt8], file: String) {
        self.file = file
        parser = .allocate(capacity: 1)
        yaml_parser_initialize(parser)
        bytes = .allocate(capacity: max(source.count, 1))
        _ = bytes.initialize(from: source)
        yaml_parser_set_input_string(parser, bytes.baseAddress, source.count)
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
    }

    deinit {
        yaml_parser_delete(parser)
        parser.deallocate()
        bytes.deallocate()
    }

    func next() throws(Diagnostic) -> Event {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else { throw error() }
        defer { yaml_event_delete(&event) }
        var result = Event(
            type: event.type,
            location: SourceLocation(file: file, line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
        )
        switch event.type {
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            result.text = Self.string(scalar.value, length: scalar.length) ?? ""
            result.anchor = Self.string(scalar.anchor)
            result.tag = Self.string(scalar.tag)
            result.style = switch scalar.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: .literal
            case YAML_FOLDED_SCALAR_STYLE: .folded
            default: .plain
            }
        case YAML_SEQUENCE_START_EVENT:
            result.anchor = Self.string(event.data.sequence_start.anchor)
            result.tag = Self.string(event.data.sequence_start.tag)
        case YAML_MAPPING_START_EVENT:
            result.anchor = Self.string(event.data.mapping_start.anchor)
            result.tag = Self.string(event.data.mapping_start.tag)
        case YAML_ALIAS_EVENT:
            result.anchor = Self.string(event.data.alias.anchor)
        default:
            break
        }
        return result
    }

    /// libyaml's error as a diagnostic at the problem's position.
    private func error() -> Diagnostic {
        let parser = self.parser.pointee
        var message = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        if let context = parser.context {
            let mark = parser.context_mark
            message += " \(String(cString: context)) (started at line \(mark.line + 1), column \(mark.column + 1))"
        }
        let location: SourceLocation
        if parser.error == YAML_READER_ERROR {
            location = self.location(ofByte: parser.problem_offset)
            message = "invalid UTF-8 (\(message))"
        } else {
            location = SourceLocation(file: file, line: Int(parser.problem_mark.line) + 1, column: Int(parser.problem_mark.column) + 1)
        }
        return Diagnostic(at: location, message)
    }

    private func location(ofByte offset: Int) -> SourceLocation {
        var line = 1, column = 1
        for byte in bytes.prefix(offset) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return SourceLocation(file: file, line: line, column: column)
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, length: Int? = nil) -> String? {
        guard let pointer else { return nil }
        let count = length ?? strlen(UnsafeRawPointer(pointer).assumingMemoryBound(to: CChar.self))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }
}

/// Builds the node tree from events: resolves aliases and merge keys, rejects duplicate keys.
private struct TreeBuilder {
    let reader: EventReader
    let file: String
    private var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    private var nodeCount = 0
    /// Lists and mappings open around the current node: the tree is built (and later read) by
    /// recursion, so a file nested deeper than `YAMLParser.maxDepth` is refused, not a stack overflow.
    private var depth = 0

    init(reader: EventReader, file: String) {
        self.reader = reader
        self.file = file
    }

    mutating func document() throws(Diagnostic) -> YAMLNode {
        var event = try reader.next()  // STREAM-START
        event = try reader.next()
        if event.type == YAML_STREAM_END_EVENT {
            return YAMLNode(.scalar(YAMLScalar("")), at: SourceLocation(file: file, line: 1, column: 1))
        }
        let root = try node(from: try reader.next())
        _ = try reader.next()  // DOCUMENT-END
        let after = try reader.next()
        if after.type == YAML_DOCUMENT_START_EVENT {
            throw Diagnostic(at: after.location, "a file holds one YAML document; found a second one here")
        }
        return root
    }

    private mutating func node(from event: Event) throws(Diagnostic) -> YAMLNode {
        let before = nodeCount
        nodeCount += 1
        if event.type == YAML_SEQUENCE_START_EVENT || event.type == YAML_MAPPING_START_EVENT {
            depth += 1
            guard depth <= YAMLParser.maxDepth else {
                throw Diagnostic(at: event.location, "lists and mappings nested deeper than \(YAMLParser.maxDepth) levels")
            }
        }
        defer { if event.type == YAML_SEQUENCE_START_EVENT || event.type == YAML_MAPPING_START_EVENT { depth -= 1 } }
        let node: YAMLNode
        switch event.type {
        case YAML_SCALAR_EVENT:
            node = YAMLNode(.scalar(YAMLScalar(event.text, style: event.style)), at: event.location, tag: event.tag)
        case YAML_SEQUENCE_START_EVENT:
            var elements: [YAMLNode] = []
            while true {
                let next = try reader.next()
                if next.type == YAML_SEQUENCE_END_EVENT { break }
                elements.append(try self.node(from: next))
            }
            node = YAMLNode(.sequence(elements), at: event.location, tag: event.tag)
        case YAML_MAPPING_START_EVENT:
            node = YAMLNode(.mapping(try mappingPairs()), at: event.location, tag: event.tag)
        case YAML_ALIAS_EVENT:
            let name = event.anchor ?? ""
            guard let anchored = anchors[name] else {
                throw Diagnostic(at: event.location, "unknown alias '*\(name)'; define it first with '&\(name)'")
            }
            nodeCount += anchored.size
            if nodeCount > YAMLParser.maxNodes {
                throw Diagnostic(at: event.location, "document expands to more than \(YAMLParser.maxNodes) nodes through aliases")
            }
            return anchored.node
        default:
            throw Diagnostic(at: event.location, "unexpected YAML event")
        }
        if nodeCount > YAMLParser.maxNodes {
            throw Diagnostic(at: event.location, "document has more than \(YAMLParser.maxNodes) nodes")
        }
        if let anchor = event.anchor {
            anchors[anchor] = (node, nodeCount - before)
        }
        return node
    }

    private mutating func mappingPairs() throws(Diagnostic) -> [YAMLPair] {
        var pairs: [YAMLPair] = []
        var firstSeen: [String: SourceLocation] = [:]
        var merged: [YAMLPair] = []
        while true {
            let next = try reader.next()
            if next.type == YAML_MAPPING_END_EVENT { break }
            let key = try node(from: next)
            let value = try node(from: try reader.next())
            if key.scalar == YAMLScalar("<<") {
                merged += try mergeSources(value)
                continue
            }
            let keyText = key.keyText ?? key.json.description
            if let first = firstSeen[keyText] {
                throw Diagnostic(at: key.location, "duplicate key '\(keyText)' (first defined at line \(first.line), column \(first.column))")
            }
            firstSeen[keyText] = key.location
            pairs.append(YAMLPair(key: key, value: value))
        }
        for pair in merged {
            let keyText = pair.key.keyText ?? pair.key.json.description
            if firstSeen[keyText] == nil {
                firstSeen[keyText] = pair.key.location
                pairs.append(pair)
            }
        }
        return pairs
    }

    /// The pairs a merge key (`<<: *base` or `<<: [*a, *b]`) brings in, earlier sources first.
    private func mergeSources(_ value: YAMLNode) throws(Diagnostic) -> [YAMLPair] {
        if let pairs = value.mapping { return pairs }
        if let sources = value.sequence {
            var pairs: [YAMLPair] = []
            for source in sources {
                guard let sourcePairs = source.mapping else {
                    throw Diagnostic(at: source.location, "a merge key ('<<') takes mappings, not \(source.kindDescription)")
                }
                pairs += sourcePairs
            }
            return pairs
        }
        throw Diagnostic(at: value.location, "a merge key ('<<') takes a mapping or a list of mappings, not \(value.kindDescription)")
    }
}
