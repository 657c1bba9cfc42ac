import GenflowCanvas
import GenflowCore

/// A model's reply to the canvas prompt, and what its generator knows about it.
struct CanvasReply {
    var bytes: [UInt8]
    /// For a reply made only of valid objects (a stream): the ids of its objects, in order, and the
    /// UTF-8 offset just after each one. Empty for any other reply.
    var streamIDs: [String] = []
    var streamObjectEnds: [Int] = []
}

/// The canvas-object parser. Each reply goes through `CanvasParser.parse(_:)`, then
/// `completeObjects(inPartial:)` on two prefixes (all but the last byte, the first half) and, for a
/// stream, on the prefixes that end just after an object.
///
/// Properties beyond "no crash, no hang, deterministic": a rejection is `output_invalid` with a
/// message that gives a reason; accepted objects are unique, at most `maxObjects`, and each passes
/// `CanvasSchema.validate` unchanged; and, for a reply of valid objects, a prefix that ends just after
/// the k-th object yields those k objects from `completeObjects(inPartial:)`, as its doc promises
/// for a reply still streaming.
struct CanvasTarget: FuzzTarget {
    let name = "canvas"
    let parser = CanvasParser()
    let seeds: [[UInt8]] = Self.handwrittenSeeds.map { Array($0.utf8) }
    let mutator = Mutator(
        tokens: Self.tokens, values: Self.oddValues, keys: CanvasSchema.fields + ["objects", "elements", "color", "roughness", "ID", "Type", "x "],
        nestings: [("[", "]"), ("{\"a\":", "}"), ("{objects:[", "]}"), ("[{\"id\":\"n\",\"type\":\"line\",\"x\":0,\"y\":0,\"points\":", "}]")])

    func input(replaying bytes: [UInt8]) -> CanvasReply { CanvasReply(bytes: bytes) }

    func bytes(of input: CanvasReply) -> [UInt8] { input.bytes }

    /// A stream of valid objects one time in four, a reply with good and bad objects one in four,
    /// a mutated reply (handwritten or generated) three in ten, token soup and pathological
    /// replies one in ten each.
    func makeInput(using rng: inout SplitMix64) -> CanvasReply {
        switch rng.below(100) {
        case 0..<25:
            return makeStream(using: &rng)
        case 25..<50:
            return CanvasReply(bytes: makeReply(using: &rng))
        case 50..<80:
            let base = rng.chance(0.5) ? rng.pick(seeds) : makeReply(using: &rng)
            return CanvasReply(bytes: mutator.mutate(base, donors: seeds, using: &rng))
        case 80..<90:
            return CanvasReply(bytes: makeSoup(using: &rng))
        default:
            return CanvasReply(bytes: Array(makePathological(using: &rng).utf8))
        }
    }

    // MARK: Running and checking

    func run(_ reply: CanvasReply) -> Verdict {
        var verdict = Verdict()
        let text = String(decoding: reply.bytes, as: UTF8.self)
        do throws(StepError) {
            let outcome = try parser.parse(text)
            verdict.isAccepted = true
            checkAccepted(outcome, into: &verdict)
            verdict.fingerprint.append(outcome.json.description)
        } catch {
            if error.errorClass != .outputInvalid {
                verdict.fail("parse(_:) threw \(error.errorClass), not output_invalid: \(error.message)")
            }
            if error.message.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || error.message.hasSuffix(": ") {
                verdict.fail("parse(_:) threw an error without a reason: '\(error.message)'")
            }
            verdict.messages = [error.message]
            verdict.fingerprint.append(error.description)
        }

        let count = reply.bytes.count
        for cut in Set([count - 1, count / 2]).sorted() where cut >= 0 {
            let objects = parser.completeObjects(inPartial: String(decoding: reply.bytes[..<cut], as: UTF8.self))
            checkObjects(objects, from: "completeObjects(inPartial:) on the first \(cut) bytes", into: &verdict)
            verdict.fingerprint.append(JSON.array(objects).description)
        }
        if !reply.streamIDs.isEmpty { checkStream(reply, text: text, accepted: verdict.isAccepted, into: &verdict) }
        // Streamed too, up to 64 KiB: past that a reply read whole costs a few whole reads more,
        // and the pathological ones of megabytes already take most of an input's time limit.
        if reply.bytes.count <= 65_536 { checkStreamed(reply, into: &verdict) }
        return verdict
    }

    /// The reply fed to `CanvasStream` in pieces of 1–7 bytes (cut between characters): what it
    /// gives passes the checks above, and for a reply of valid objects is its first objects.
    private func checkStreamed(_ reply: CanvasReply, into verdict: inout Verdict) {
        var stream = CanvasStream(parser: parser)
        var streamed: [JSON] = []
        let bytes = reply.bytes, size = 1 + bytes.count % 7
        var offset = 0
        while offset < bytes.count {
            var end = min(bytes.count, offset + size)
            while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }
            if let objects = stream.append(String(decoding: bytes[offset..<end], as: UTF8.self)) { streamed = objects }
            offset = end
        }
        checkObjects(streamed, from: "CanvasStream", into: &verdict)
        // A long reply read whole is read less often than at every piece: its last read may come
        // before its end. What it gave is still the reply's first objects, in order.
        if !reply.streamIDs.isEmpty, !reply.streamIDs.starts(with: streamed.compactMap { $0["id"]?.stringValue }) {
            verdict.fail("CanvasStream gave objects that are not the first \(streamed.count) of a reply of valid objects")
        }
        verdict.fingerprint.append(JSON.array(streamed).description)
    }

    private func checkAccepted(_ outcome: CanvasParser.Outcome, into verdict: inout Verdict) {
        if outcome.objects.isEmpty { verdict.fail("parse(_:) accepted a reply without objects") }
        checkObjects(outcome.objects, from: "parse(_:)", into: &verdict)
        if outcome.objects.count + outcome.dropped > outcome.total {
            verdict.fail("parse(_:) kept \(outcome.objects.count) and dropped \(outcome.dropped) of \(outcome.total) objects")
        }
        if Double(outcome.dropped) > Double(outcome.total) * parser.maxInvalidFraction {
            verdict.fail("parse(_:) accepted a reply with \(outcome.dropped) of \(outcome.total) objects invalid")
        }
        if outcome.warnings.contains(where: { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) {
            verdict.fail("parse(_:) gave an empty warning")
        }
    }

    /// Objects handed on are unique, at most `maxObjects`, and pass validation again unchanged.
    private func checkObjects(_ objects: [JSON], from entry: String, into verdict: inout Verdict) {
        if objects.count > parser.maxObjects { verdict.fail("\(entry) gave \(objects.count) objects, more than \(parser.maxObjects)") }
        var ids = Set<String>()
        for object in objects {
            var notes: [String] = []
            switch CanvasSchema.validate(object, notes: &notes) {
            case .success(let again) where again == object && notes.isEmpty:
                break
            case .success(let again):
                verdict.fail("\(entry) gave \(object), which validates to \(again) with notes \(notes)")
            case .failure(let problem):
                verdict.fail("\(entry) gave \(object), which fails validation: \(problem)")
            }
            guard let id = object["id"]?.stringValue, ids.insert(id).inserted else {
                verdict.fail("\(entry) gave two objects with id \(object["id"]?.description ?? "none")")
                continue
            }
        }
    }

    /// A reply of valid objects is accepted whole, and a prefix that ends just after the k-th object
    /// yields the first k objects from `completeObjects(inPartial:)` (checked at up to 4 values of k).
    private func checkStream(_ reply: CanvasReply, text: String, accepted: Bool, into verdict: inout Verdict) {
        if !accepted { verdict.fail("parse(_:) rejected a reply of \(reply.streamIDs.count) valid objects") }
        let count = reply.streamIDs.count
        let checkpoints = Set((1...min(count, 4)).map { $0 * count / min(count, 4) }).sorted()
        for objects in checkpoints {
            let prefix = String(decoding: reply.bytes[..<reply.streamObjectEnds[objects - 1]], as: UTF8.self)
            let found = parser.completeObjects(inPartial: prefix).compactMap { $0["id"]?.stringValue }
            if found != Array(reply.streamIDs.prefix(objects)) {
                verdict.fail("completeObjects(inPartial:) found \(found.count) objects in a prefix that ends just after object \(objects) of \(count) (\(prefix.prefix(40).debugDescription)…)")
                return
            }
        }
    }

    // MARK: Generators

    /// Valid objects only, written in one style inside one wrapper; arrows point at earlier objects.
    private func makeStream(using rng: inout SplitMix64) -> CanvasReply {
        let style = JSONStyle.random(using: &rng)
        let (opening, closing, _) = makeWrapper(style: style, isStream: true, using: &rng)
        var text = opening
        var reply = CanvasReply(bytes: [])
        for index in 0..<rng.size(upTo: CanvasSchema.maxObjects) {
            if index > 0 { text += style.isPretty ? ",\n  " : ", " }
            if style.hasComments, rng.chance(0.2) { text += rng.chance(0.5) ? "/* next */ " : "// next\n" }
            let id = "o\(index)"
            text += makeObject(id: id, earlier: reply.streamIDs, isValid: true, using: &rng).json(style, using: &rng)
            reply.streamIDs.append(id)
            reply.streamObjectEnds.append(text.utf8.count)
        }
        if style.hasTrailingCommas { text += "," }
        reply.bytes = Array((text + closing).utf8)
        return reply
    }

    /// A reply with good and bad objects, or none, in any wrapper.
    private func makeReply(using rng: inout SplitMix64) -> [UInt8] {
        let style = JSONStyle.random(using: &rng)
        let (opening, closing, isSingleObject) = makeWrapper(style: style, isStream: false, using: &rng)
        var ids: [String] = []
        var objects: [String] = []
        let badChance = rng.pick([0, 0.1, 0.3, 1])
        for index in 0..<(rng.chance(0.05) ? 0 : rng.size(upTo: 250)) {
            let id = rng.chance(0.97) ? "o\(index)" : rng.pick(ids + ["", "o0"])
            objects.append(makeObject(id: id, earlier: ids, isValid: !rng.chance(badChance), using: &rng).json(style, using: &rng))
            ids.append(id)
        }
        let body = isSingleObject ? objects.first ?? "" : style.join(objects, using: &rng)
        return Array((opening + body + closing).utf8)
    }

    /// Text before and after the objects: chatter, a code fence, and a list, `{"objects": […]}`,
    /// `{"elements": […]}` or (never for a stream) nothing, for a reply that is a single object.
    private func makeWrapper(style: JSONStyle, isStream: Bool, using rng: inout SplitMix64) -> (opening: String, closing: String, isSingleObject: Bool) {
        let chatter = rng.chance(0.3) ? rng.pick(["Sure! Here is your drawing:\n", "Here you go.\n\n", "OK — ", "Voici le dessin : "]) : ""
        let after = rng.chance(0.3) ? rng.pick(["\nLet me know if you want changes.", "\n\nHope this helps!", " (12 objects)"]) : ""
        let fence = rng.chance(0.4) ? rng.pick(["```json\n", "```\n", "``` JSON\n"]) : ""
        let closingFence = fence.isEmpty ? "" : rng.pick(["\n```", "\n```\n", ""])
        var opening = "[", closing = "]"
        switch rng.below(isStream ? 3 : 5) {
        case 0: opening = "[\n"
        case 1: (opening, closing) = ("{" + style.key("objects") + style.colon + "[", "]}")
        case 2: (opening, closing) = ("{" + style.key("elements") + style.colon + "[", "]}")
        case 3: return (chatter + fence, closingFence + after, true)
        default: break
        }
        return (chatter + fence + opening, closing + closingFence + after, false)
    }

    /// One object, valid or with one to three things wrong with it.
    private func makeObject(id: String, earlier: [String], isValid: Bool, using rng: inout SplitMix64) -> Tree {
        let type = rng.pick(CanvasSchema.types)
        var members: [(key: String, value: Tree)] = [
            ("id", .scalar(Tree.jsonString(id))), ("type", .scalar(Tree.jsonString(type))),
            ("x", makeNumber(in: -1_000...1_000, using: &rng)), ("y", makeNumber(in: -1_000...1_000, using: &rng)),
        ]
        if type != "line" && type != "arrow" && rng.chance(0.8) {
            members += [("width", makeNumber(in: 1...800, using: &rng)), ("height", makeNumber(in: 1...600, using: &rng))]
        }
        if type == "text" || rng.chance(0.2) { members.append(("text", .scalar(Tree.jsonString(rng.pick(Self.texts))))) }
        if type == "line" || type == "arrow" {
            var points: [Tree] = [.list([.scalar("0"), .scalar("0")])]
            for _ in 0..<1 + rng.below(5) { points.append(.list([makeNumber(in: -500...500, using: &rng), makeNumber(in: -500...500, using: &rng)])) }
            members.append(("points", .list(points)))
            if type == "arrow", !earlier.isEmpty, rng.chance(0.5) {
                members += [("start", .scalar(Tree.jsonString(rng.pick(earlier)))), ("end", .scalar(Tree.jsonString(rng.pick(earlier))))]
            }
        }
        if rng.chance(0.3) { members.append(("strokeColor", .scalar(Tree.jsonString(rng.pick(["#1e1e1e", "#fff", "#ffec9980", "transparent"]))))) }
        if rng.chance(0.3) { members.append(("backgroundColor", .scalar(Tree.jsonString(rng.pick(["#a5d8ff", "#FFF", "transparent"]))))) }
        if rng.chance(0.2) { members.append(("fillStyle", .scalar(Tree.jsonString(rng.pick(CanvasSchema.fillStyles))))) }
        if rng.chance(0.2) { members.append(("strokeStyle", .scalar(Tree.jsonString(rng.pick(CanvasSchema.strokeStyles))))) }
        if rng.chance(0.2) { members.append(("strokeWidth", makeNumber(in: 1...10, using: &rng))) }
        if rng.chance(0.2) { members.append(("opacity", makeNumber(in: 0...100, using: &rng))) }
        if rng.chance(0.2) { members.append(("fontSize", makeNumber(in: 8...64, using: &rng))) }
        if rng.chance(0.1) { members.append(("angle", makeNumber(in: -7...7, using: &rng))) }
        if rng.chance(0.1) {
            let present = Set(members.map { $0.key })
            members += CanvasSchema.fields.filter { !present.contains($0) }.map { (key: $0, value: Tree.scalar("null")) }
        }
        if !isValid {
            for _ in 0..<1 + rng.below(3) { corrupt(&members, using: &rng) }
        }
        if rng.chance(0.2) { members.shuffle(using: &rng) }
        return .map(members)
    }

    /// Breaks one field: a wrong type or value, a missing field, an unknown type or field.
    private func corrupt(_ members: inout [(key: String, value: Tree)], using rng: inout SplitMix64) {
        let field = rng.below(members.count)
        switch rng.below(4) {
        case 0: members.replaceSubrange(field...field, with: [(key: members[field].key, value: Tree.scalar(rng.pick(Self.oddValues)))])
        case 1: members.removeSubrange(field...field)
        case 2: members.append((key: rng.pick(CanvasSchema.fields + ["color", "roughness"]), value: Tree.scalar(rng.pick(Self.oddValues))))
        default: members.append((key: "type", value: Tree.scalar(Tree.jsonString(rng.pick(["hexagon", "Rectangle", "", "circle"])))))
        }
    }

    /// A whole number in `range`, or one with decimals that stays inside it.
    private func makeNumber(in range: ClosedRange<Int>, using rng: inout SplitMix64) -> Tree {
        let value = Int.random(in: range, using: &rng)
        if value == range.lowerBound || value == range.upperBound || rng.chance(0.7) { return .scalar(String(value)) }
        let decimals = 1 + rng.below(99)
        return .scalar("\(value).\(decimals)")
    }

    /// Tokens, keys and values run together.
    private func makeSoup(using rng: inout SplitMix64) -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<rng.size(upTo: 80) {
            switch rng.below(5) {
            case 0, 1: bytes += Array(rng.pick(Self.tokens).utf8)
            case 2: bytes += Array(Tree.jsonString(rng.pick(mutator.keys)).utf8)
            case 3: bytes += Array(rng.pick(Self.oddValues).utf8)
            default: bytes.append(UInt8(rng.below(256)))
            }
        }
        return bytes
    }

    /// Deep nesting, long numbers and strings, many objects, unclosed comments, escapes.
    private func makePathological(using rng: inout SplitMix64) -> String {
        let size = rng.size(upTo: 20_000)
        let object = #"{"id":"a","type":"rectangle","x":1,"y":2}"#
        switch rng.below(8) {
        case 0:
            return String(repeating: "[", count: size * 5) + String(repeating: "]", count: rng.chance(0.5) ? size * 5 : 0)
        case 1:
            return String(repeating: #"{"objects":"#, count: size) + "[" + object + "]" + String(repeating: "}", count: size)
        case 2:
            return #"[{"id":"n","type":"rectangle","x":"# + rng.pick(["1", "0.", "-", "1e", "+"]) + String(repeating: rng.pick(["9", "0"]), count: size * 10) + #","y":2}]"#
        case 3:
            return #"[{"id":""# + String(repeating: rng.pick(["a", "\\\"", "\\u00e9", "é"]), count: size * 10) + #"","type":"text","x":1,"y":2,"text":"t"}]"#
        case 4:
            return "[" + (0..<size / 4 + 1).map { #"{"id":"o\#($0)","type":"ellipse","x":\#($0 % 1_000),"y":0}"# }.joined(separator: ",") + "]"
        case 5:
            return "[" + object + rng.pick(["/*", "//", "/* */", ","]) + String(repeating: rng.pick([" ", "*", "/"]), count: size * 5)
        case 6:
            return #"[{"id":"s","type":"text","x":1,"y":2,"text":""# + String(repeating: rng.pick(Self.escapes), count: size) + #""}]"#
        default:
            return "[" + object + ",{\"id\":\"l\",\"type\":\"line\",\"x\":0,\"y\":0,\"points\":[[0,0]" + String(repeating: ",[1,1]", count: size) + "]}]"
        }
    }

    // MARK: Vocabulary

    /// Escapes inside JSON strings, surrogate pairs whole and broken among them.
    static let escapes: [String] = ["\\n", "\\t", "\\\"", "\\\\", "\\/", "\\u0041", "\\u00e9", "\\u0000", "\\uD83D\\uDE00", "\\uD800", "\\uDC00", "\\uD800\\u0041", "\\uDBFF\\uDFFF", "\\x41", "\\u12"]

    /// Tokens that mean something to the lenient JSON reader or the fence finder.
    static let tokens: [String] = [
        "{", "}", "[", "]", ",", ":", "\"", "'", "//", "/*", "*/", "\\", "\\u", "NaN", "-Infinity", "Infinity", "+", "-", ".", "e", "E", "true",
        "tru", "null", "undefined", "None", "```", "```json\n", "\n", " ", "\"id\"", "\"type\"", "\"objects\"", "\"elements\"", "\"points\"",
        "\"start\"", "\"end\"", "$", "_", "\u{FEFF}", "\u{0}", "é", "🎨",
    ] + escapes

    /// Values that stress a reader: huge, negative and non-finite numbers, wrong types.
    static let oddValues: [String] = [
        "0", "-0", "-1", "1e308", "1e309", "-1e309", "1e-400", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "NaN",
        "Infinity", "-Infinity", "+5", ".5", "-.5", "5.", "1e", "--1", "0x10", "\"5\"", "\"\"", "true", "null", "[]", "{}", "[[0,0]]",
        "[[0,0],[1]]", "[[1,1],[2,2]]", "\"#ggg\"", "\"red\"", "\"#12345\"", "100001", "-100001", "10001", "0.01", "\"dashed\"", "\"wavy\"",
        "\"\\uD800\"", "\"\\uD800\\u0041\"",
    ]

    /// Text for `text` fields.
    static let texts: [String] = ["Hello", "Kitchen", "line one\nline two", "quote \" and \\", "émoji 🎨", String(repeating: "x", count: 300)]

    /// Replies as models write them, for mutation.
    static let handwrittenSeeds: [String] = [
        """
        [{"id": "house", "type": "rectangle", "x": 100, "y": 200, "width": 300, "height": 200, "strokeColor": "#1e1e1e", "backgroundColor": "#ffec99", "fillStyle": "solid"},
         {"id": "roof", "type": "diamond", "x": 100, "y": 50, "width": 300, "height": 150},
         {"id": "sun", "type": "ellipse", "x": 500, "y": 20, "width": 80, "height": 80, "opacity": 80},
         {"id": "label", "type": "text", "x": 180, "y": 420, "text": "Home", "fontSize": 24},
         {"id": "path", "type": "arrow", "x": 400, "y": 300, "points": [[0, 0], [100, 50]], "start": "house", "end": "sun", "strokeStyle": "dashed"},
         {"id": "ground", "type": "line", "x": 0, "y": 400, "points": [[0, 0], [800, 0]], "strokeWidth": 2},
         {"id": "group", "type": "frame", "x": 0, "y": 0, "width": 900, "height": 500},
         {"id": "memo", "type": "note", "x": 650, "y": 300, "text": "Draft", "angle": 0.1}]
        """,
        """
        {"objects": [{"id": "a", "type": "ellipse", "x": 5, "y": 6, "width": 40, "height": 40, "angle": null, "text": null, "points": null, "strokeColor": null, "backgroundColor": "#ffec99", "fillStyle": "solid", "strokeWidth": null, "strokeStyle": null, "opacity": null, "fontSize": null, "start": null, "end": null}]}
        """,
        """
        Sure! Here is your drawing:
        ```json
        [{"id": "a", "type": "rectangle", "x": 10, "y": 20, "width": 100, "height": 50}]
        ```
        Let me know if you want changes.
        """,
        """
        [ // the house
          {id: 'a', type: 'rectangle', x: 1, y: 2,}, /* roof */ {'id': 'b', 'type': 'diamond', 'x': 1, 'y': -2.5e1, width: 10, height: 10,},
        ]
        """,
        """
        {"elements": [{"id": "a", "type": "rectangle", "x": 10, "y": 20}, {"id": "b", "type": "ellipse", "x": 0, "y": 0}, {"id": "c", "type": "ellip
        """,
        """
        {"id": "solo", "type": "text", "x": 0, "y": 0, "text": "Just me"}
        """,
        "I'm sorry, I can't draw that.",
        """
        [{"id": "nan", "type": "rectangle", "x": NaN, "y": 1}, {"id": "inf", "type": "rectangle", "x": 1, "y": -Infinity}, {"id": "five", "type": "rectangle", "x": "5", "y": 1}, {"id": "ok", "type": "rectangle", "x": 1, "y": 1}]
        """,
        """
        First, an example: ```text
        not json
        ``` and then the real one: ```json
        [{"id": "x", "type": "frame", "x": 0, "y": 0}]
        ```
        """,
    ]
}
