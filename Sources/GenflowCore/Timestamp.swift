/// ISO 8601 times with a zone (RFC 3339), read and written without Foundation's date formatters:
/// `POST /v1/jobs` with `run_at` made an `ISO8601DateFormatter` per request, and `make bench-submit`
/// found the daemon CPU-bound at about 620 such requests/s.
public enum Timestamp {
    /// Milliseconds since 1970-01-01T00:00:00Z of `2026-01-31T12:00:00Z`, `…T12:00:00.250+02:00`,
    /// `…T12:00:00-0530`; nil for anything else (no zone, impossible dates, years outside 1–9999).
    /// Digits past the milliseconds are dropped.
    public static func parse(_ text: String) -> Int64? {
        var reader = Reader(Array(text.utf8))
        guard let year = reader.number(4), reader.skip("-"), let month = reader.number(2), reader.skip("-"), let day = reader.number(2),
              reader.skip("T") || reader.skip("t"),
              let hour = reader.number(2), reader.skip(":"), let minute = reader.number(2), reader.skip(":"), let second = reader.number(2),
              (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day), year >= 1,
              hour < 24, minute < 60, second < 60 else { return nil }
        var milliseconds = 0
        if reader.skip(".") {
            var digits = 0
            while let digit = reader.digit() {
                if digits < 3 { milliseconds = milliseconds * 10 + digit }
                digits += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 3) { milliseconds *= 10 }
        }
        var offsetMinutes = 0
        if reader.skip("Z") || reader.skip("z") {
        } else if let sign = reader.skip("+") ? 1 : reader.skip("-") ? -1 : nil {
            guard let hours = reader.number(2) else { return nil }
            _ = reader.skip(":")
            guard let minutes = reader.number(2), hours < 24, minutes < 60 else { return nil }
            offsetMinutes = sign * (hours * 60 + minutes)
        } else {
            return nil
        }
        guard reader.isAtEnd else { return nil }
        let seconds = (daysFromCivil(year: year, month: month, day: day) * 86_400) + hour * 3_600 + minute * 60 + second - offsetMinutes * 60
        let result = Int64(seconds) * 1_000 + Int64(milliseconds)
        guard (minimum...maximum).contains(result) else { return nil }
        return result
    }

    /// `2026-01-31T10:00:00.250Z`: the time in UTC with milliseconds.
    public static func utc(milliseconds: Int64) -> String {
        let perDay: Int64 = 86_400_000
        let days = milliseconds >= 0 ? milliseconds / perDay : -((-milliseconds + perDay - 1) / perDay)
        let ofDay = Int(milliseconds - days * perDay)
        let (year, month, day) = civil(fromDays: Int(days))
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let (hour, minute, second) = (ofDay / 3_600_000, ofDay / 60_000 % 60, ofDay / 1_000 % 60)
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(ofDay % 1_000, 3))Z"
    }

    /// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
    static let minimum: Int64 = -62_135_596_800_000
    static let maximum: Int64 = 253_402_300_799_999

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date `days` after 1970-01-01 (`civil_from_days`).
    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) {
            self.bytes = bytes
        }

        var isAtEnd: Bool { index == bytes.count }

        mutating func skip(_ character: Unicode.Scalar) -> Bool {
            guard index < bytes.count, bytes[index] == UInt8(ascii: character) else { return false }
            index += 1
            return true
        }

        mutating func digit() -> Int? {
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { return nil }
            defer { index += 1 }
            return Int(bytes[index] - UInt8(ascii: "0"))
        }

        /// Exactly `count` digits.
        mutating func number(_ count: Int) -> Int? {
            var value = 0
            for _ in 0..<count {
                guard let digit = digit() else { return nil }
                value = value * 10 + digit
            }
            return value
        }
    }
}
