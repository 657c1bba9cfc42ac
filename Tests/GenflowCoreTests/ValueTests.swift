import Foundation
import GenflowCore
import Testing

@Suite("Durations")
struct DurationTextTests {
    @Test("operators' duration syntax parses", arguments: [
        ("500ms", Duration.milliseconds(500)), ("2s", .seconds(2)), ("1.5s", .milliseconds(1_500)),
        ("1m30s", .seconds(90)), ("2h", .seconds(7_200)), ("7d", .seconds(604_800)), ("0s", .zero),
    ])
    func parses(text: String, expected: Duration) {
        #expect(DurationText.parse(text) == expected)
    }

    @Test("anything else is refused", arguments: ["", "10", "10 seconds", "-1s", "1x", "s", "1s2", "abc", "1..5s", "∞s", ".5s", "1.s", " 1s", "1s ", "١s"])
    func refuses(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test("formatting round-trips")
    func roundTrip() {
        for milliseconds: Int64 in [1, 250, 1_000, 90_000, 3_723_004, 86_400_000] {
            let duration = Duration.milliseconds(milliseconds)
            #expect(DurationText.parse(DurationText.format(duration)) == duration)
        }
        #expect(DurationText.format(.seconds(90)) == "1m30s")
    }
}

@Suite("JSON")
struct JSONTests {
    @Test("canonical text sorts keys, so equal values give equal text")
    func canonical() throws {
        let a = try JSON(parsing: #"{"b": 1, "a": [true, null, 2.5, "x\"y"]}"#)
        let b = try JSON(parsing: #"{"a":[true,null,2.5,"x\"y"],"b":1}"#)
        #expect(a == b)
        #expect(a.description == #"{"a":[true,null,2.5,"x\"y"],"b":1}"#)
        // For jsonb parameters: the same value, keys in whatever order the dictionary holds them.
        #expect(try JSON(parsing: a.jsonbText) == a)
        let wide = JSON.object(Dictionary(uniqueKeysWithValues: (0..<50).map { ("k\($0)", JSON.object(["x": .int($0), "y": .array([.string("\($0)")])])) }))
        #expect(try JSON(parsing: wide.jsonbText) == wide && wide.jsonbText.count == wide.description.count)
    }

    @Test("whole numbers stay integers; fractions stay doubles")
    func numbers() throws {
        #expect(try JSON(parsing: "42") == .int(42))
        #expect(try JSON(parsing: "2.5") == .double(2.5))
        #expect(try JSON(parsing: "true") == .bool(true))
        #expect(try JSON(parsing: "9007199254740993") == .int(9_007_199_254_740_993))
    }

    @Test("malformed JSON is an error, not a crash", arguments: ["{", "[1,", "{\"a\" 1}", "nul", "", "\u{1}"])
    func malformed(text: String) {
        #expect(throws: JSONParseError.self) { try JSON(parsing: text) }
    }

    @Test("strict RFC 8259: what is refused, with the byte where it went wrong", arguments: [
        ("[1,2,]", "at byte 5"), ("{\"a\":1,}", "at byte 7"), ("01", "leading zero"), ("1.", "after '.'"), ("-", "needs a digit"),
        ("1e400", "out of range"), ("\"\\ud800\"", "without its low half"), ("\"\\udc00x\"", "without its high half"),
        ("\"tab\there\"", "control character"), ("tru", "expected true"), ("[1] 2", "after the value"), ("{'a': 1}", "key in quotes"),
        ("\"\\x\"", "unknown escape"), ("\"\\u12\"", "four hex digits"),
    ])
    func strict(text: String, expected: String) {
        #expect {
            try JSON(parsing: text)
        } throws: { error in
            "\(error)".hasPrefix("invalid JSON: ") && "\(error)".contains(expected)
        }
    }

    @Test("escapes, surrogate pairs, a byte order mark, repeated keys and numbers as the old decoder read them")
    func accepted() throws {
        #expect(try JSON(parsing: #""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#) == .string("a\"b\\c/d\u{8}\u{C}\n\r\té😀"))
        #expect(try JSON(parsing: "\u{FEFF} {\"a\": 1, \"a\": 2} ") == ["a": 2])
        #expect(try JSON(parsing: "[2.0, 1e2, -0, 1.5, 9223372036854775807, 9223372036854775808, -1E-2]")
            == [.int(2), .int(100), .int(0), .double(1.5), .int(Int.max), .double(9_223_372_036_854_775_808), .double(-0.01)])
        #expect(try JSON(parsing: "\"Zeichnung ✏️ 描く\"") == "Zeichnung ✏️ 描く")
        let deep = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(throws: Never.self) { try JSON(parsing: deep) }
        #expect(throws: JSONParseError.self) { try JSON(parsing: "[" + deep + "]") }
        #expect(throws: JSONParseError.self) { try JSON(parsing: Data([0x22, 0xC3, 0x28, 0x22])) }
    }

    @Test("any value's text parses back to the same value (2,000 generated values)")
    func roundTrip() throws {
        var random = SplitMix64(seed: 11)
        func generate(_ depth: Int) -> JSON {
            switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &random) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &random))
            case 2: return .int(Int.random(in: Int.min...Int.max, using: &random))
            case 3: return .double(Double.random(in: -1e6...1e6, using: &random) + 0.5)
            case 4: return .string(String((0..<Int.random(in: 0..<12, using: &random)).map { _ in
                ["a", "é", "\"", "\\", "\n", "\u{1}", "😀", "/", " "].randomElement(using: &random)! }))
            case 5: return .array((0..<Int.random(in: 0..<5, using: &random)).map { _ in generate(depth + 1) })
            default: return .object(Dictionary((0..<Int.random(in: 0..<5, using: &random)).map { ("k\($0)", generate(depth + 1)) }, uniquingKeysWith: { a, _ in a }))
            }
        }
        for _ in 0..<2_000 {
            let value = generate(0)
            #expect(try JSON(parsing: value.description) == value, "\(value.description)")
        }
    }

    @Test("control characters are escaped")
    func escaping() throws {
        let value = JSON.string("line\nbreak\u{1}")
        #expect(value.description == #""line\nbreak\u0001""#)
        #expect(try JSON(parsing: value.description) == value)
        // Every kind of byte in one string: runs of plain text between escapes, multi-byte UTF-8, DEL.
        let mixed = JSON.string("a\"b\\c\td\re\u{7F}f\u{1F}é✓🎨\"")
        #expect(mixed.description == #""a\"b\\c\td\re\u007ff\u001fé✓🎨\"""#)
        #expect(try JSON(parsing: mixed.description) == mixed)
    }

    @Test("paths reach into objects and arrays")
    func paths() {
        let value: JSON = ["usage": ["total_tokens": 17], "objects": [["id": "a"], ["id": "b"]]]
        #expect(value.value(atPath: "usage.total_tokens".split(separator: ".")) == .int(17))
        #expect(value.value(atPath: "objects.1.id".split(separator: ".")) == .string("b"))
        #expect(value.value(atPath: "objects.7".split(separator: ".")) == nil)
        #expect(value.value(atPath: "usage.missing".split(separator: ".")) == nil)
    }
}

@Suite("Suggestions")
struct SuggestionTests {
    @Test("close misspellings are suggested, far ones are not")
    func didYouMean() {
        let stages = ["call_model", "notify", "tokens.debit", "tokens.require"]
        #expect(Suggestions.closest(to: "call_modle", in: stages) == "call_model")
        #expect(Suggestions.closest(to: "tokens.debt", in: stages) == "tokens.debit")
        #expect(Suggestions.closest(to: "something_else", in: stages) == nil)
        #expect(Suggestions.closest(to: "foo", in: ["job", "input", "steps"]) == nil)
        #expect(Suggestions.editDistance("kitten", "sitting") == 3)
        #expect(Suggestions.editDistance("modle", "model") == 1)
    }

    @Test("secrets print redacted")
    func secret() {
        let secret = Secret("sk-live-123")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        #expect(!"\([secret])".contains("sk-live"))
    }
}

@Suite("Money")
struct MoneyTests {
    @Test("decimals read and written exactly; prices per million tokens round to the billionth")
    func exact() {
        #expect(Money("0.15")?.nanos == 150_000_000 && Money("12")?.description == "12" && Money("-3.000000001")?.description == "-3.000000001")
        #expect(Money("1.0000000001") == nil && Money("abc") == nil && Money(".5") == nil && Money("1.") == nil)
        #expect(Money(0.1).nanos == 100_000_000, "a binary 0.1 is the decimal 0.1")
        let sum = (0..<10).reduce(Money.zero) { total, _ in total + Money(0.1) }
        #expect(sum == Money("1"), "ten times 0.1 is exactly 1")
        #expect(Money("0.15")!.perMillion(12).description == "0.0000018")
        #expect(Money("2.5")!.perMillion(1).description == "0.0000025")
    }
}
