public import GenflowCore

/// Turns a model's reply into valid canvas objects: finds the JSON in prose or code fences, reads
/// it leniently (repairing a reply cut off mid-way), validates each object, and drops the bad ones
/// with a warning each.
public struct CanvasParser: Sendable {
    /// Most objects kept (the rest are dropped with a warning, not counted as bad).
    public var maxObjects: Int
    /// The reply fails when more than this fraction of its objects is bad.
    public var maxInvalidFraction: Double

    public init(maxObjects: Int = CanvasSchema.maxObjects, maxInvalidFraction: Double = 0.2) {
        self.maxObjects = maxObjects
        self.maxInvalidFraction = maxInvalidFraction
    }

    /// What a reply gave.
    public struct Outcome: Sendable, Hashable {
        public var objects: [JSON]
        public var warnings: [String]
        /// Objects refused (bad), not counting those beyond `maxObjects`.
        public var dropped: Int
        /// Objects found in the reply, good and bad.
        public var total: Int

        /// The stage output: `{objects, warnings, dropped}`.
        public var json: JSON {
            ["objects": .array(objects), "warnings": .array(warnings.map(JSON.string)), "dropped": .int(dropped)]
        }
    }

    /// Parses `text`. Throws `output_invalid` when no object is valid or too many are bad.
    public func parse(_ text: String) throws(StepError) -> Outcome {
        let outcome: Outcome
        do {
            outcome = try read(text)
        } catch {
            throw StepError(.outputInvalid, "no canvas objects in the reply: \(error.message)")
        }
        if outcome.objects.isEmpty {
            let reasons = outcome.warnings.prefix(5).joined(separator: "; ")
            throw StepError(.outputInvalid, "no valid canvas objects (\(outcome.total) found)\(reasons.isEmpty ? "" : ": \(reasons)")")
        }
        if outcome.total > 0, Double(outcome.dropped) / Double(outcome.total) > maxInvalidFraction {
            let reasons = outcome.warnings.prefix(5).joined(separator: "; ")
            throw StepError(.outputInvalid, "\(outcome.dropped) of \(outcome.total) canvas objects are invalid (more than \(Int(maxInvalidFraction * 100))%): \(reasons)")
        }
        return outcome
    }

    /// The objects complete so far in a reply that is still streaming (for `canvas.objects` events):
    /// valid objects only, without failing on what is missing. A reply cut just after an object
    /// (as a stream of one object per chunk is) is closed and read strictly; any other cut leniently.
    public func completeObjects(inPartial text: String) -> [JSON] {
        if text.last(where: { !$0.isWhitespace }) == "}" {
            for closing in ["]", "]}"] {
                if let outcome = try? read(text + closing, lenient: false) { return outcome.objects }
            }
        }
        return (try? read(text))?.objects ?? []
    }

    struct ReadFailure: Error {
        var message: String
    }

    /// Reads the reply's objects: strictly first (a well-formed reply, the usual case, costs one
    /// fast parse), then, unless `lenient` is false, with `LenientJSON`'s repairs.
    func read(_ text: String, lenient: Bool = true) throws(ReadFailure) -> Outcome {
        let body = Self.unfenced(text)
        guard let start = body.firstIndex(where: { $0 == "[" || $0 == "{" }) else {
            throw ReadFailure(message: "the reply holds no JSON list or object")
        }
        let json = String(body[start...])
        let reading: LenientJSON.Reading
        if let value = try? JSON(parsing: json) {
            reading = LenientJSON.Reading(value: value, isTruncated: false)
        } else if !lenient {
            throw ReadFailure(message: "not strict JSON")
        } else {
            do {
                reading = try LenientJSON.read(json)
            } catch {
                throw ReadFailure(message: "\(error)")
            }
        }
        var warnings: [String] = []
        if reading.isTruncated { warnings.append("the reply was cut off; objects after the last complete one are lost") }
        let candidates: [JSON]
        switch reading.value {
        case .array(let elements): candidates = elements
        case .object(let members):
            if let list = (members["objects"] ?? members["elements"])?.arrayValue {
                candidates = list
            } else if members["type"] != nil {
                candidates = [reading.value]
            } else {
                throw ReadFailure(message: "the JSON object has no 'objects' list")
            }
        default:
            throw ReadFailure(message: "expected a list of objects, found \(reading.value.typeName)")
        }

        var valid: [JSON] = []
        var seen = Set<String>()
        var dropped = 0
        for candidate in candidates {
            switch CanvasSchema.validate(candidate, notes: &warnings) {
            case .success(let object):
                let id = object["id"]!.stringValue!
                if seen.contains(id) {
                    dropped += 1
                    warnings.append("object '\(id)' dropped: its id is used by an earlier object")
                } else {
                    seen.insert(id)
                    valid.append(object)
                }
            case .failure(let problem):
                dropped += 1
                warnings.append("\(problem) — dropped")
            }
        }
        if valid.count > maxObjects {
            warnings.append("\(valid.count - maxObjects) objects beyond the first \(maxObjects) dropped")
            valid = Array(valid.prefix(maxObjects))
            seen = Set(valid.compactMap { $0["id"]?.stringValue })
        }
        // Arrows and lines that name objects which do not exist (or were dropped) go too.
        var kept: [JSON] = []
        for object in valid {
            if let target = Self.missingEnd(of: object, among: seen) {
                dropped += 1
                warnings.append("object '\(object["id"]?.stringValue ?? "")' dropped: it points at '\(target)', which is not on the canvas")
            } else {
                kept.append(object)
            }
        }
        return Outcome(objects: kept, warnings: warnings, dropped: dropped, total: candidates.count)
    }

    /// The end (`start`, `end`) of an arrow or line that names no object among `ids`.
    static func missingEnd(of object: JSON, among ids: Set<String>) -> String? {
        for end in ["start", "end"] {
            if let target = object[end]?.stringValue, !ids.contains(target) { return target }
        }
        return nil
    }

    /// The inside of the first ``` fence, if any (to the end when the fence is never closed).
    static func unfenced(_ text: String) -> Substring {
        guard let open = fence(in: text[...]) else { return Substring(text) }
        var rest = text[open.upperBound...]
        if let newline = rest.firstIndex(of: "\n") { rest = rest[rest.index(after: newline)...] }
        if let close = fence(in: rest) { return rest[..<close.lowerBound] }
        return rest
    }

    /// The first ``` in `text`, found over its UTF-8 bytes (the standard library's substring
    /// search was a tenth of a busy daemon's CPU in perf, on replies that have no fence at all).
    private static func fence(in text: Substring) -> Range<String.Index>? {
        let bytes = text.utf8
        var run = 0
        var index = bytes.startIndex
        while index != bytes.endIndex {
            if bytes[index] == UInt8(ascii: "`") {
                run += 1
                if run == 3 { return bytes.index(index, offsetBy: -2)..<bytes.index(after: index) }
            } else {
                run = 0
            }
            index = bytes.index(after: index)
        }
        return nil
    }
}
