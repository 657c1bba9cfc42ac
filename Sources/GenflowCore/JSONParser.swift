/// A strict JSON (RFC 8259) parser over UTF-8 bytes, straight into `JSON`.
///
/// It replaced `JSONDecoder` with `JSON: Decodable`, which tried each type in turn and threw for
/// every miss: a profile of the daemon running canvas jobs found 87 % of its CPU there, parsing the
/// data of events on their way to WebSocket clients. Numbers follow what that decoder did: a
/// number that is a whole value within `Int` (`42`, `2.0`, `1e2`) is `.int`, any other finite one
/// `.double`; out of range (`1e400`) is an error. A leading byte order mark is skipped; a repeated
/// key keeps its last value; nesting deeper than 512 is refused rather than overflowing the stack.
struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    static let maxDepth = 512

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONParseError) -> JSON {
        var parser = JSONParser(bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.index = 3 }
        parser.skipWhitespace()
        let value = try parser.value()
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.failure("unexpected text after the value") }
        return value
    }

    private func failure(_ message: String) -> JSONParseError {
        JSONParseError(message: "invalid JSON: \(message) at byte \(index)")
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(JSONParseError) {
        guard current == byte else { throw failure(current == nil ? "unexpected end of input, expected \(what)" : "expected \(what)") }
        index += 1
    }

    private mutating func value() throws(JSONParseError) -> JSON {
        guard let byte = current else { throw failure("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try container(isObject: true)
        case UInt8(ascii: "["): return try container(isObject: false)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw failure("unexpected character '\(Unicode.Scalar(byte).escaped(asASCII: true))'")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let text = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - index >= text.count, bytes[index..<index + text.count].elementsEqual(text) else {
            throw failure("unknown literal (expected \(word))")
        }
        index += text.count
    }

    /// An object (`isObject`) or an array, from its opening bracket to its closing one.
    private mutating func container(isObject: Bool) throws(JSONParseError) -> JSON {
        depth += 1
        guard depth <= Self.maxDepth else { throw failure("nested deeper than \(Self.maxDepth) levels") }
        let close = UInt8(ascii: isObject ? "}" : "]"), what = isObject ? "',' or '}' in an object" : "',' or ']' in an array"
        var members: [String: JSON] = [:], elements: [JSON] = []
        index += 1
        skipWhitespace()
        if current == close {
            index += 1
        } else {
            while true {
                if isObject {
                    guard current == UInt8(ascii: "\"") else { throw failure(current == nil ? "unexpected end of input in an object" : "expected a key in quotes") }
                    let key = try string()
                    skipWhitespace()
                    try expect(UInt8(ascii: ":"), "':' after a key")
                    skipWhitespace()
                    // Room for a canvas object's keys at once: grown from empty, a dictionary was
                    // rehashed at 1, 3 and 6 keys (perf: 3 % of the daemon on canvas jobs).
                    if members.isEmpty { members.reserveCapacity(8) }
                    members[key] = try value()
                } else {
                    elements.append(try value())
                }
                skipWhitespace()
                guard current == UInt8(ascii: ",") else { break }
                index += 1
                skipWhitespace()
            }
            try expect(close, what)
        }
        depth -= 1
        return isObject ? .object(members) : .array(elements)
    }

    private mutating func string() throws(JSONParseError) -> String {
        index += 1
        let start = index
        // The common case: no escapes, one validated copy.
        while let byte = current, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\"), byte >= 0x20 { index += 1 }
        if current == UInt8(ascii: "\"") {
            defer { index += 1 }
            return try text(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        }
        var buffer = Array(bytes[start..<index])
        while true {
            guard let byte = current else { throw failure("unexpected end of input in a string") }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return try buffer.withUnsafeBufferPointer { pointer throws(JSONParseError) in try text(pointer) }
            case UInt8(ascii: "\\"):
                index += 1
                try escape(into: &buffer)
            case ..<0x20:
                throw failure("unescaped control character in a string")
            default:
                buffer.append(byte)
                index += 1
            }
        }
    }

    private func text(_ utf8: UnsafeBufferPointer<UInt8>) throws(JSONParseError) -> String {
        guard let text = String(validating: utf8, as: UTF8.self) else { throw failure("invalid UTF-8 in a string") }
        return text
    }

    private mutating func escape(into buffer: inout [UInt8]) throws(JSONParseError) {
        guard let byte = current else { throw failure("unexpected end of input in an escape") }
        index += 1
        let simple: UInt8? = switch byte {
        case UInt8(ascii: "\""): 0x22
        case UInt8(ascii: "\\"): 0x5C
        case UInt8(ascii: "/"): 0x2F
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "r"): 0x0D
        case UInt8(ascii: "t"): 0x09
        default: nil
        }
        if let simple {
            buffer.append(simple)
            return
        }
        guard byte == UInt8(ascii: "u") else { throw failure("unknown escape '\\\(Unicode.Scalar(byte).escaped(asASCII: true))'") }
        var code = try hex4()
        if (0xD800...0xDBFF).contains(code) {
            guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                throw failure("a high surrogate \\u\(String(code, radix: 16)) without its low half")
            }
            index += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw failure("a high surrogate followed by \\u\(String(low, radix: 16)), not a low one") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(code) {
            throw failure("a low surrogate \\u\(String(code, radix: 16)) without its high half")
        }
        guard let scalar = Unicode.Scalar(code) else { throw failure("\\u escape is not a Unicode scalar") }
        buffer.append(contentsOf: UTF8.encode(scalar)!)
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        var code: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw failure("unexpected end of input in a \\u escape") }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("a \\u escape needs four hex digits")
            }
            code = code << 4 | UInt32(digit)
            index += 1
        }
        return code
    }

    private mutating func number() throws(JSONParseError) -> JSON {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw failure("a number needs a digit") }
        if first == UInt8(ascii: "0") {
            index += 1
            if let next = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) { throw failure("a number with a leading zero") }
        } else {
            skipDigits()
        }
        var isWhole = true
        if current == UInt8(ascii: ".") {
            index += 1
            guard try digits() else { throw failure("a fraction needs a digit after '.'") }
            isWhole = false
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard try digits() else { throw failure("an exponent needs a digit") }
            isWhole = false
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if isWhole, let whole = Int(text) { return .int(whole) }
        guard let double = Double(text), double.isFinite else { throw failure("number \(text) is out of range") }
        if let whole = Int(exactly: double), !isWhole || double.magnitude < 9.2e18 { return .int(whole) }
        return .double(double)
    }

    private mutating func skipDigits() {
        while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
    }

    /// Skips digits; false when there was none.
    private mutating func digits() throws(JSONParseError) -> Bool {
        let start = index
        skipDigits()
        return index > start
    }
}
