import Crypto
import Foundation
import ItakuCore
import ItakuPostgres

/// The console's sessions, kept in `itaku.console_sessions` (migration 0013) so that every
/// instance honours them and signing out ends them everywhere. The browser holds a random
/// 256-bit token; the table holds its SHA-256. Each session has its own form token (CSRF).
struct ConsoleSessions: Sendable {
    let database: PostgresClient
    let lifetime: Duration
    let idle: Duration

    struct Session: Sendable {
        var keyID: UUID
        var csrf: String
    }

    /// Starts a session for the key; returns the cookie's token and the session.
    func start(keyID: UUID) async throws -> (token: String, session: Session) {
        let token = Self.randomToken()
        let csrf = Self.randomToken()
        let seconds = Int(lifetime.components.seconds)
        try await database.withTransaction { connection in
            // Ended sessions are not kept: each sign-in clears the expired ones.
            try await connection.query("DELETE FROM itaku.console_sessions WHERE expires_at < now()")
            try await connection.query(
                """
                INSERT INTO itaku.console_sessions (token_hash, key_id, csrf, expires_at)
                VALUES (\(PostgresBytes(Self.hash(token))), \(keyID), \(csrf), now() + make_interval(secs => \(Double(seconds))))
                """
            )
        }
        return (token, Session(keyID: keyID, csrf: csrf))
    }

    /// The live session of a token, its idle time renewed; nil when unknown, ended or idle
    /// too long.
    func find(token: String) async throws -> Session? {
        guard Self.isWellFormed(token) else { return nil }
        let idleSeconds = Int(idle.components.seconds)
        let rows = try await database.query(
            """
            UPDATE itaku.console_sessions SET last_seen = now()
            WHERE token_hash = \(PostgresBytes(Self.hash(token))) AND expires_at > now()
              AND last_seen > now() - make_interval(secs => \(Double(idleSeconds)))
            RETURNING key_id, csrf
            """
        )
        guard rows.count == 1 else { return nil }
        return Session(keyID: try rows[0].decode(0), csrf: try rows[0].decode(1))
    }

    func end(token: String) async throws {
        guard Self.isWellFormed(token) else { return }
        try await database.query("DELETE FROM itaku.console_sessions WHERE token_hash = \(PostgresBytes(Self.hash(token)))")
    }

    // MARK: Tokens

    /// 32 random bytes as base64url without padding (43 characters): a valid cookie value.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func isWellFormed(_ token: String) -> Bool {
        token.utf8.count == 43
            && token.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }
    }

    static func hash(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Data(token.utf8))) }

    /// Compares two form tokens in time independent of where they differ.
    static func matches(_ presented: String?, _ expected: String) -> Bool {
        guard let presented else { return false }
        return ConstantTime.equal(Array(presented.utf8), Array(expected.utf8))
    }
}
