import GenflowCanvas
import GenflowCore
import Testing

private func rect(_ id: String, x: String = "10", y: String = "20") -> String {
    ##"{"id": "\##(id)", "type": "rectangle", "x": \##(x), "y": \##(y), "width": 100, "height": 50, "strokeColor": "#1e1e1e"}"##
}

@Suite("Canvas object parser")
struct CanvasParserTests {
    let parser = CanvasParser()

    func ids(_ outcome: CanvasParser.Outcome) -> [String] { outcome.objects.compactMap { $0["id"]?.stringValue } }

    @Test("prose around the JSON is ignored")
    func prose() throws {
        let reply = "Sure! Here is your drawing:\n[\(rect("a")), \(rect("b"))]\nLet me know if you want changes."
        let outcome = try parser.parse(reply)
        #expect(ids(outcome) == ["a", "b"])
        #expect(outcome.dropped == 0)
        #expect(outcome.warnings.isEmpty)
    }

    @Test("code fences, with or without a language, closed or cut off")
    func fences() throws {
        #expect(ids(try parser.parse("```json\n[\(rect("a"))]\n```")) == ["a"])
        #expect(ids(try parser.parse("Here:\n```\n{\"objects\": [\(rect("a"))]}\n```\nDone.")) == ["a"])
        #expect(ids(try parser.parse("```json\n[\(rect("a")), \(rect("b"))")) == ["a", "b"])
        // Text before the fence that is not ASCII, and a lone backtick pair, do not shift it.
        #expect(ids(try parser.parse("Voilà ✓ `x` ``:\n```json\n[\(rect("c"))]\n```")) == ["c"])
    }

    @Test("strict structured output: nulls for unused optional fields are absent; the schema asked for lists every field")
    func strictOutput() throws {
        let unused = ["angle", "text", "points", "strokeColor", "strokeWidth", "strokeStyle", "opacity", "fontSize", "start", "end"]
        let nulls = unused.map { "\"\($0)\": null" }.joined(separator: ", ")
        let reply = ##"{"objects": [{"id": "a", "type": "ellipse", "x": 5, "y": 6, "width": 40, "height": 40, "backgroundColor": "#ffec99", "fillStyle": "solid", "##
            + nulls + "}]}"
        let outcome = try parser.parse(reply)
        #expect(outcome.objects == [["id": "a", "type": "ellipse", "x": 5, "y": 6, "width": 40, "height": 40, "backgroundColor": "#ffec99", "fillStyle": "solid"]])
        #expect(outcome.warnings.isEmpty)
        let item = CanvasSchema.responseFormat["json_schema"]?["schema"]?["properties"]?["objects"]?["items"]
        #expect(CanvasSchema.responseFormat["json_schema"]?["strict"] == true)
        #expect(item?["required"]?.arrayValue?.compactMap(\.stringValue) == CanvasSchema.fields)
        #expect(Set(item?["properties"]?.objectValue?.keys.map { $0 } ?? []) == Set(CanvasSchema.fields))
        #expect(item?["additionalProperties"] == false)
    }

    @Test("trailing commas, comments, single quotes and bare keys are read")
    func lenient() throws {
        let reply = "[ // the house\n {id: 'a', type: 'rectangle', x: 1, y: 2,}, /* roof */ \(rect("b")),\n]"
        #expect(ids(try parser.parse(reply)) == ["a", "b"])
    }

    @Test("a reply cut off mid-object keeps the complete objects and says so")
    func truncated() throws {
        let reply = "[\(rect("a")), \(rect("b")), {\"id\": \"c\", \"type\": \"ellip"
        let outcome = try parser.parse(reply)
        #expect(ids(outcome) == ["a", "b"])
        #expect(outcome.warnings.contains { $0.contains("cut off") })
        #expect(parser.completeObjects(inPartial: "[\(rect("a")), {\"id\": \"b\", \"type\"").count == 1)
        #expect(parser.completeObjects(inPartial: "[{\"id\": \"a\"").isEmpty)
    }

    @Test("a structured-output reply ({\"objects\": […]}) streams its complete objects too, cut anywhere (the pipeline tests found it)")
    func truncatedWrapper() throws {
        let reply = "{\"objects\": [\(rect("a")), \(rect("b")), {\"id\": \"c\", \"type\": \"ellip"
        #expect(ids(try parser.parse(reply)) == ["a", "b"])
        #expect(parser.completeObjects(inPartial: "{\"objects\": [\(rect("a")), {\"id\": \"b\"").map { $0["id"] } == ["a"])
        #expect(parser.completeObjects(inPartial: "{\"objects\": [").isEmpty)
        #expect(parser.completeObjects(inPartial: "{\"objects\"").isEmpty)
        // A cut-off object inside the list is still dropped, with everything it held.
        #expect(parser.completeObjects(inPartial: "{\"objects\": [{\"id\": \"a\", \"type\": \"line\", \"x\": 0, \"y\": 0, \"points\": [[0, 0], [1").isEmpty)
    }

    @Test("NaN, Infinity and numbers as strings are refused, each object alone")
    func badNumbers() throws {
        let objects = (1...10).map { rect("ok\($0)") } + [rect("nan", x: "NaN"), rect("inf", y: "-Infinity")]
        let outcome = try CanvasParser(maxInvalidFraction: 0.5).parse("[\(objects.joined(separator: ","))]")
        #expect(outcome.objects.count == 10)
        #expect(outcome.dropped == 2)
        #expect(outcome.warnings.contains("object 'nan' 'x' must be a finite number, not NaN — dropped"))
        #expect(outcome.warnings.contains("object 'inf' 'y' must be a finite number, not -Infinity — dropped"))
        let quoted = try CanvasParser(maxInvalidFraction: 0.5).parse("[\(rect("a")), \(rect("five", x: "\"5\""))]")
        #expect(ids(quoted) == ["a"])
        #expect(quoted.warnings == ["object 'five' 'x' must be a finite number, not the string \"5\" — dropped"])
    }

    @Test("unknown types, bad colours, sizes and coordinates out of range are dropped with a reason")
    func badObjects() throws {
        let good = (1...20).map { rect("g\($0)") }
        let bad = [
            #"{"id": "t", "type": "hexagon", "x": 0, "y": 0}"#,
            #"{"id": "c", "type": "rectangle", "x": 0, "y": 0, "strokeColor": "red"}"#,
            #"{"id": "w", "type": "rectangle", "x": 0, "y": 0, "width": 0}"#,
            #"{"id": "far", "type": "ellipse", "x": 100001, "y": 0}"#,
            #"{"type": "ellipse", "x": 1, "y": 1}"#,
        ]
        let outcome = try parser.parse("[\((good + bad).joined(separator: ","))]")
        #expect(outcome.objects.count == 20)
        #expect(outcome.dropped == 5)
        #expect(outcome.warnings == [
            "object 't' has unknown type 'hexagon' (types: rectangle, ellipse, diamond, text, line, arrow, frame, note) — dropped",
            "object 'c' 'strokeColor' must be #rgb, #rrggbb, #rrggbbaa or transparent, not the string \"red\" — dropped",
            "object 'w' 'width' 0 is outside 1–10000 — dropped",
            "object 'far' 'x' 100001 is beyond ±100000 — dropped",
            "object without id has no 'id' (a non-empty string) — dropped",
        ])
    }

    @Test("arrows need points from [0,0] and objects that exist at both ends")
    func arrows() throws {
        let arrow = #"{"id": "ab", "type": "arrow", "x": 110, "y": 45, "points": [[0, 0], [90, 0]], "start": "a", "end": "b"}"#
        let dangling = #"{"id": "ax", "type": "arrow", "x": 0, "y": 0, "points": [[0, 0], [5, 5]], "start": "a", "end": "ghost"}"#
        let offset = #"{"id": "bad", "type": "line", "x": 0, "y": 0, "points": [[1, 1], [5, 5]]}"#
        let objects = [rect("a"), rect("b"), arrow, dangling, offset] + (1...10).map { rect("f\($0)") }
        let outcome = try parser.parse("[\(objects.joined(separator: ","))]")
        #expect(ids(outcome).prefix(3) == ["a", "b", "ab"])
        #expect(!ids(outcome).contains("ax") && !ids(outcome).contains("bad"))
        #expect(outcome.warnings.contains("object 'ax' dropped: it points at 'ghost', which is not on the canvas"))
        #expect(outcome.warnings.contains("object 'bad' points must start at [0, 0], not [1,1] — dropped"))
    }

    @Test("nothing valid, or more than 20% bad, is output_invalid")
    func failures() {
        #expect(throws: StepError.self) { try parser.parse("I cannot draw that, sorry.") }
        do {
            _ = try parser.parse("[\(rect("a")), \(rect("b", x: "NaN"))]")
            Issue.record("expected output_invalid")
        } catch {
            #expect(error.errorClass == .outputInvalid)
            #expect(error.message.hasPrefix("1 of 2 canvas objects are invalid (more than 20%)"))
        }
        do {
            _ = try parser.parse("[{\"id\": \"x\", \"type\": \"blob\", \"x\": 0, \"y\": 0}]")
            Issue.record("expected output_invalid")
        } catch {
            #expect(error.message.hasPrefix("no valid canvas objects (1 found)"))
        }
    }

    @Test("1,000 objects: the first 200 are kept, the rest dropped with one warning")
    func manyObjects() throws {
        let objects = (1...1_000).map { rect("o\($0)") }.joined(separator: ",")
        let outcome = try parser.parse("[\(objects)]")
        #expect(outcome.objects.count == 200)
        #expect(ids(outcome).last == "o200")
        #expect(outcome.dropped == 0)
        #expect(outcome.warnings == ["800 objects beyond the first 200 dropped"])
    }

    @Test("duplicate ids and unknown fields")
    func duplicatesAndFields() throws {
        let extra = #"{"id": "a", "type": "note", "x": 0, "y": 0, "text": "hi", "seed": 42}"#
        let outcome = try CanvasParser(maxInvalidFraction: 0.5).parse("[\(extra), \(rect("a"))]")
        #expect(outcome.objects == [["id": "a", "type": "note", "x": 0, "y": 0, "text": "hi"]])
        #expect(outcome.warnings == ["object 'a': unknown field 'seed' removed", "object 'a' dropped: its id is used by an earlier object"])
    }

    @Test("the lenient reader never crashes on garbage (20,000 random inputs)")
    func fuzz() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("[]{}\",:'0123456789.-eE NaNInfinitytruefalsenull/\\*\n\tabc#xyé")
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...60, using: &generator)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            _ = try? parser.parse(text)
            _ = parser.completeObjects(inPartial: text)
        }
    }

    @Test("hostile replies genflow-fuzz found: lone surrogates become U+FFFD, a million brackets are an error (both crashed the daemon)")
    func hostile() throws {
        let surrogates = #"[{"id":"s","type":"text","x":1,"y":2,"text":"\uD800\uD800 \uDC00 \uD83D\uDE00"}]"#
        #expect(try parser.parse(surrogates).objects.first?["text"] == "\u{FFFD}\u{FFFD} \u{FFFD} 😀")
        let deep = String(repeating: "[", count: 1_000_000)
        #expect(throws: StepError.self) { try parser.parse(deep) }
        #expect(parser.completeObjects(inPartial: deep).isEmpty)
    }

    @Test("colours and lengths are checked the same whatever the bytes: ASCII fast, other text by characters")
    func coloursAndLengths() {
        func verdict(_ fields: [String: JSON]) -> Bool {
            var notes: [String] = []
            var object: [String: JSON] = ["id": "a", "type": "text", "x": 0, "y": 0, "text": "t"]
            object.merge(fields) { _, new in new }
            if case .success = CanvasSchema.validate(.object(object), notes: &notes) { return true }
            return false
        }
        for colour in ["#abc", "#ABCDEF", "#0a1B2c3D", "transparent"] { #expect(verdict(["strokeColor": .string(colour)]), "\(colour)") }
        for colour in ["#ab", "#abcde", "#ggg", "abc", "#abc ", "#", "", "red", "#\u{e9}ab"] { #expect(!verdict(["strokeColor": .string(colour)]), "\(colour)") }
        // Fullwidth hex digits are hex digits to Character, as they always were here.
        #expect(verdict(["backgroundColor": "#\u{FF21}\u{FF22}\u{FF23}"]))
        // Limits count characters, not bytes: 10,000 two-byte characters pass, one more does not.
        #expect(verdict(["text": .string(String(repeating: "\u{e9}", count: 10_000))]))
        #expect(!verdict(["text": .string(String(repeating: "\u{e9}", count: 10_001))]))
        #expect(verdict(["id": .string(String(repeating: "\u{1F600}", count: 200))]))
        #expect(!verdict(["id": .string(String(repeating: "\u{1F600}", count: 201))]))
    }
}
