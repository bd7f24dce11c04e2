import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension UUID {
    /// A random (version 4) UUID. Foundation's `UUID()` opens, reads and closes `/dev/urandom`
    /// for each one on Linux, and glibc's `arc4random_buf` makes a `getrandom` system call for
    /// each; these come 16 bytes at a time from a pool that one call refills with 4 KiB. Every
    /// request makes one or more (its request id, its access entry's id).
    public static func random() -> UUID {
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &bytes) { RandomPool.shared.fill($0) }
        bytes.6 = (bytes.6 & 0x0F) | 0x40  // version 4
        bytes.8 = (bytes.8 & 0x3F) | 0x80  // RFC 9562 variant
        return UUID(uuid: bytes)
    }

    /// A time-ordered (version 7, RFC 9562) UUID: 48 bits of Unix milliseconds, then 74 random
    /// bits. Access entries take these ids, so each new entry's key lands at the right end of
    /// its partition's primary-key index instead of on a random page of it.
    public static func timeOrdered(at date: Date = Date()) -> UUID {
        var id = random().uuid
        let milliseconds = UInt64(max(0, date.timeIntervalSince1970 * 1000)) & 0xFFFF_FFFF_FFFF
        id.0 = UInt8(truncatingIfNeeded: milliseconds >> 40)
        id.1 = UInt8(truncatingIfNeeded: milliseconds >> 32)
        id.2 = UInt8(truncatingIfNeeded: milliseconds >> 24)
        id.3 = UInt8(truncatingIfNeeded: milliseconds >> 16)
        id.4 = UInt8(truncatingIfNeeded: milliseconds >> 8)
        id.5 = UInt8(truncatingIfNeeded: milliseconds)
        id.6 = (id.6 & 0x0F) | 0x70  // version 7
        return UUID(uuid: id)
    }

    /// The lower-case text form (`5f0e2c1a-8d3b-…`), the form Itaku writes everywhere, built
    /// from a table rather than through `uuidString`'s formatting and `lowercased()`.
    public var lowercasedString: String {
        String(unsafeUninitializedCapacity: 36) { out in
            write(into: out)
            return 36
        }
    }

    /// The upper-case text form, the same as `uuidString` (which formats through `snprintf`).
    public var uppercasedString: String {
        String(unsafeUninitializedCapacity: 36) { out in
            write(into: out, digits: "0123456789ABCDEF")
            return 36
        }
    }

    /// Appends the lower-case text form's 36 bytes to `bytes`.
    public func appendLowercased(to bytes: inout [UInt8]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: 36))
        bytes.withUnsafeMutableBufferPointer { buffer in
            write(into: UnsafeMutableBufferPointer(rebasing: buffer[start..<(start + 36)]))
        }
    }

    private func write(into out: UnsafeMutableBufferPointer<UInt8>, digits: StaticString = "0123456789abcdef") {
        withUnsafeBytes(of: uuid) { bytes in
            digits.withUTF8Buffer { hex in
                var position = 0
                for index in 0..<16 {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        out[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    out[position] = hex[Int(bytes[index] >> 4)]
                    out[position + 1] = hex[Int(bytes[index] & 0x0F)]
                    position += 2
                }
            }
        }
    }
}

/// Random bytes for ids, drawn from the system's generator 4 KiB at a time.
final class RandomPool: Sendable {
    static let shared = RandomPool()
    private static let size = 4096

    private let state = Mutex<(bytes: [UInt8], used: Int)>((Array(repeating: 0, count: size), size))

    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count <= Self.size)
        state.withLock { state in
            if state.used + buffer.count > Self.size {
                state.bytes.withUnsafeMutableBytes { Self.systemRandom($0) }
                state.used = 0
            }
            state.bytes.withUnsafeBytes { pool in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: pool[state.used..<(state.used + buffer.count)]))
            }
            state.used += buffer.count
        }
    }

    private static func systemRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        #if os(Linux)
        if let base = buffer.baseAddress { return arc4random_buf(base, buffer.count) }
        #endif
        var generator = SystemRandomNumberGenerator()
        for offset in stride(from: 0, to: buffer.count, by: 8) {
            withUnsafeBytes(of: generator.next() as UInt64) { word in
                buffer.baseAddress!.advanced(by: offset).copyMemory(from: word.baseAddress!, byteCount: min(8, buffer.count - offset))
            }
        }
    }
}
