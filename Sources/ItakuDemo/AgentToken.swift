import Crypto
import Foundation
import ItakuCore

/// Agent tokens of the local demo issuer: compact JWTs signed with EdDSA (Ed25519) by the
/// keyring's agent-token key, the subject being the agent's employee id.
public enum AgentToken {
    public static let issuer = "itaku-demo"
    public static let audience = "itaku"

    /// `authorizedParty`: the integration id the token is good for (`azp`); nil: any integration.
    public static func mint(
        employeeID: String, keyring: Keyring, lifetime: TimeInterval, authorizedParty: UUID? = nil, now: Date = Date()
    ) throws -> String {
        let header: [String: Any] = ["alg": "EdDSA", "typ": "JWT", "kid": keyring.agentTokenKeyID]
        var claims: [String: Any] = [
            "iss": issuer, "aud": audience, "sub": employeeID,
            "iat": Int(now.timeIntervalSince1970), "nbf": Int(now.timeIntervalSince1970) - 5,
            "exp": Int(now.addingTimeInterval(lifetime).timeIntervalSince1970),
        ]
        if let authorizedParty { claims["azp"] = authorizedParty.lowercasedString }
        let signingInput = try base64URL(JSONSerialization.data(withJSONObject: header, options: .sortedKeys)) + "."
            + base64URL(JSONSerialization.data(withJSONObject: claims, options: .sortedKeys))
        let signature = try keyring.agentTokenKey.signature(for: Data(signingInput.utf8))
        return signingInput + "." + base64URL(signature)
    }

    static func base64URL(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
