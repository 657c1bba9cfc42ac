public import Foundation

/// A JSON value: what pipelines pass between steps, what stages take as config, what the database stores.
///
/// Integers and floating-point numbers are kept apart so token counts and ids stay exact.
public enum JSON: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])
}

extension JSON {
    /// The member `key` of an object, or nil for any other value.
    public subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The value at a dotted path such as `usage.total_tokens`; array elements by index (`objects.0`).
    public func value(atPath path: some Sequence<Substring>) -> JSON? {
        var current = self
        for component in path {
            switch current {
            case .object(let members):
                guard let next = members[String(component)] else { return nil }
                current = next
            case .array(let elements):
                guard let index = Int(component), elements.indices.contains(index) else { return nil }
                current = elements[index]
            default:
                return nil
            }
        }
        return current
    }

    /// Where the first NUL character (U+0000) is, as a JSON pointer (`""` for the value itself), in a
    /// string or a key; nil when there is none. PostgreSQL's text and jsonb cannot store one, so
    /// input holding it is refused at the door.
    public var pointerToNUL: String? {
        switch self {
        case .string(let text):
            return text.unicodeScalars.contains("\u{0}") ? "" : nil
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                if let inner = element.pointerToNUL { return "/\(index)\(inner)" }
            }
            return nil
        case .object(let members):
            for key in members.keys.sorted() {
                let escaped = key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
                if key.unicodeScalars.contains("\u{0}") { return "/\(escaped.replacingOccurrences(of: "\u{0}", with: "\\u0000"))" }
                if let inner = members[key]!.pointerToNUL { return "/\(escaped)\(inner)" }
            }
            return nil
        default:
            return nil
        }
    }

    /// RFC 6901: `/data/0/id`, with `~1` for `/` and `~0` for `~`; `""` is the whole document.
    public func value(atPointer pointer: String) -> JSON? {
        guard !pointer.isEmpty else { return self }
        guard pointer.hasPrefix("/") else { return nil }
        let components = pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            Substring($0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~"))
        }
        return value(atPath: components)
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var intValue: Int? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value.rounded() == value && abs(value) < 9.0e15: return Int(value)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSON]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The JSON Schema type name of this value (`integer` for whole numbers).
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double(let value): return value.rounded() == value ? "integer" : "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

// MARK: - Text

extension JSON: CustomStringConvertible {
    /// Compact JSON text with object keys sorted: the canonical form (equal values give equal text).
    public var description: String { text(sortingKeys: true) }

    /// Compact JSON text with object keys in the dictionary's order, for `jsonb` parameters:
    /// PostgreSQL orders a `jsonb` value's keys itself, so sorting them here was work thrown away
    /// (`perf`: 4 % of a daemon running canvas jobs, every step output and event sorted).
    public var jsonbText: String { text(sortingKeys: false) }

    private func text(sortingKeys: Bool) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(64)
        write(to: &output, sortingKeys: sortingKeys)
        return String(decoding: output, as: UTF8.self)
    }

    /// Canonical UTF-8 bytes, as hashed for pipeline versions and idempotency keys.
    public var canonicalData: Data { Data(description.utf8) }

    /// Appends the compact text as UTF-8 bytes: bytes, not `String` appends, which cost a
    /// scalar at a time (perf put a third of a busy daemon's CPU in them).
    private func write(to output: inout [UInt8], sortingKeys: Bool) {
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value): output.append(contentsOf: String(value).utf8)
        case .double(let value): output.append(contentsOf: Self.format(value).utf8)
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                element.write(to: &output, sortingKeys: sortingKeys)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            if sortingKeys {
                for (index, key) in members.keys.sorted().enumerated() {
                    if index > 0 { output.append(UInt8(ascii: ",")) }
                    Self.writeMember(key, members[key]!, to: &output, sortingKeys: true)
                }
            } else {
                for (index, (key, value)) in members.enumerated() {
                    if index > 0 { output.append(UInt8(ascii: ",")) }
                    Self.writeMember(key, value, to: &output, sortingKeys: false)
                }
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    private static func writeMember(_ key: String, _ value: JSON, to output: inout [UInt8], sortingKeys: Bool) {
        writeString(key, to: &output)
        output.append(UInt8(ascii: ":"))
        value.write(to: &output, sortingKeys: sortingKeys)
    }

    private static func format(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value.rounded() == value, abs(value) < 1e15 { return String(Int(value)) }
        return "\(value)"
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A JSON string: quotes, backslash, control characters and DEL escaped; every other byte of the
    /// UTF-8 as it is, copied a run at a time between the bytes that need escaping.
    private static func writeString(_ value: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in
            var start = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F else { continue }
                output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                switch byte {
                case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case UInt8(ascii: "\n"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case UInt8(ascii: "\t"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                default:
                    output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                               hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]])
                }
                start = index + 1
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<bytes.count]))
        }
        output.append(UInt8(ascii: "\""))
    }
}

// MARK: - Parsing

/// JSON text that could not be parsed.
public struct JSONParseError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

extension JSON {
    /// Parses JSON text (`JSONParser`). Whole numbers become `.int`, others `.double`.
    public init(parsing data: Data) throws {
        self = try data.withUnsafeBytes { raw throws(JSONParseError) in
            try JSONParser.parse(raw.bindMemory(to: UInt8.self))
        }
    }

    /// Parses JSON text.
    public init(parsing text: String) throws {
        var text = text
        self = try text.withUTF8 { bytes throws(JSONParseError) in try JSONParser.parse(bytes) }
    }
}

extension JSON: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .int(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSON].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSON].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}
