import Foundation

/// UTC timestamps as ISO 8601 text with microseconds (`2026-11-22T21:05:38.123456Z`), the
/// precision PostgreSQL keeps. Hand-written because Foundation's format styles cost tens of
/// microseconds per call on Linux, and exports and log lines call this for every row.
public enum Timestamp {
    public static func iso8601(_ date: Date) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(27)
        appendISO8601(date, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `iso8601(date)`'s 27 bytes to `out`.
    public static func appendISO8601(_ date: Date, to out: inout [UInt8]) {
        // Clamped to the years 1–9999 (what PostgreSQL gives back to Itaku is always inside).
        let clamped = min(max(date.timeIntervalSince1970, -62_135_596_800), 253_402_300_799)
        let micros = Int64((clamped * 1_000_000).rounded())
        var days = micros / 86_400_000_000
        var rest = micros % 86_400_000_000
        if rest < 0 {
            rest += 86_400_000_000
            days -= 1
        }
        let (year, month, day) = civil(days: Int(days))
        let seconds = Int(rest / 1_000_000), fraction = Int(rest % 1_000_000)
        func digits(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                divisor /= 10
            }
        }
        digits(year, 4)
        out.append(UInt8(ascii: "-"))
        digits(month, 2)
        out.append(UInt8(ascii: "-"))
        digits(day, 2)
        out.append(UInt8(ascii: "T"))
        digits(seconds / 3600, 2)
        out.append(UInt8(ascii: ":"))
        digits(seconds / 60 % 60, 2)
        out.append(UInt8(ascii: ":"))
        digits(seconds % 60, 2)
        out.append(UInt8(ascii: "."))
        digits(fraction, 6)
        out.append(UInt8(ascii: "Z"))
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func civil(days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
