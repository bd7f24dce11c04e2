/// Comparisons of secrets (key hashes, form tokens) whose time does not depend on where the
/// bytes first differ, so timing cannot reveal a secret byte by byte.
public enum ConstantTime {
    public static func equal<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
