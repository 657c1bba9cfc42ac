public import GenflowCore

/// The valid objects of a reply while it streams in, each element read once. A scan that keeps
/// its place from piece to piece finds where each element of the list ends, and only that
/// element is parsed; reading the whole reply again whenever a piece closed an object was
/// quadratic (a model streaming one object a piece had its reply parsed once per object: perf
/// put the canvas parser at a tenth of the daemon on canvas jobs).
///
/// The list may be the reply itself or the value of `"objects"` / `"elements"` in an object
/// (structured output), after any prose or code fence. Anything else (an element that is not a
/// strict JSON object, a single object, a list under another key) is read whole, as
/// `CanvasParser.completeObjects(inPartial:)` reads it, at each piece that closes an object (past
/// 4 KiB, once the reply grew by half since the last read).
public struct CanvasStream: Sendable {
    private enum Phase: Sendable {
        case seeking
        /// Inside the reply's top object, looking for its list of objects.
        case wrapper
        /// Inside the list, whose elements sit at this depth.
        case list(depth: Int)
        case done
        /// Not a shape the scan follows: read whole.
        case whole
    }

    private let parser: CanvasParser
    /// The reply so far, as UTF-8.
    private var bytes: [UInt8] = []
    private var scanned = 0
    private var phase = Phase.seeking
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var stringStart = 0
    private var lastKey: ArraySlice<UInt8> = []
    private var elementStart: Int?
    /// Valid objects so far, each validated once as it arrived (ids unique, at most `maxObjects`).
    private var valid: [JSON] = []
    private var ids: Set<String> = []
    private var nextWholeRead = 0

    public init(parser: CanvasParser = CanvasParser()) {
        self.parser = parser
    }

    /// Adds `piece` to the reply. Returns the valid objects complete so far when this piece
    /// completed one (nil when it did not).
    public mutating func append(_ piece: String) -> [JSON]? {
        bytes.append(contentsOf: piece.utf8)
        let found = valid.count
        scan()
        if case .whole = phase {
            // Read whole at each piece that closes an object while the reply is small; past 4 KiB
            // only once it grew by half since the last read, so all reads together cost about
            // three reads of the whole reply (small pieces of a long lenient reply made this
            // quadratic: genflow-fuzz hung on 40 KiB sent 7 bytes a piece).
            guard piece.utf8.contains(UInt8(ascii: "}")), bytes.count <= 4096 || bytes.count >= nextWholeRead else { return nil }
            nextWholeRead = bytes.count + bytes.count / 2
            return parser.completeObjects(inPartial: String(decoding: bytes, as: UTF8.self))
        }
        guard valid.count > found else { return nil }
        // As `CanvasParser` keeps them: arrows and lines whose ends are not (yet) there wait.
        return valid.filter { CanvasParser.missingEnd(of: $0, among: ids) == nil }
    }

    /// Keeps an element of the list if it is a valid object with an id not seen before, within
    /// `maxObjects` (what `CanvasParser` keeps of a whole reply).
    private mutating func add(_ element: JSON) {
        guard valid.count < parser.maxObjects else { return }
        var notes: [String] = []
        guard case .success(let object) = CanvasSchema.validate(element, notes: &notes),
              let id = object["id"]?.stringValue, !ids.contains(id) else { return }
        ids.insert(id)
        valid.append(object)
    }

    private mutating func scan() {
        while scanned < bytes.count {
            let byte = bytes[scanned]
            defer { scanned += 1 }
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    if case .wrapper = phase, depth == 1 { lastKey = bytes[(stringStart + 1)..<scanned] }
                }
                continue
            }
            switch phase {
            case .seeking:
                if byte == UInt8(ascii: "[") {
                    phase = .list(depth: 1)
                    depth = 1
                } else if byte == UInt8(ascii: "{") {
                    phase = .wrapper
                    depth = 1
                }
            case .wrapper:
                switch byte {
                case UInt8(ascii: "\""):
                    inString = true
                    stringStart = scanned
                case UInt8(ascii: "["):
                    if depth == 1 {
                        guard lastKey.elementsEqual("objects".utf8) || lastKey.elementsEqual("elements".utf8) else { return giveUp() }
                        phase = .list(depth: 2)
                    }
                    depth += 1
                case UInt8(ascii: "{"):
                    depth += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    depth -= 1
                    if depth == 0 { return giveUp() }
                default:
                    break
                }
            case .list(let level):
                switch byte {
                case UInt8(ascii: "\""):
                    guard elementStart != nil else { return giveUp() }
                    inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    if depth == level {
                        guard byte == UInt8(ascii: "{") else { return giveUp() }
                        elementStart = scanned
                    }
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == level, let start = elementStart {
                        guard let object = try? JSON(parsing: String(decoding: bytes[start...scanned], as: UTF8.self)) else { return giveUp() }
                        add(object)
                        elementStart = nil
                    } else if depth < level {
                        phase = .done
                    }
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"), UInt8(ascii: ","):
                    break
                default:
                    if elementStart == nil { return giveUp() }
                }
            case .done, .whole:
                return
            }
        }
    }

    private mutating func giveUp() {
        phase = .whole
    }
}
