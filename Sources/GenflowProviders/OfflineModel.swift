public import GenflowCore

/// The offline provider: no network, no model. It builds a plausible drawing from the words of the
/// instructions, deterministically (the same instructions give the same drawing), and says so in
/// its `model` name. For demos, tests and benchmarks.
public struct OfflineModel: Sendable {
    /// The name it reports as its model.
    public static let modelName = "offline (deterministic drawing; no model was called)"

    public init() {}

    /// The canvas objects the offline model draws for `instructions` in `colourScheme` (`OfflineDrawing`).
    public func drawing(for instructions: String, colourScheme: String) -> [JSON] {
        OfflineDrawing(instructions: instructions, palette: Self.palette(colourScheme)).objects
    }

    /// Words that name a shape, and the shape.
    static let shapeWords: [String: String] = [
        "circle": "ellipse", "ellipse": "ellipse", "sun": "ellipse", "ball": "ellipse", "moon": "ellipse", "face": "ellipse",
        "tree": "ellipse", "cloud": "ellipse", "square": "rectangle", "rectangle": "rectangle", "box": "rectangle",
        "house": "rectangle", "building": "rectangle", "door": "rectangle", "window": "rectangle", "car": "rectangle",
        "table": "rectangle", "server": "rectangle", "database": "rectangle", "diamond": "diamond", "decision": "diamond",
        "roof": "diamond", "note": "note", "sticky": "note", "frame": "frame", "text": "text", "label": "text",
    ]

    static let numberWords = [
        "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    ]

    static func palette(_ scheme: String) -> [String] {
        let palettes: [String: [String]] = [
            "default": ["#a5d8ff", "#b2f2bb", "#ffec99", "#ffc9c9", "#d0bfff"],
            "warm": ["#ffc9c9", "#ffd8a8", "#ffec99", "#fcc2d7"],
            "cool": ["#a5d8ff", "#99e9f2", "#b2f2bb", "#d0bfff"],
            "pastel": ["#fff3bf", "#d3f9d8", "#e7f5ff", "#f3d9fa"],
            "monochrome": ["#f1f3f5", "#dee2e6", "#ced4da", "#adb5bd"],
            "vibrant": ["#ff6b6b", "#fcc419", "#51cf66", "#339af0"],
        ]
        let key = scheme.lowercased().trimmingCharacters(in: " .")
        if let palette = palettes[key] { return palette }
        let names = palettes.keys.sorted()
        let index = key.unicodeScalars.reduce(0) { ($0 &* 31 &+ Int($1.value)) & 0xFFFF } % names.count
        return palettes[names[index]]!
    }

    static func shape(id: String, type: String, x: Int, y: Int, width: Int, height: Int, fill: String) -> JSON {
        [
            "id": .string(id), "type": .string(type), "x": .int(x), "y": .int(y), "width": .int(width), "height": .int(height),
            "strokeColor": "#1e1e1e", "backgroundColor": .string(fill), "fillStyle": "solid", "strokeWidth": 2,
        ]
    }

    static func text(id: String, x: Int, y: Int, text: String, size: Int) -> JSON {
        ["id": .string(id), "type": "text", "x": .int(x), "y": .int(y), "text": .string(text), "fontSize": .int(size), "strokeColor": "#1e1e1e"]
    }

    /// The reply as the chunks a streaming model would send: the JSON list, a piece per object.
    public func replyChunks(for objects: [JSON]) -> [String] {
        guard !objects.isEmpty else { return ["[]"] }
        var chunks: [String] = []
        for (index, object) in objects.enumerated() {
            chunks.append((index == 0 ? "[" : ",") + object.description)
        }
        chunks.append("]")
        return chunks
    }

    /// Token counts in the way a provider reports them (about four characters a token).
    public static func usage(promptCharacters: Int, completionCharacters: Int) -> JSON {
        let prompt = max(1, promptCharacters / 4), completion = max(1, completionCharacters / 4)
        return ["prompt_tokens": .int(prompt), "completion_tokens": .int(completion), "total_tokens": .int(prompt + completion)]
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
