import ArgumentParser
import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuPostgres
import ItakuRegistry

/// Rebuilds a dataset's lookup index from its records under its present schema: for keys that
/// earlier releases wrote (unnamed keys from before migration 0017, individual numbers digested
/// as written rather than as their twelve digits). A schema change through the API rebuilds by
/// itself when its lookup fields change.
struct RebuildLookupKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild-lookup-keys",
        abstract: "Rebuild a dataset's lookup keys from its records (recorded as a configure entry)."
    )

    @OptionGroup var options: SettingsOptions
    @Option(help: "Tenant code.") var tenant: String
    @Option(help: "Dataset name.") var dataset: String

    func run() async throws {
        let (tenantCode, name) = (tenant, dataset)
        try await options.withRuntimeDatabase { configuration, logger, database, keyring in
            let accessLog = try options.accessLog(configuration, database: database, logger: logger)
            let dataKeys = DataKeys(configuration: configuration, keyring: keyring)
            let snapshot = try await database.withTransaction { try await RegistryStore.loadSnapshot(on: $0, tenantByTenant: true) }
            guard let tenant = snapshot.tenant(code: tenantCode) else { throw ValidationError("no tenant \(tenantCode)") }
            let (records, _) = try await accessLog.transaction(on: database, tenant: tenant.id) { connection in
                // Under the tenant's lock (no contract end meanwhile) and the dataset's (no schema change).
                guard try await RegistryStore.lockTenant(tenant.id, exclusive: false, on: connection) != "ended" else {
                    throw ValidationError("the tenant's contract ended; its data was disposed of")
                }
                guard let stored = try await RegistryStore.lockedDataset(tenantID: tenant.id, name: name, on: connection),
                    let current = snapshot.datasets[tenant.id]?[name]
                else { throw ValidationError("no dataset \(name) in \(tenantCode)") }
                let dataset = Dataset(id: stored.id, tenantID: tenant.id, name: name, version: current.version, schema: stored.schema)
                let digester = LookupDigester(key: keyring.digestKey(tenant: tenant.id.uuidString))
                let count = try await RecordStore.rebuildLookupKeys(in: dataset, dataKeys: dataKeys, digester: digester, on: connection)
                return (count, [.cli(target: "dataset:\(name):lookup-keys", tenantID: tenant.id)])
            }
            await accessLog.checkpoint()
            print("rebuilt the lookup keys of \(records) records of \(tenantCode)/\(name)")
        }
    }
}
