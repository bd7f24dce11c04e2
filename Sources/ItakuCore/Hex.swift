/// Lower-case hexadecimal text of bytes. Table-driven: `String(format: "%02x")` goes through
/// Foundation's formatter and dynamic casts, and cost more than the rest of an import row.
public enum Hex {
    @usableFromInline static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        encode(Array(bytes))
    }

    /// Inlinable, so that callers in other modules get it specialised for their collection.
    @inlinable
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            var position = 0
            for byte in bytes {
                out[position] = digits[Int(byte >> 4)]
                out[position + 1] = digits[Int(byte & 0x0F)]
                position += 2
            }
            return position
        }
    }
}
