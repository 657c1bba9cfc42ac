/// A response's status and headers, parsed from the raw lines curl's header callback gets one at a
/// time: the status line, header lines, a blank line, and all of it again after a 1xx answer.
///
/// Works on the bytes: names are lowercased by hand (they are ASCII) and only the header map's
/// keys and values become `String`s.
struct ResponseHead {
    private(set) var status = 0
    /// Names lowercased; the last value of a repeated header.
    private(set) var headers: [String: String] = [:]

    /// Takes one line as curl passes it, CRLF included.
    mutating func consume(_ line: UnsafeRawBufferPointer) {
        let text = Self.trimmed(line[...])
        if text.starts(with: "HTTP/".utf8) {
            status = Self.statusCode(text)
            headers = [:]
            return
        }
        // A line that starts with white space continues the previous one (obsolete folding): skipped.
        guard let first = line.first, !Self.isSpace(first), let colon = text.firstIndex(of: UInt8(ascii: ":")) else { return }
        let name = Self.trimmed(text[..<colon])
        guard !name.isEmpty else { return }
        headers[Self.lowercasedString(name)] = String(decoding: Self.trimmed(text[(colon + 1)...]), as: UTF8.self)
    }

    /// The three digits after the protocol in `HTTP/1.1 200 OK`; 0 if they are not there.
    static func statusCode(_ line: Slice<UnsafeRawBufferPointer>) -> Int {
        guard let space = line.firstIndex(of: UInt8(ascii: " ")) else { return 0 }
        let rest = trimmed(line[space...])
        let digits = rest.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard digits.count == 3, digits.endIndex == rest.endIndex || isSpace(rest[digits.endIndex]) else { return 0 }
        return digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }

    /// `bytes` without leading and trailing spaces, tabs, CRs and LFs.
    static func trimmed(_ bytes: Slice<UnsafeRawBufferPointer>) -> Slice<UnsafeRawBufferPointer> {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, isSpace(bytes[start]) { start += 1 }
        while end > start, isSpace(bytes[end - 1]) { end -= 1 }
        return bytes[start..<end]
    }

    /// `bytes` as a string with ASCII capitals made small (header names are ASCII).
    static func lowercasedString(_ bytes: Slice<UnsafeRawBufferPointer>) -> String {
        String(unsafeUninitializedCapacity: bytes.count) { buffer in
            for (offset, byte) in bytes.enumerated() {
                buffer[offset] = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            }
            return bytes.count
        }
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")
    }
}
