import Foundation

/// A small seedable random number generator (Steele, Lea and Flood's SplitMix64), so a run with the
/// same `--seed` generates the same inputs.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    /// The generator for input number `index` of a run: each input is reproducible on its own.
    init(seed: UInt64, index: Int) {
        var mixer = SplitMix64(seed: seed)
        state = mixer.next() ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03)
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`.
    mutating func below(_ bound: Int) -> Int {
        Int.random(in: 0..<bound, using: &self)
    }

    /// True with probability `probability`.
    mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < probability
    }

    /// One element of a non-empty collection.
    mutating func pick<C: Collection>(_ elements: C) -> C.Element {
        elements.randomElement(using: &self)!
    }

    /// A size in `1...limit`, small sizes far more likely than large ones (uniform in log scale).
    mutating func size(upTo limit: Int) -> Int {
        let exponent = Double.random(in: 0...1, using: &self) * log2(Double(limit))
        return min(limit, max(1, Int(pow(2, exponent))))
    }
}
