import Crypto
import Foundation
import ItakuCore

/// API keys: `itk_` followed by 32 base64url characters (192 random bits), so a leaked key is
/// recognisable. Only the SHA-256 of a key is stored; the key is shown once.
public enum APIKeys {
    public static let prefix = "itk_"

    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return prefix + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    public static func hash(_ key: String) -> [UInt8] {
        digest(key).withUnsafeBytes { Array($0) }
    }

    /// SHA-256 of `text`'s UTF-8, hashed where the string keeps it (no copy: every request's
    /// key and agent token are hashed).
    public static func digest(_ text: String) -> SHA256.Digest {
        var text = text
        var hash = SHA256()
        text.withUTF8 { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        return hash.finalize()
    }

    /// What may be shown of a key later: its prefix and first characters.
    public static func displayPrefix(_ key: String) -> String {
        String(key.prefix(prefix.count + 6))
    }

    /// The live key matching `presented`, found by its SHA-256 in a dictionary. The lookup's
    /// time may depend on how many leading bytes the presented key's digest shares with a stored
    /// one, but no caller can choose a digest's bytes, so that cannot be turned into a guess
    /// at any key byte by byte (why comparing secrets themselves needs `ConstantTime`).
    public static func authenticate(_ presented: String, in snapshot: RegistrySnapshot) -> APIKey? {
        guard presented.hasPrefix(prefix), presented.utf8.count <= 128 else { return nil }
        return snapshot.keys[digest(presented).withUnsafeBytes { Data($0) }]
    }
}
