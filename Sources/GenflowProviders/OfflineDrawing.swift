public import GenflowCore
internal import Foundation

/// What the offline model draws for a request in words: the common shapes of instructions, read
/// from their words, laid out on a canvas. Pure and deterministic: the same instructions give the
/// same drawing.
///
/// - a flowchart or process of N steps (boxes joined by arrows), with a decision diamond and its
///   yes/no branches when the words ask for a decision or a condition;
/// - a mind map: a centre (what it is about) and N branches around it;
/// - a tree, org chart or hierarchy: a root and rows of children;
/// - a timeline of N events on a line;
/// - a grid of N shapes (`a grid of 6 circles`, `4 squares`);
/// - otherwise one shape for each word that names one (circle, house, diamond, note, …).
///
/// Labels come from the instructions: a list after a colon (`steps: plan, build, ship`), else the
/// words that are not about the drawing itself; colours from the colour scheme.
struct OfflineDrawing {
    enum Kind: Equatable {
        case flowchart(steps: Int, decision: Bool)
        case mindMap(branches: Int)
        case tree(children: Int)
        case timeline(events: Int)
        case grid(count: Int, type: String)
        case shapes
    }

    let instructions: String
    let words: [String]
    let palette: [String]

    init(instructions: String, palette: [String]) {
        self.instructions = instructions
        words = instructions.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
        self.palette = palette
    }

    /// Which drawing the words ask for.
    var kind: Kind {
        let text = words.joined(separator: " ")
        if text.contains("mind map") || words.contains("mindmap") {
            return .mindMap(branches: count(before: ["branches", "branch", "ideas", "topics", "nodes", "points"]) ?? 5)
        }
        let trees = ["org chart", "organisation chart", "organization chart", "family tree", "tree diagram", "tree chart", "tree with", "tree of"]
        if words.contains("hierarchy") || trees.contains(where: text.contains) {
            return .tree(children: count(before: ["people", "reports", "children", "teams", "nodes", "members", "departments"]) ?? 3)
        }
        if words.contains("timeline") {
            return .timeline(events: count(before: ["events", "milestones", "years", "phases", "dates", "steps"]) ?? 5)
        }
        let steps = count(before: ["step", "steps", "stage", "stages", "boxes"])
        if steps != nil || words.contains("flowchart") || text.contains("flow chart") || words.contains("process") {
            let decision = words.contains { ["decision", "decisions", "if", "condition", "choice", "yes", "approve", "approved"].contains($0) }
            return .flowchart(steps: steps ?? 3, decision: decision)
        }
        for (index, word) in words.enumerated() where index > 0 {
            if let type = OfflineModel.shapeWords[word] ?? OfflineModel.shapeWords[String(word.dropLast())], type != "text",
               let number = Self.number(words[index - 1]) {
                return .grid(count: min(max(number, 1), 36), type: type)
            }
        }
        return .shapes
    }

    /// The canvas objects: a title, then the drawing.
    var objects: [JSON] {
        var objects: [JSON] = [OfflineModel.text(id: "title", x: 0, y: 0, text: String(instructions.prefix(80)), size: 24)]
        switch kind {
        case .flowchart(let steps, let decision): objects += flowchart(steps: steps, decision: decision)
        case .mindMap(let branches): objects += mindMap(branches: branches)
        case .tree(let children): objects += tree(children: children)
        case .timeline(let events): objects += timeline(events: events)
        case .grid(let count, let type): objects += grid(count: count, type: type)
        case .shapes: objects += shapes()
        }
        return objects
    }

    // MARK: Drawings

    private func flowchart(steps: Int, decision: Bool) -> [JSON] {
        let names = labels(steps, otherwise: { "Step \($0 + 1)" })
        var objects: [JSON] = []
        for index in 0..<steps {
            let x = index * 220
            objects.append(OfflineModel.shape(id: "step\(index + 1)", type: "rectangle", x: x, y: 80, width: 160, height: 80, fill: colour(index)))
            objects.append(OfflineModel.text(id: "step\(index + 1)-label", x: x + 20, y: 110, text: names[index], size: 20))
            if index > 0 { objects.append(arrow("arrow\(index)", from: "step\(index)", to: "step\(index + 1)", x: x - 60, y: 120, dx: 60, dy: 0)) }
        }
        guard decision else { return objects }
        // After the last step: a question, "yes" on to the end, "no" back to the first step.
        let x = steps * 220
        objects.append(OfflineModel.shape(id: "decision", type: "diamond", x: x, y: 60, width: 160, height: 120, fill: colour(steps)))
        objects.append(OfflineModel.text(id: "decision-label", x: x + 40, y: 110, text: "OK?", size: 20))
        objects.append(arrow("arrow-decision", from: "step\(steps)", to: "decision", x: x - 60, y: 120, dx: 60, dy: 0))
        objects.append(OfflineModel.shape(id: "done", type: "ellipse", x: x + 240, y: 80, width: 140, height: 80, fill: colour(steps + 1)))
        objects.append(OfflineModel.text(id: "done-label", x: x + 280, y: 110, text: "Done", size: 20))
        objects.append(arrow("arrow-yes", from: "decision", to: "done", x: x + 160, y: 120, dx: 80, dy: 0))
        objects.append(OfflineModel.text(id: "yes-label", x: x + 180, y: 95, text: "yes", size: 16))
        objects.append(arrow("arrow-no", from: "decision", to: "step1", x: x + 80, y: 180, dx: 0, dy: 0, via: [[0, 60], .array([.int(-x), 60]), .array([.int(-x), -20])]))
        objects.append(OfflineModel.text(id: "no-label", x: x + 90, y: 200, text: "no", size: 16))
        return objects
    }

    private func mindMap(branches: Int) -> [JSON] {
        let count = min(max(branches, 1), 16)
        let topic = about ?? "Topic"
        let (cx, cy, radius) = (400, 380, 280)
        var objects: [JSON] = [
            OfflineModel.shape(id: "centre", type: "ellipse", x: cx - 110, y: cy - 60, width: 220, height: 120, fill: colour(0)),
            OfflineModel.text(id: "centre-label", x: cx - 80, y: cy - 12, text: topic, size: 24),
        ]
        let names = labels(count, otherwise: { "Idea \($0 + 1)" }, words: contentWords.filter { $0 != topic.lowercased() }.map(\.capitalized))
        for index in 0..<count {
            let angle = Double(index) / Double(count) * 2 * Double.pi - Double.pi / 2
            let bx = cx + Int((Double(radius) * cos(angle)).rounded()), by = cy + Int((Double(radius) * 0.75 * sin(angle)).rounded())
            let id = "branch\(index + 1)"
            objects.append(OfflineModel.shape(id: id, type: "rectangle", x: bx - 80, y: by - 35, width: 160, height: 70, fill: colour(index + 1)))
            objects.append(OfflineModel.text(id: "\(id)-label", x: bx - 65, y: by - 10, text: names[index], size: 18))
            objects.append(line("\(id)-line", from: "centre", to: id, x: cx, y: cy, dx: bx - cx, dy: by - cy))
        }
        return objects
    }

    private func tree(children: Int) -> [JSON] {
        let count = min(max(children, 1), 12)
        let width = count * 200
        let root = max(0, width / 2 - 90)
        var objects: [JSON] = [
            OfflineModel.shape(id: "root", type: "rectangle", x: root, y: 80, width: 180, height: 70, fill: colour(0)),
            OfflineModel.text(id: "root-label", x: root + 20, y: 105, text: about ?? "Lead", size: 20),
        ]
        let names = labels(count, otherwise: { "Member \($0 + 1)" })
        for index in 0..<count {
            let x = index * 200, id = "node\(index + 1)"
            objects.append(OfflineModel.shape(id: id, type: "rectangle", x: x, y: 260, width: 160, height: 70, fill: colour(index + 1)))
            objects.append(OfflineModel.text(id: "\(id)-label", x: x + 15, y: 285, text: names[index], size: 18))
            objects.append(line("\(id)-line", from: "root", to: id, x: root + 90, y: 150, dx: x + 80 - (root + 90), dy: 110))
        }
        return objects
    }

    private func timeline(events: Int) -> [JSON] {
        let count = min(max(events, 2), 16)
        let length = (count - 1) * 180 + 80
        var objects: [JSON] = [
            ["id": "axis", "type": "arrow", "x": 0, "y": 200, "points": [[0, 0], .array([.int(length + 40), 0])], "strokeColor": "#1e1e1e", "strokeWidth": 2],
        ]
        let names = labels(count, otherwise: { "Event \($0 + 1)" })
        for index in 0..<count {
            let x = 40 + index * 180, id = "event\(index + 1)", above = index % 2 == 0
            objects.append(OfflineModel.shape(id: id, type: "ellipse", x: x - 12, y: 188, width: 24, height: 24, fill: colour(index)))
            objects.append(OfflineModel.text(id: "\(id)-label", x: x - 40, y: above ? 140 : 240, text: names[index], size: 18))
        }
        return objects
    }

    private func grid(count: Int, type: String) -> [JSON] {
        let columns = max(1, Int(Double(count).squareRoot().rounded(.up)))
        return (0..<count).map { index in
            OfflineModel.shape(id: "\(type)\(index + 1)", type: type, x: (index % columns) * 160, y: 80 + (index / columns) * 160, width: 120, height: 120, fill: colour(index))
        }
    }

    private func shapes() -> [JSON] {
        var shapes: [(String, String)] = []
        for word in words {
            if let type = OfflineModel.shapeWords[word] { shapes.append((word, type)) }
        }
        if shapes.isEmpty {
            let found = contentWords.prefix(2)
            shapes = found.isEmpty ? [("idea", "rectangle"), ("note", "note")] : found.enumerated().map { ($1, $0 == 0 ? "rectangle" : "note") }
        }
        var objects: [JSON] = []
        for (index, (word, type)) in shapes.prefix(24).enumerated() {
            let x = (index % 4) * 200, y = 80 + (index / 4) * 180
            let id = "\(word)\(index + 1)"
            objects.append(OfflineModel.shape(id: id, type: type, x: x, y: y, width: 140, height: 120, fill: colour(index)))
            objects.append(OfflineModel.text(id: "\(id)-label", x: x + 10, y: y + 130, text: word, size: 16))
        }
        return objects
    }

    // MARK: Words

    /// Words that say what to draw rather than what it is about.
    static let drawingWords: Set<String> = [
        "a", "an", "the", "of", "with", "and", "or", "for", "to", "in", "on", "about", "draw", "make", "create", "show", "me", "please",
        "mind", "map", "mindmap", "flowchart", "flow", "chart", "process", "step", "steps", "stage", "stages", "box", "boxes",
        "branch", "branches", "idea", "ideas", "topic", "topics", "node", "nodes", "tree", "org", "organisation", "organization",
        "hierarchy", "timeline", "event", "events", "milestones", "years", "phases", "grid", "diagram", "simple", "small", "big",
        "decision", "decisions", "if", "people", "children", "members", "teams", "reports", "that", "this", "it", "is", "are", "my", "our",
        "using", "colours", "colors", "style", "points", "dates", "departments",
    ]

    /// The words left when the drawing words, numbers and shape names are taken out, in order, once each.
    var contentWords: [String] {
        var seen: Set<String> = []
        return words.filter { word in
            !Self.drawingWords.contains(word) && Self.number(word) == nil && OfflineModel.shapeWords[word] == nil
                && word.count > 2 && seen.insert(word).inserted
        }
    }

    /// What the drawing is about: the first content word after `about`, `on` or `of`, else the first.
    var about: String? {
        for (index, word) in words.enumerated() where ["about", "on", "of", "for"].contains(word) {
            if let next = words[(index + 1)...].first(where: { contentWords.contains($0) }) { return next.capitalized }
        }
        return contentWords.first?.capitalized
    }

    /// `count` labels: the items listed after a colon, else `words`, then `otherwise`.
    private func labels(_ count: Int, otherwise: (Int) -> String, words: [String] = []) -> [String] {
        var given = words
        if let colon = instructions.firstIndex(of: ":") {
            given = instructions[instructions.index(after: colon)...]
                .split(whereSeparator: { $0 == "," || $0 == ";" || $0 == "\n" })
                .map { String($0.trimmingPrefix(while: \.isWhitespace)).replacingOccurrences(of: "and ", with: "") }
                .map { String($0.prefix(40)).trimmingSuffix }
                .filter { !$0.isEmpty }
        }
        return (0..<count).map { $0 < given.count ? given[$0] : otherwise($0) }
    }

    private func count(before nouns: [String]) -> Int? {
        for (index, word) in words.enumerated() where nouns.contains(word) && index > 0 {
            if let number = Self.number(words[index - 1]) { return min(max(number, 1), 12) }
        }
        return nil
    }

    static func number(_ word: String) -> Int? { Int(word) ?? OfflineModel.numberWords[word] }

    private func colour(_ index: Int) -> String { palette[index % palette.count] }

    private func arrow(_ id: String, from: String, to: String, x: Int, y: Int, dx: Int, dy: Int, via: [JSON]? = nil) -> JSON {
        let points: [JSON] = via.map { [[0, 0]] + $0 } ?? [[0, 0], .array([.int(dx), .int(dy)])]
        return ["id": .string(id), "type": "arrow", "x": .int(x), "y": .int(y), "points": .array(points), "start": .string(from), "end": .string(to), "strokeColor": "#1e1e1e"]
    }

    private func line(_ id: String, from: String, to: String, x: Int, y: Int, dx: Int, dy: Int) -> JSON {
        ["id": .string(id), "type": "line", "x": .int(x), "y": .int(y), "points": [[0, 0], .array([.int(dx), .int(dy)])], "start": .string(from), "end": .string(to), "strokeColor": "#868e96"]
    }
}

private extension String {
    var trimmingSuffix: String {
        var text = Substring(self)
        while let last = text.last, last.isWhitespace || last == "." { text.removeLast() }
        return String(text)
    }
}
