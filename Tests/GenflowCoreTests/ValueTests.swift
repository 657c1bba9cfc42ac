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

    @Test("control characters are escaped")
    func escaping() throws {
        let value = JSON.string("line\nbreak\u{1}")
        #expect(value.description == #""line\nbreak\u0001""#)
        #expect(try JSON(parsing: value.description) == value)
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
