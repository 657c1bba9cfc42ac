public import GenflowCore
internal import Mustache

/// A step's `with:` value compiled once at load: literals stay as they are, a string that is exactly
/// one `{{reference}}` becomes that reference (keeping its JSON type), other strings with tags are
/// mustache templates rendered to text, without HTML escaping.
public struct ValueTemplate: Sendable {
    private let node: Node

    private init(_ node: Node) { self.node = node }

    /// Compiles `value`. Throws `TemplateScanner.SyntaxError` for a malformed tag, with the offset in
    /// the string where it is.
    public static func compile(_ value: JSON) throws(TemplateScanner.SyntaxError) -> ValueTemplate {
        ValueTemplate(try Node.compile(value))
    }

    /// Renders against `scope` (`{input, steps: {id: {output}}, job}`). A reference to nothing is null.
    public func render(_ scope: JSON) -> JSON {
        node.render(scope)
    }
}

private indirect enum Node: Sendable {
    case literal(JSON)
    case reference([String])
    case text(MustacheTemplate)
    case array([Node])
    case object([String: Node])

    static func compile(_ value: JSON) throws(TemplateScanner.SyntaxError) -> Node {
        switch value {
        case .string(let text) where TemplateScanner.isTemplate(text):
            _ = try TemplateScanner.tags(in: text)
            if let reference = TemplateScanner.singleReference(in: text) {
                return .reference(reference.split(separator: ".").map(String.init))
            }
            do {
                return .text(try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + text))
            } catch {
                throw TemplateScanner.SyntaxError(offset: 0, message: "invalid template: \(error)")
            }
        case .array(let elements):
            var compiled: [Node] = []
            for element in elements { compiled.append(try compile(element)) }
            return compiled.allSatisfy(\.isLiteral) ? .literal(value) : .array(compiled)
        case .object(let members):
            var compiled: [String: Node] = [:]
            for (key, member) in members { compiled[key] = try compile(member) }
            return compiled.values.allSatisfy(\.isLiteral) ? .literal(value) : .object(compiled)
        default:
            return .literal(value)
        }
    }

    private var isLiteral: Bool {
        if case .literal = self { return true }
        return false
    }

    func render(_ scope: JSON) -> JSON {
        switch self {
        case .literal(let value): return value
        case .reference(let path): return scope.value(atPath: path.map { Substring($0) }) ?? .null
        case .text(let template): return .string(template.render(MustacheValue.wrap(scope)))
        case .array(let elements): return .array(elements.map { $0.render(scope) })
        case .object(let members): return .object(members.mapValues { $0.render(scope) })
        }
    }
}

/// JSON presented to mustache: objects are parents, arrays are sequences, and containers rendered
/// in a `{{tag}}` print as JSON text rather than Swift's debug description.
enum MustacheValue {
    static func wrap(_ value: JSON) -> Any {
        switch value {
        case .null: return Null()
        case .bool(let value): return value
        case .int(let value): return value
        case .double(let value): return value.rounded() == value && abs(value) < 1e15 ? Int(value) as Any : value
        case .string(let value): return value
        case .array(let elements): return List(json: value, elements: elements.map(wrap))
        case .object(let members): return Object(json: value, members: members)
        }
    }

    struct Null: MustacheCustomRenderable {
        var renderText: String { "" }
        var isNull: Bool { true }
    }

    struct List: MustacheSequence, MustacheCustomRenderable {
        let json: JSON
        let elements: [Any]
        func makeIterator() -> IndexingIterator<[Any]> { elements.makeIterator() }
        var renderText: String { json.description }
        var isNull: Bool { false }
    }

    struct Object: MustacheParent, MustacheCustomRenderable {
        let json: JSON
        let members: [String: JSON]
        func child(named name: String) -> Any? { members[name].map(MustacheValue.wrap) }
        var renderText: String { json.description }
        var isNull: Bool { false }
    }
}
