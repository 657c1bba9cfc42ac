/// A small seedable random number generator (Steele, Lea and Flood's SplitMix64): the same seed
/// gives the same numbers, for property tests and `genflow-fuzz --seed`.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    /// The generator for input number `index` of a run: each input is reproducible on its own.
    public init(seed: UInt64, index: Int) {
        var mixer = SplitMix64(seed: seed)
        state = mixer.next() ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03)
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
