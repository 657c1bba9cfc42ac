import Foundation
import GenflowCore

/// Draws for the generators, on the seeded generator of GenflowCore.
extension SplitMix64 {
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
