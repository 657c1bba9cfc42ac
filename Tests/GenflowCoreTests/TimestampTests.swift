import Foundation
import GenflowCore
import Testing

@Suite("Timestamp: ISO 8601 with a zone, without Foundation's formatters")
struct TimestampTests {
    @Test("times with a zone are read to milliseconds and written in UTC", arguments: [
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
        ("2030-01-01T00:00:00+16:00", "2029-12-31T08:00:00.000Z"),
        ("2024-02-29T23:30:00.5-01:00", "2024-03-01T00:30:00.500Z"),
        ("2026-01-31t12:00:00.123456z", "2026-01-31T12:00:00.123Z"),
        ("2026-01-31T12:00:00+0530", "2026-01-31T06:30:00.000Z"),
        ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
    ])
    func reads(text: String, utc: String) throws {
        let milliseconds = try #require(Timestamp.parse(text))
        #expect(Timestamp.utc(milliseconds: milliseconds) == utc)
    }

    @Test("anything else is refused", arguments: [
        "tomorrow", "", "2026-01-31T12:00:00", "2026-01-31 12:00:00Z", "2026-1-31T12:00:00Z", "2023-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-31T24:00:00Z", "2026-01-31T12:60:00Z", "2026-01-31T12:00:60Z",
        "2026-01-31T12:00:00.Z", "2026-01-31T12:00:00+24:00", "2026-01-31T12:00:00Zjunk", "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00", "２026-01-31T12:00:00Z",
    ])
    func refuses(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test("writing agrees with ISO8601DateFormatter over 5,000 random times, and reading it back gives the same time")
    func agreesWithFoundation() throws {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        var random = SplitMix64(seed: 5)
        for _ in 0..<5_000 {
            let milliseconds = Int64.random(in: -2_208_988_800_000...4_102_444_800_000, using: &random)  // 1900…2100
            let text = Timestamp.utc(milliseconds: milliseconds)
            #expect(text == formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1_000)), "\(milliseconds)")
            #expect(Timestamp.parse(text) == milliseconds)
        }
    }
}
