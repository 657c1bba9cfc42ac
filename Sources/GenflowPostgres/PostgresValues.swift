/// A Swift value sent as a query parameter, in PostgreSQL's text format.
public protocol PostgresEncodable: Sendable {
    var postgresText: String { get }
}

/// A Swift value read from PostgreSQL's text format.
public protocol PostgresDecodable {
    init?(postgresText: String)
}

extension String: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { self }
    public init?(postgresText: String) { self = postgresText }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { self ? "t" : "f" }
    public init?(postgresText: String) {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}

/// A one-dimensional array parameter in PostgreSQL's text form (`{"a",NULL,"b\"c"}`), for
/// set-based statements that take a column of values through `unnest($1::text[])`. Cast it to the
/// element type in the SQL (`$1::uuid[]`, `$2::jsonb[]`); every element is sent quoted.
public struct PostgresArray: PostgresEncodable {
    public var elements: [String?]

    public init(_ elements: [String?]) {
        self.elements = elements
    }

    public init<T: PostgresEncodable>(_ values: [T?]) {
        elements = values.map { $0?.postgresText }
    }

    public var postgresText: String {
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(elements.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (index, element) in elements.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard var text = element else {
                bytes.append(contentsOf: "NULL".utf8)
                continue
            }
            bytes.append(UInt8(ascii: "\""))
            text.withUTF8 { utf8 in
                // Runs between the quotes and backslashes that need one in front go in one copy.
                var start = 0
                for position in 0..<utf8.count where utf8[position] == UInt8(ascii: "\"") || utf8[position] == UInt8(ascii: "\\") {
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<position]))
                    bytes.append(UInt8(ascii: "\\"))
                    start = position
                }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<utf8.count]))
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }
}
