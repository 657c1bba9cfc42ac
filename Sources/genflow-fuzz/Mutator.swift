import GenflowCore

/// Byte-level mutations of an input: bit flips, deletions, duplicated and swapped lines,
/// truncation, splices with another input, and insertions of what means something to the parser
/// under test (tokens, key names, odd values, deep nesting, very long runs, invalid UTF-8).
struct Mutator {
    /// Tokens significant to the format (`:`, `- `, `{{`, `[`…), inserted anywhere.
    var tokens: [String]
    /// Values that stress a reader (huge numbers, NaN spellings, wrong types), put in place of a value.
    var values: [String]
    /// Key names, known and unknown, put in place of a key.
    var keys: [String]
    /// Opening and closing brackets for deep nesting.
    var nestings: [(open: String, close: String)]

    /// Byte sequences that are not UTF-8: stray continuation bytes, overlong forms, surrogates,
    /// sequences cut short, bytes that never occur.
    static let invalidUTF8: [[UInt8]] = [
        [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
        [0xF4, 0x90, 0x80, 0x80], [0xF5], [0xFE], [0xFF], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xC3], [0xFF, 0xFE],
    ]

    /// `input` after one to eight stacked mutations; `donors` are other inputs to splice from.
    func mutate(_ input: [UInt8], donors: [[UInt8]], using rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<rng.size(upTo: 8) {
            mutateOnce(&bytes, donors: donors, using: &rng)
        }
        return bytes
    }

    /// One of fifteen equally likely mutations; one that cannot apply (a bit flip in an empty
    /// input) inserts a value instead.
    private func mutateOnce(_ bytes: inout [UInt8], donors: [[UInt8]], using rng: inout SplitMix64) {
        let position = rng.below(bytes.count + 1)
        switch rng.below(15) {
        case 0 where !bytes.isEmpty:
            bytes[min(position, bytes.count - 1)] ^= 1 << UInt8(rng.below(8))
        case 1 where !bytes.isEmpty:
            bytes[min(position, bytes.count - 1)] = UInt8(rng.below(256))
        case 2:
            bytes.removeSubrange(position..<min(bytes.count, position + rng.size(upTo: 64)))
        case 3:
            bytes.removeSubrange(position...)
        case 4:
            duplicateLine(&bytes, using: &rng)
        case 5:
            swapLines(&bytes, using: &rng)
        case 6, 7:
            bytes.insert(contentsOf: rng.pick(tokens).utf8, at: rng.chance(0.5) ? lineStart(before: position, in: bytes) : position)
        case 8:
            replaceValue(in: &bytes, with: rng.pick(values), using: &rng)
        case 9:
            replaceKey(in: &bytes, with: rng.pick(keys), using: &rng)
        case 10:
            let nesting = rng.pick(nestings)
            let depth = rng.size(upTo: 50_000)
            var text = String(repeating: nesting.open, count: depth)
            if rng.chance(0.5) { text += String(repeating: nesting.close, count: depth) }
            bytes.insert(contentsOf: text.utf8, at: position)
        case 11:
            let run = rng.pick(["a", "{{", "\\", " ", "\n", "9", "é", "'", "\"", "- "])
            bytes.insert(contentsOf: String(repeating: run, count: rng.size(upTo: 100_000)).utf8, at: position)
        case 12:
            bytes.insert(contentsOf: rng.pick(Self.invalidUTF8), at: position)
        case 13 where !donors.isEmpty:
            let donor = rng.pick(donors)
            let start = rng.below(donor.count + 1)
            bytes.insert(contentsOf: donor[start..<min(donor.count, start + rng.size(upTo: 400))], at: position)
        default:
            bytes.insert(contentsOf: rng.pick(values).utf8, at: position)
        }
    }

    /// The offset where the line holding `position` starts.
    private func lineStart(before position: Int, in bytes: [UInt8]) -> Int {
        bytes[..<position].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
    }

    /// The ranges of the lines of `bytes`, each with its newline.
    private func lines(of bytes: [UInt8]) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") {
            ranges.append(start..<index + 1)
            start = index + 1
        }
        if start < bytes.count { ranges.append(start..<bytes.count) }
        return ranges
    }

    /// Copies one line (a duplicate key, a second step) next to itself or somewhere else.
    private func duplicateLine(_ bytes: inout [UInt8], using rng: inout SplitMix64) {
        let ranges = lines(of: bytes)
        guard !ranges.isEmpty else { return }
        let line = Array(bytes[rng.pick(ranges)])
        let target = rng.chance(0.5) ? rng.pick(ranges).upperBound : rng.pick(ranges).lowerBound
        bytes.insert(contentsOf: line.last == UInt8(ascii: "\n") ? line : line + [UInt8(ascii: "\n")], at: target)
    }

    private func swapLines(_ bytes: inout [UInt8], using rng: inout SplitMix64) {
        let ranges = lines(of: bytes)
        guard ranges.count >= 2 else { return }
        let first = rng.below(ranges.count - 1)
        let second = first + 1 + rng.below(ranges.count - first - 1)
        let a = Array(bytes[ranges[first]]), b = Array(bytes[ranges[second]])
        bytes.replaceSubrange(ranges[second], with: a)
        bytes.replaceSubrange(ranges[first], with: b)
    }

    /// Puts `value` after a random `:` in place of what followed it up to the end of the line or a
    /// `,`, `}` or `]`: the structure stays, the value goes wrong.
    private func replaceValue(in bytes: inout [UInt8], with value: String, using rng: inout SplitMix64) {
        let colons = bytes.indices.filter { bytes[$0] == UInt8(ascii: ":") }
        guard !colons.isEmpty else { return }
        let start = rng.pick(colons) + 1
        let end = bytes[start...].firstIndex { ",}]\n".utf8.contains($0) } ?? bytes.count
        bytes.replaceSubrange(start..<end, with: Array(" \(value)".utf8))
    }

    /// Renames the key before a random `:` (an unknown key, a misspelt one, a duplicate).
    private func replaceKey(in bytes: inout [UInt8], with key: String, using rng: inout SplitMix64) {
        let colons = bytes.indices.filter { bytes[$0] == UInt8(ascii: ":") }
        guard !colons.isEmpty else { return }
        let end = rng.pick(colons)
        let isKeyByte = { (byte: UInt8) in byte >= 0x80 || "_-.\"'$".utf8.contains(byte) || (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) }
        let start = bytes[..<end].lastIndex { !isKeyByte($0) }.map { $0 + 1 } ?? 0
        bytes.replaceSubrange(start..<end, with: Array(key.utf8))
    }
}
