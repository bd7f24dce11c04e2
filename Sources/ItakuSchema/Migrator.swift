import Crypto
import Foundation
import ItakuPostgres
import Logging

/// One schema migration: an SQL file `NNNN_name.sql` shipped with the binary.
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String

    /// SHA-256 of the file, recorded when applied: an applied migration that changed is an error.
    public var checksum: String {
        SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The migrations bundled with Itaku, in order.
    public static func bundled() throws -> [Migration] {
        guard let directory = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw MigrationError.missingResources
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        return try files.map { file in
            let stem = String(file.dropLast(4))
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw MigrationError.badFileName(file)
            }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            return Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql)
        }
    }
}

public enum MigrationError: Error, CustomStringConvertible {
    case missingResources
    case badFileName(String)
    case checksumMismatch(version: Int)

    public var description: String {
        switch self {
        case .missingResources: "the migration files are missing from the Itaku bundle"
        case .badFileName(let name): "migration file \(name) is not named NNNN_name.sql"
        case .checksumMismatch(let version): "applied migration \(version) differs from the shipped file"
        }
    }
}

/// Applies migrations in order, each in its own transaction, recorded in
/// `itaku.schema_migrations`, under an advisory lock so two instances never migrate at once.
public struct Migrator: Sendable {
    /// Arbitrary constant key for `pg_advisory_lock`, shared by every Itaku instance.
    static let lockKey: Int64 = 0x6974_616B_755F_6D67  // "itaku_mg"

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Applies pending migrations over a short-lived client of its own.
    @discardableResult
    public static func migrate(_ configuration: PostgresConfiguration, logger: Logger) async throws -> [Migration] {
        let client = PostgresClient(configuration: configuration, logger: logger)
        do {
            let applied = try await Migrator(client: client, logger: logger).migrate()
            await client.shutdown()
            return applied
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// Returns the migrations that this call applied.
    @discardableResult
    public func migrate(_ migrations: [Migration]? = nil) async throws -> [Migration] {
        let migrations = try migrations ?? Migration.bundled()
        return try await client.withConnection { connection in
            // Session-level lock on this one connection; released below and, should the process
            // die, by the server when the session ends.
            try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))")
            do {
                let applied = try await apply(migrations, on: connection)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))")
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))")
                throw error
            }
        }
    }

    private func apply(_ migrations: [Migration], on connection: PostgresConnection) async throws -> [Migration] {
        try await connection.executeScript(
            """
            CREATE SCHEMA IF NOT EXISTS itaku;
            CREATE TABLE IF NOT EXISTS itaku.schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """
        )
        var done: [Int: String] = [:]
        for row in try await connection.query("SELECT version, checksum FROM itaku.schema_migrations") {
            done[try row.decode(0, as: Int.self)] = try row.decode(1, as: String.self)
        }
        var applied: [Migration] = []
        for migration in migrations {
            if let checksum = done[migration.version] {
                guard checksum == migration.checksum else {
                    throw MigrationError.checksumMismatch(version: migration.version)
                }
                continue
            }
            try await connection.begin()
            do {
                try await connection.executeScript(migration.sql)
                try await connection.query(
                    """
                    INSERT INTO itaku.schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """
                )
                try await connection.commit()
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
            logger.info(
                "applied migration",
                metadata: ["itaku.migration.version": "\(migration.version)", "itaku.migration.name": "\(migration.name)"]
            )
            applied.append(migration)
        }
        return applied
    }
}
