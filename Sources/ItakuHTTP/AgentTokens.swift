import Crypto
import Foundation
import ItakuCore
import ItakuRegistry
import JWTKit
import Synchronization

/// Verifies agent tokens (`Itaku-Agent`): signature (EdDSA, ECDSA or RSA, keys from a JWKS
/// file, or the keyring's demo issuer key), issuer, audience, expiry and not-before with a small
/// leeway. A verified token is remembered until it expires, so a busy agent does not pay a
/// signature check per request.
final class AgentTokens: Sendable {
    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var iss: IssuerClaim
        var aud: AudienceClaim
        var exp: ExpirationClaim
        var nbf: NotBeforeClaim?
        var iat: IssuedAtClaim?
        /// The authorized party: the integration (its id) the token was issued for.
        var azp: String?

        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    private let keys: JWTKeyCollection
    private let issuer: String
    private let audience: String
    private let leeway: TimeInterval
    /// `agents.maxTokenMinutes`: a token valid for longer (from `iat`, or from now) is refused.
    private let maxLifetime: TimeInterval
    /// `agents.requireAuthorizedParty`: a token without `azp` is refused.
    private let requireAuthorizedParty: Bool
    /// SHA-256 of a token → (employee id, expiry, authorized party).
    private let cache = Mutex<[Data: (String, Date, String?)]>([:])

    init(
        keys: JWTKeyCollection, issuer: String, audience: String, leeway: TimeInterval = 30, maxLifetime: TimeInterval = 86_400,
        requireAuthorizedParty: Bool = false
    ) {
        self.keys = keys
        self.requireAuthorizedParty = requireAuthorizedParty
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.maxLifetime = maxLifetime
    }

    /// The issuer's keys: a JWKS file, or one public key in a PEM file (Ed25519, P-256 or RSA),
    /// or else the keyring's demo issuer key.
    static func demo(keyring: Keyring, jwksFile: String?, pemFile: String? = nil) async throws -> JWTKeyCollection {
        let keys = JWTKeyCollection()
        if let jwksFile {
            try await keys.add(jwksJSON: try pinned(jwks: String(contentsOfFile: jwksFile, encoding: .utf8)))
        } else if let pemFile {
            let pem = try String(contentsOfFile: pemFile, encoding: .utf8)
            if let key = try? EdDSA.PublicKey(pem: pem) {
                await keys.add(eddsa: key)
            } else if let key = try? ES256PublicKey(pem: pem) {
                await keys.add(ecdsa: key)
            } else {
                await keys.add(rsa: try Insecure.RSA.PublicKey(pem: pem), digestAlgorithm: .sha256)
            }
        } else {
            await keys.add(eddsa: EdDSA.PublicKey(backing: keyring.agentTokenKey.publicKey), kid: JWKIdentifier(string: keyring.agentTokenKeyID))
        }
        return keys
    }

    /// The JWKS with each signing key's algorithm fixed. A key without `alg` would otherwise
    /// take the algorithm of the first token that names it, before any signature is checked:
    /// one forged header (`PS512`) would then fail every real token until a restart. A key
    /// without `alg` gets its type's usual one (`EdDSA` for Ed25519, `ES256`/`ES384`/`ES512` for
    /// P-256/P-384/P-521, `RS256` for RSA); a declared one is kept when it fits the key's type.
    /// Keys for encryption (`use: enc`, or an `alg` that signs nothing) are left out, as jwt-kit
    /// would not sign with them anyway; a signing key whose `alg` does not fit its type, or a
    /// set without any signing key, is refused at start.
    static func pinned(jwks text: String) throws -> String {
        guard var object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let keys = object["keys"] as? [[String: Any]]
        else { throw AgentKeyError(index: nil) }
        var signing: [[String: Any]] = []
        for (index, key) in keys.enumerated() {
            let declared = key["alg"] as? String
            if key["use"] as? String == "enc" { continue }
            if let declared, !Self.signingAlgorithms.contains(declared) { continue }
            let fitting: [String] = switch (key["kty"] as? String, key["crv"] as? String) {
            case ("OKP", "Ed25519"): ["EdDSA"]
            case ("EC", "P-256"): ["ES256"]
            case ("EC", "P-384"): ["ES384"]
            case ("EC", "P-521"): ["ES512"]
            case ("RSA", _): ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
            default: []
            }
            guard let algorithm = declared ?? fitting.first, fitting.contains(algorithm) else { throw AgentKeyError(index: index) }
            var pinned = key
            pinned["alg"] = algorithm
            signing.append(pinned)
        }
        guard !signing.isEmpty else { throw AgentKeyError(index: nil) }
        object["keys"] = signing
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    static let signingAlgorithms: Set<String> = ["EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]

    /// A JWKS file Itaku cannot take: not a key set, or a key of another algorithm.
    struct AgentKeyError: Error, CustomStringConvertible {
        var index: Int?
        var description: String {
            guard let index else { return "agents.jwksFile is not a JSON Web Key Set with a signing key" }
            return "agents.jwksFile: key \(index) names a signing algorithm that does not fit its type"
        }
    }

    /// The employee id the token vouches for, or nil when it does not verify. A token that
    /// names its authorized party (`azp`) is good only for that integration, so a token lifted
    /// from one tool cannot be replayed through another.
    func employeeID(from token: String, integration: UUID, now: Date = Date()) async -> String? {
        guard token.utf8.count < 8192 else { return nil }
        let digest = APIKeys.digest(token).withUnsafeBytes { Data($0) }
        let party = integration.lowercasedString
        if let (subject, expiry, azp) = cache.withLock({ $0[digest] }) {
            if expiry.addingTimeInterval(leeway) > now { return accepts(azp, party) ? subject : nil }
            cache.withLock { _ = $0.removeValue(forKey: digest) }
        }
        guard let claims = try? await keys.verify(token, as: Claims.self) else { return nil }
        guard claims.iss.value == issuer, claims.aud.value.contains(audience),
            claims.exp.value.addingTimeInterval(leeway) > now,
            (claims.nbf?.value.addingTimeInterval(-leeway) ?? .distantPast) <= now,
            // Capped from issue and from now: a far-future expiry cannot hide behind a late iat.
            claims.exp.value.timeIntervalSince(claims.iat?.value ?? now) <= maxLifetime + leeway,
            claims.exp.value.timeIntervalSince(now) <= maxLifetime + leeway,
            (claims.iat?.value ?? now) <= now.addingTimeInterval(leeway),
            AgentsController.isEmployeeID(claims.sub.value)
        else { return nil }
        let azp = claims.azp?.lowercased()
        cache.withLock { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[digest] = (claims.sub.value, claims.exp.value, azp)
        }
        return accepts(azp, party) ? claims.sub.value : nil
    }

    private func accepts(_ azp: String?, _ party: String) -> Bool {
        guard let azp else { return !requireAuthorizedParty }
        return azp == party
    }
}
