import GenflowCanvas
import GenflowCore
import Testing

private func rect(_ id: String, x: Int = 10) -> String {
    ##"{"id": "\##(id)", "type": "rectangle", "x": \##(x), "y": 20, "width": 100, "height": 50, "strokeColor": "#1e1e1e", "label": {"text": "a } { ] \" [ b"}}"##
}

private func arrow(_ id: String, from: String, to: String) -> String {
    ##"{"id": "\##(id)", "type": "arrow", "x": 0, "y": 0, "start": "\##(from)", "end": "\##(to)", "points": [[0, 0], [10, 10]]}"##
}

@Suite("Canvas objects while a reply streams")
struct CanvasStreamTests {
    let parser = CanvasParser()

    /// Everything the stream announces as `call_model` does (an object once, by id), with the
    /// pieces cut every `size` characters.
    func announced(_ reply: String, size: Int) -> [JSON] {
        var stream = CanvasStream()
        var seen: Set<String> = []
        var sent: [JSON] = []
        var rest = Substring(reply)
        while !rest.isEmpty {
            let piece = rest.prefix(size)
            rest = rest.dropFirst(size)
            for object in stream.append(String(piece)) ?? [] where seen.insert(object["id"]?.stringValue ?? "").inserted {
                sent.append(object)
            }
        }
        return sent
    }

    @Test("a list, a fenced list and a structured-output wrapper: cut anywhere, each object is sent once, whole, and the arrow once its target came")
    func cutAnywhere() throws {
        let objects = [rect("a"), arrow("link", from: "a", to: "b"), rect("b", x: 300), rect("c", x: 600)]
        let list = "[\(objects.joined(separator: ",\n "))]"
        for reply in [list, "Here you go:\n```json\n\(list)\n```\n", "{\"objects\": \(list)}", "{\"note\": \"x\", \"elements\": \(list)}"] {
            let final = try parser.parse(reply).objects
            for size in [1, 2, 3, 7, 13, 40, reply.count] {
                let sent = announced(reply, size: size)
                #expect(Set(sent.compactMap { $0["id"]?.stringValue }) == ["a", "link", "b", "c"], "\(size): \(reply)")
                for object in sent {
                    #expect(final.contains(object), "sent before it was complete (pieces of \(size)): \(object)")
                }
            }
        }
    }

    @Test("one object a piece (as the offline model streams): after each piece, what the whole-reply reader finds")
    func objectPerPiece() {
        let pieces = ["[" + rect("a"), "," + arrow("link", from: "a", to: "b"), "," + rect("b"), "," + rect("c"), "]"]
        var stream = CanvasStream()
        var text = ""
        for piece in pieces {
            text += piece
            let found = stream.append(piece)
            if piece == "]" {
                #expect(found == nil)
            } else {
                #expect(found == parser.completeObjects(inPartial: text))
            }
        }
        #expect(stream.append(" trailing prose }") == nil)
    }

    @Test("shapes the scan does not follow are read whole, as before: a single object, a list under another key, a bad element, prose with brackets")
    func readWhole() {
        let replies = [
            rect("solo"),
            "{\"shapes\": [\(rect("a"))]}",
            "[\(rect("a")), {\"id\": \"b\", \"type\": \"rectangle\", \"x\": 1, \"y\": 2,}, \(rect("c"))]",
            "See [this]: [\(rect("a"))]",
            "[\"text\", \(rect("a"))]",
        ]
        for reply in replies {
            var stream = CanvasStream()
            var text = ""
            for character in reply {
                text.append(character)
                let found = stream.append(String(character))
                if character == "}" {
                    #expect((found ?? []) == parser.completeObjects(inPartial: text), "\(reply) up to \(text)")
                }
            }
        }
    }

    @Test("a long lenient reply in small pieces is read whole less and less often, not at every closing brace")
    func longLenient() throws {
        let objects = (0..<150).map { "{id: 'o\($0)', type: 'rectangle', x: \($0), y: 1, width: 10, height: 10}," }
        let reply = "[" + objects.joined(separator: "\n") + "]"
        var stream = CanvasStream()
        var reads = 0
        var last: [JSON] = []
        for piece in reply.split(separator: "}", omittingEmptySubsequences: false) {
            if let found = stream.append(String(piece) + "}") { reads += 1; last = found }
        }
        #expect(reply.utf8.count > 8_192)
        // Every closing brace up to 4 KiB (about 60 objects here), then a few: once per object was 151.
        #expect(reads < objects.count / 2, "\(reads) whole reads for \(objects.count) objects")
        let final = try parser.parse(reply).objects
        #expect(last.count > 100 && last.allSatisfy(final.contains))
    }

    @Test("a hostile stream (a million brackets, bytes split mid-character) ends without crashing")
    func hostile() {
        var stream = CanvasStream()
        for _ in 0..<1_000 { _ = stream.append(String(repeating: "[", count: 1_000)) }
        var emoji = CanvasStream()
        let reply = "[{\"id\": \"e\", \"type\": \"text\", \"x\": 1, \"y\": 2, \"text\": \"😀 ✓\"}]"
        var found: [JSON] = []
        for character in reply { found = emoji.append(String(character)) ?? found }
        #expect(found.first?["text"] == "😀 ✓")
    }
}
