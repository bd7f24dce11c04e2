import Configuration
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuDemo
import Testing

@Suite("Agent tokens from an external issuer")
struct AgentTokenTests {
    static func base64URL(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// An ES256 JWS, signed with `key`: what an identity provider of the contact center issues.
    static func es256(subject: String, issuer: String, audience: String, kid: String?, key: P256.Signing.PrivateKey) throws -> String {
        let now = Int(Date().timeIntervalSince1970)
        var fields = ["alg": "ES256", "typ": "JWT"]
        if let kid { fields["kid"] = kid }
        let header = try JSONSerialization.data(withJSONObject: fields, options: .sortedKeys)
        let claims = try JSONSerialization.data(
            withJSONObject: ["sub": subject, "iss": issuer, "aud": audience, "iat": now, "exp": now + 600] as [String: Any], options: .sortedKeys
        )
        let input = base64URL(header) + "." + base64URL(claims)
        return input + "." + base64URL(try key.signature(for: Data(input.utf8)).rawRepresentation)
    }

    @Test("an ES256 token verifies against the issuer's JWKS file; one signed by another key, or for another issuer, does not")
    func jwks() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 20, policyholders: 2)
        let key = P256.Signing.PrivateKey()
        let raw = key.publicKey.x963Representation  // 0x04 || X || Y
        let jwks = ["keys": [[
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "idp-2026",
            "x": Self.base64URL(raw[1..<33]), "y": Self.base64URL(raw[33..<65]),
        ]]]
        let jwksFile = state + "/jwks.json"
        try JSONSerialization.data(withJSONObject: jwks).write(to: URL(fileURLWithPath: jwksFile))
        let app = try await makeApplication(database: database, settings: [
            "state.directory": .init(.string(state), isSecret: false),
            "agents.jwksFile": .init(.string(jwksFile), isSecret: false),
            "agents.tokenIssuer": .init(.string("https://idp.contact-center.example"), isSecret: false),
        ])
        let customer = try #require(Array(DemoCustomers(count: 1)).first)
        let issuer = "https://idp.contact-center.example"
        let good = try Self.es256(subject: "A0001", issuer: issuer, audience: "itaku", kid: "idp-2026", key: key)
        let forged = try Self.es256(subject: "A0001", issuer: issuer, audience: "itaku", kid: "idp-2026", key: P256.Signing.PrivateKey())
        let elsewhere = try Self.es256(subject: "A0001", issuer: "https://other.example", audience: "itaku", kid: "idp-2026", key: key)
        let body = jsonText(["by": "customer_no", "value": customer["customer_no"] ?? ""])
        try await app.test(.live) { client in
            func lookup(_ token: String) async throws -> JSONResponse {
                try await client.call(
                    .post, "/v1/tenants/acme-retail/datasets/customers/lookup", key: credentials["ITAKU_INTEGRATION_KEY"], json: jsonObject(body),
                    headers: [.init("Itaku-Agent")!: token, .init("Itaku-Purpose")!: "order-support", .init("Itaku-Case")!: "CALL-7"]
                )
            }
            let accepted = try await lookup(good)
            let forgedAnswer = try await lookup(forged)
            let elsewhereAnswer = try await lookup(elsewhere)
            // The demo issuer's own tokens are not trusted once a JWKS file names the issuer's keys.
            let demoAnswer = try await lookup(credentials["ITAKU_AGENT_TOKEN"] ?? "")
            #expect(accepted.status == .ok)
            #expect(forgedAnswer.code == "agent_unverified")
            #expect(elsewhereAnswer.code == "agent_unverified")
            #expect(demoAnswer.code == "agent_unverified")
        }
    }

    @Test("an ES256 token verifies against the issuer's public key in a PEM file")
    func pem() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 20, policyholders: 2)
        let key = P256.Signing.PrivateKey()
        let pemFile = state + "/issuer.pem"
        try key.publicKey.pemRepresentation.write(toFile: pemFile, atomically: true, encoding: .utf8)
        let app = try await makeApplication(database: database, settings: [
            "state.directory": .init(.string(state), isSecret: false),
            "agents.publicKeyFile": .init(.string(pemFile), isSecret: false),
        ])
        let customer = try #require(Array(DemoCustomers(count: 1)).first)
        let good = try Self.es256(subject: "A0001", issuer: "itaku-demo", audience: "itaku", kid: nil, key: key)
        let forged = try Self.es256(subject: "A0001", issuer: "itaku-demo", audience: "itaku", kid: nil, key: P256.Signing.PrivateKey())
        let body = jsonText(["by": "customer_no", "value": customer["customer_no"] ?? ""])
        try await app.test(.live) { client in
            var answers: [String] = []
            for token in [good, forged] {
                let response = try await client.call(
                    .post, "/v1/tenants/acme-retail/datasets/customers/lookup", key: credentials["ITAKU_INTEGRATION_KEY"], json: jsonObject(body),
                    headers: [.init("Itaku-Agent")!: token, .init("Itaku-Purpose")!: "order-support", .init("Itaku-Case")!: "CALL-8"]
                )
                answers.append(response.status == .ok ? "ok" : response.code ?? "?")
            }
            #expect(answers == ["ok", "agent_unverified"])
        }
    }

    /// A token with `alg` and `kid` as given, its signature garbage: what anyone holding an
    /// integration key can send.
    static func forgedHeader(alg: String, kid: String) throws -> String {
        let header = try JSONSerialization.data(withJSONObject: ["alg": alg, "kid": kid, "typ": "JWT"], options: .sortedKeys)
        let claims = try JSONSerialization.data(withJSONObject: ["sub": "A0001"], options: .sortedKeys)
        return base64URL(header) + "." + base64URL(claims) + "." + base64URL(Data(repeating: 7, count: 64))
    }

    @Test("a JWKS key without alg keeps its own algorithm: a token naming another first does not lock out real tokens; a key of another algorithm is refused at start")
    func jwksAlgorithmsArePinned() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 20, policyholders: 2)
        let key = P256.Signing.PrivateKey()
        let raw = key.publicKey.x963Representation
        let point: [String: Any] = ["kty": "EC", "crv": "P-256", "use": "sig", "kid": "idp-2027", "x": Self.base64URL(raw[1..<33]), "y": Self.base64URL(raw[33..<65])]
        let jwksFile = state + "/jwks.json"
        // An identity provider's set often holds an encryption key too: left out, not refused.
        let encryption: [String: Any] = ["kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc-1", "n": "AQAB", "e": "AQAB"]
        try JSONSerialization.data(withJSONObject: ["keys": [point, encryption]]).write(to: URL(fileURLWithPath: jwksFile))
        let issuer = "https://idp.contact-center.example"
        let settings: [AbsoluteConfigKey: ConfigValue] = [
            "state.directory": .init(.string(state), isSecret: false),
            "agents.jwksFile": .init(.string(jwksFile), isSecret: false),
            "agents.tokenIssuer": .init(.string(issuer), isSecret: false),
        ]
        let app = try await makeApplication(database: database, settings: settings)
        let customer = try #require(Array(DemoCustomers(count: 1)).first)
        let body = jsonText(["by": "customer_no", "value": customer["customer_no"] ?? ""])
        try await app.test(.live) { client in
            func lookup(_ token: String) async throws -> JSONResponse {
                try await client.call(
                    .post, "/v1/tenants/acme-retail/datasets/customers/lookup", key: credentials["ITAKU_INTEGRATION_KEY"], json: jsonObject(body),
                    headers: [.init("Itaku-Agent")!: token, .init("Itaku-Purpose")!: "order-support", .init("Itaku-Case")!: "CALL-9"]
                )
            }
            for alg in ["PS512", "ES384", "HS256"] {
                #expect(try await lookup(try Self.forgedHeader(alg: alg, kid: "idp-2027")).code == "agent_unverified")
            }
            let good = try Self.es256(subject: "A0001", issuer: issuer, audience: "itaku", kid: "idp-2027", key: key)
            let answer = try await lookup(good)
            #expect(answer.status == .ok, "\(answer.text)")
        }
        // A key that names an algorithm other than its own type's is refused at start.
        var mislabelled = point
        mislabelled["alg"] = "PS256"
        try JSONSerialization.data(withJSONObject: ["keys": [mislabelled]]).write(to: URL(fileURLWithPath: jwksFile))
        await #expect(throws: (any Error).self) { _ = try await makeApplication(database: database, settings: settings) }
    }
}
