public import GenflowCore

/// Canvas object schema v1 (SPEC §6): what `parse_canvas_objects` accepts and `persist.canvas`
/// stores. Shapes map one-to-one onto Excalidraw elements.
public enum CanvasSchema {
    public static let types = ["rectangle", "ellipse", "diamond", "text", "line", "arrow", "frame", "note"]
    public static let fields = [
        "id", "type", "x", "y", "width", "height", "angle", "text", "points", "strokeColor", "backgroundColor",
        "fillStyle", "strokeWidth", "strokeStyle", "opacity", "fontSize", "start", "end",
    ]
    public static let fillStyles = ["hachure", "cross-hatch", "solid", "zigzag"]
    public static let strokeStyles = ["solid", "dashed", "dotted"]
    public static let maxObjects = 200
    public static let coordinateLimit = 100_000.0
    public static let sizeRange = 1.0...10_000.0

    /// The `response_format` asking an OpenAI-compatible model for `{"objects": [...]}` in this
    /// schema, in strict structured-output mode: every field listed, optional ones nullable. Made
    /// once (built at every model call, it was 3 % of the daemon on canvas jobs).
    public static let responseFormat: JSON = {
        func nullable(_ type: String, _ extra: [String: JSON] = [:]) -> JSON {
            .object(extra.merging(["type": [.string(type), "null"]]) { $1 })
        }
        let properties: [String: JSON] = [
            "id": ["type": "string"], "type": ["type": "string", "enum": .array(types.map(JSON.string))],
            "x": ["type": "number"], "y": ["type": "number"],
            "width": nullable("number"), "height": nullable("number"), "angle": nullable("number"), "text": nullable("string"),
            "points": nullable("array", ["items": ["type": "array", "items": ["type": "number"]]]),
            "strokeColor": nullable("string"), "backgroundColor": nullable("string"),
            "fillStyle": nullable("string", ["enum": .array(fillStyles.map(JSON.string) + [.null])]),
            "strokeWidth": nullable("number"),
            "strokeStyle": nullable("string", ["enum": .array(strokeStyles.map(JSON.string) + [.null])]),
            "opacity": nullable("number"), "fontSize": nullable("number"), "start": nullable("string"), "end": nullable("string"),
        ]
        let object: JSON = [
            "type": "object", "additionalProperties": false, "required": .array(fields.map(JSON.string)), "properties": .object(properties),
        ]
        return ["type": "json_schema", "json_schema": [
            "name": "canvas_objects", "strict": true,
            "schema": ["type": "object", "additionalProperties": false, "required": ["objects"], "properties": ["objects": ["type": "array", "items": object]]],
        ]]
    }()

    /// Checks one object. Returns it (with unknown fields removed) or why it is refused; `notes`
    /// gets a line for each field that was removed.
    public static func validate(_ value: JSON, notes: inout [String]) -> Result<JSON, CanvasProblem> {
        guard case .object(var members) = value else { return .failure(CanvasProblem(id: nil, "is \(value.typeName), not an object")) }
        let id = members["id"]?.stringValue
        func problem(_ message: String) -> Result<JSON, CanvasProblem> { .failure(CanvasProblem(id: id, message)) }
        guard let id, !id.isEmpty, Self.count(of: id, isAtMost: 200) else { return problem("has no 'id' (a non-empty string)") }
        guard let type = members["type"]?.stringValue else { return problem("has no 'type'") }
        guard types.contains(type) else {
            return problem("has unknown type '\(type)'\(Suggestions.didYouMean(type, in: types)) (types: \(types.joined(separator: ", ")))")
        }
        // Sorted (for the notes' order) only when there is something to note: most objects have none.
        if members.keys.contains(where: { !fields.contains($0) }) {
            for key in members.keys.sorted() where !fields.contains(key) {
                members[key] = nil
                notes.append("object '\(id)': unknown field '\(key)' removed")
            }
        }
        // Strict structured output sends every optional field, null when unused: null is absent.
        if members.values.contains(where: { if case .null = $0 { true } else { false } }) {
            members = members.filter { $0.value != .null }
        }
        for name in ["x", "y"] {
            guard let number = finite(members[name]) else { return problem("'\(name)' must be a finite number, not \(describe(members[name]))") }
            guard abs(number) <= coordinateLimit else { return problem("'\(name)' \(format(number)) is beyond ±\(Int(coordinateLimit))") }
        }
        for name in ["width", "height"] where members[name] != nil {
            guard let number = finite(members[name]) else { return problem("'\(name)' must be a finite number, not \(describe(members[name]))") }
            guard sizeRange.contains(number) else { return problem("'\(name)' \(format(number)) is outside 1–10000") }
        }
        if members["angle"] != nil, finite(members["angle"]) == nil { return problem("'angle' must be a finite number, not \(describe(members["angle"]))") }
        if let text = members["text"] {
            guard case .string(let string) = text, Self.count(of: string, isAtMost: 10_000) else { return problem("'text' must be a string of at most 10000 characters") }
        }
        if type == "text", (members["text"]?.stringValue ?? "").isEmpty { return problem("is a text object without 'text'") }
        for name in ["strokeColor", "backgroundColor"] {
            if let colour = members[name], !isColour(colour) {
                return problem("'\(name)' must be #rgb, #rrggbb, #rrggbbaa or transparent, not \(describe(colour))")
            }
        }
        if let style = members["fillStyle"], !(style.stringValue.map(fillStyles.contains) ?? false) {
            return problem("'fillStyle' must be one of \(fillStyles.joined(separator: ", ")), not \(describe(style))")
        }
        if let style = members["strokeStyle"], !(style.stringValue.map(strokeStyles.contains) ?? false) {
            return problem("'strokeStyle' must be one of \(strokeStyles.joined(separator: ", ")), not \(describe(style))")
        }
        if let problem = bounded(members, "strokeWidth", 0.1...100) ?? bounded(members, "opacity", 0...100) ?? bounded(members, "fontSize", 1...1_000) {
            return .failure(CanvasProblem(id: id, problem))
        }
        if type == "line" || type == "arrow" {
            guard case .array(let points)? = members["points"] else { return problem("is a \(type) without 'points'") }
            guard (2...100).contains(points.count) else { return problem("has \(points.count) points; a \(type) takes 2 to 100") }
            for point in points {
                guard case .array(let pair) = point, pair.count == 2, finite(pair[0]) != nil, finite(pair[1]) != nil else {
                    return problem("has a point that is not [x, y] with finite numbers: \(point)")
                }
            }
            guard finite(points[0].arrayValue?[0]) == 0, finite(points[0].arrayValue?[1]) == 0 else {
                return problem("points must start at [0, 0], not \(points[0])")
            }
        } else if members["points"] != nil {
            members["points"] = nil
            notes.append("object '\(id)': 'points' removed (only lines and arrows have points)")
        }
        for name in ["start", "end"] {
            if let target = members[name], target.stringValue == nil { return problem("'\(name)' must name an object by its id, not \(describe(target))") }
        }
        return .success(.object(members))
    }

    private static func bounded(_ members: [String: JSON], _ name: String, _ range: ClosedRange<Double>) -> String? {
        guard let value = members[name] else { return nil }
        guard let number = finite(value), range.contains(number) else {
            return "'\(name)' must be a number from \(format(range.lowerBound)) to \(format(range.upperBound)), not \(describe(value))"
        }
        return nil
    }

    /// The number, when `value` is a finite JSON number (never a string such as "5").
    static func finite(_ value: JSON?) -> Double? {
        switch value {
        case .int(let number)?: return Double(number)
        case .double(let number)? where number.isFinite: return number
        default: return nil
        }
    }

    static func isColour(_ value: JSON) -> Bool {
        guard let text = value.stringValue else { return false }
        if text == "transparent" { return true }
        // ASCII, the usual case, byte by byte; anything else by characters, as it always was
        // (`isHexDigit` takes fullwidth digits too). Characters cost 1 % of the daemon on canvas jobs.
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            let bytes = text.utf8
            return bytes.first == UInt8(ascii: "#") && [4, 7, 9].contains(bytes.count) && bytes.dropFirst().allSatisfy { byte in
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
            }
        }
        guard text.first == "#" else { return false }
        let digits = text.dropFirst()
        return [3, 6, 8].contains(digits.count) && digits.allSatisfy(\.isHexDigit)
    }

    /// Whether `text` has at most `limit` characters, without counting them when its UTF-8 is
    /// that short already (a character is at least one byte).
    static func count(of text: String, isAtMost limit: Int) -> Bool {
        text.utf8.count <= limit || text.count <= limit
    }

    static func describe(_ value: JSON?) -> String {
        switch value {
        case nil: return "missing"
        case .double(let number)? where number.isNaN: return "NaN"
        case .double(let number)? where number.isInfinite: return number > 0 ? "Infinity" : "-Infinity"
        case .string(let text)?: return "the string \"\(text.prefix(40))\""
        case let other?: return "\(other)"
        }
    }

    static func format(_ number: Double) -> String {
        number.rounded() == number && abs(number) < 1e15 ? String(Int(number)) : String(number)
    }
}

/// Why one object was refused.
public struct CanvasProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var id: String?
    public var message: String

    public init(id: String?, _ message: String) {
        self.id = id
        self.message = message
    }

    public var description: String { "object \(id.map { "'\($0)'" } ?? "without id") \(message)" }
}
