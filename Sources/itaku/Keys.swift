import ArgumentParser
import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuPostgres
import ItakuRegistry

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issue and revoke API keys.", subcommands: [Create.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a key and print it once.")

        @OptionGroup var options: SettingsOptions
        @Option(help: "operator, client_admin, reviewer or integration.") var role: String
        @Option(help: "Tenant code (client_admin keys).") var tenant: String?
        @Option(help: "Integration id (integration keys).") var integration: String?
        @Option(help: "A note to recognise the key by.") var label: String = ""

        func run() async throws {
            guard let role = Role(rawValue: role) else { throw ValidationError("unknown role \(self.role)") }
            let (configuration, logger, database) = try await options.runtimeDatabase()
            defer { Task { await database.shutdown() } }
            let accessLog = try options.accessLog(configuration, database: database, logger: logger)
            let snapshot = try await database.withTransaction { try await RegistryStore.loadSnapshot(on: $0, tenantByTenant: true) }
            var tenantID: UUID?
            var integrationID: UUID?
            switch role {
            case .clientAdmin:
                guard let found = tenant.flatMap(snapshot.tenant(code:)) else { throw ValidationError("client_admin keys need --tenant with an existing tenant code") }
                tenantID = found.id
            case .integration:
                guard let id = integration.flatMap(UUID.init(uuidString:)), snapshot.integrations[id] != nil else {
                    throw ValidationError("integration keys need --integration with an existing integration id")
                }
                integrationID = id
            case .operator_, .reviewer:
                break
            }
            let key = APIKeys.generate()
            let label = self.label
            let (keyID, _) = try await accessLog.transaction(on: database) { connection in
                let id = try await RegistryStore.createKey(
                    hash: APIKeys.hash(key), displayPrefix: APIKeys.displayPrefix(key), role: role, tenantID: tenantID,
                    integrationID: integrationID, label: label, on: connection
                )
                try await RegistryStore.announceChange("key", on: connection)
                return (id, [.cli(target: "key:\(role.rawValue):\(id.lowercasedString)", tenantID: tenantID)])
            }
            await accessLog.checkpoint()
            print("key id: \(keyID.lowercasedString)")
            print("key:    \(key)    (shown once; store it now)")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key on every instance.")

        @OptionGroup var options: SettingsOptions
        @Option(help: "The key id (as printed by keys create).") var id: String

        func run() async throws {
            guard let keyID = UUID(uuidString: id) else { throw ValidationError("not a key id") }
            let (configuration, logger, database) = try await options.runtimeDatabase()
            defer { Task { await database.shutdown() } }
            let accessLog = try options.accessLog(configuration, database: database, logger: logger)
            let revoked: Bool
            do {
                (revoked, _) = try await accessLog.transaction(on: database) { connection in
                    // Nothing to revoke: roll back, nothing written, nothing logged.
                    guard try await RegistryStore.revokeKey(keyID, on: connection) else { throw NoSuchKey() }
                    try await RegistryStore.announceChange("key", on: connection)
                    return (true, [.cli(target: "key:\(keyID.lowercasedString)")])
                }
            } catch is NoSuchKey {
                revoked = false
            }
            await accessLog.checkpoint()
            print(revoked ? "revoked" : "no such live key")
            if !revoked { throw ExitCode(1) }
        }
    }
}

private struct NoSuchKey: Error {}
