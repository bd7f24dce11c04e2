import Foundation
import Hummingbird
import ItakuCore
import ItakuData
import ItakuRegistry

/// `/v1/tenants/{tenant}/datasets/{dataset}`: a client admin defines a dataset's schema and
/// retention; every `PUT` makes a new version.
struct DatasetsController: Sendable {
    let admin: Admin
    let keyring: Keyring

    struct DatasetBody: Encodable {
        var name: String
        var version: Int
        var fields: [DatasetSchema.Field]
        var key_field: String
        var retention_days: Int?

        init(_ dataset: Dataset) {
            name = dataset.name
            version = dataset.version
            fields = dataset.schema.fields
            key_field = dataset.schema.keyField
            retention_days = dataset.schema.retentionDays
        }
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/tenants/:tenant/datasets/:dataset", method: .put, context: RoleContext<ClientAdmins>.self) { request, context in try await put(request, context) }
        routes.on("/v1/tenants/:tenant/datasets/:dataset", method: .get, context: RoleContext<ClientAdmins>.self) { _, context in
            let tenant = try admin.tenant(context)
            guard let name = context.parameters.get("dataset"), let dataset = context.snapshot?.datasets[tenant.id]?[name] else {
                throw Problem.notFound
            }
            return try admin.json(DatasetBody(dataset))
        }
    }

    private func put(_ request: Request, _ context: RoleContext<ClientAdmins>) async throws -> Response {
        let tenant = try admin.tenant(context)
        let name = context.parameters.get("dataset") ?? ""
        guard DatasetSchema.isFieldName(name) else {
            throw Problem.invalid([.init(code: "invalid_dataset_name", pointer: "dataset")])
        }
        // A dataset as its GET shows it may be sent back: its name and version are passed over.
        let schema = try await admin.decode(DatasetSchema.self, from: request, context: context, alsoTaking: ["name", "version"])
        let issues = schema.validate()
        guard issues.isEmpty else { throw Problem.invalid(issues.problems) }
        let existed = context.snapshot?.datasets[tenant.id]?[name] != nil
        let version = try await admin.change(context, tenantID: tenant.id, target: "dataset:\(name)") { connection in
            // Under the tenant's lock: no dataset appears after the contract's end.
            guard try await RegistryStore.lockTenant(tenant.id, exclusive: false, on: connection) != "ended" else {
                throw Problem.conflict(code: "tenant_ended", "The tenant's contract ended and its data was disposed of.")
            }
            let previous = try await RegistryStore.lockedDataset(tenantID: tenant.id, name: name, on: connection)
            let (before, after) = try await RegistryStore.putDataset(tenantID: tenant.id, name: name, schema: schema, on: connection)
            // Lookup fields changed: the records' keys follow, in this transaction, so that a
            // lookup by a new field finds the records already there.
            if let previous, previous.schema.lookupSignature != schema.lookupSignature {
                let dataset = Dataset(id: previous.id, tenantID: tenant.id, name: name, version: after, schema: schema)
                let digester = LookupDigester(key: keyring.digestKey(tenant: tenant.id.uuidString))
                try await RecordStore.rebuildLookupKeys(in: dataset, dataKeys: admin.dataKeys, digester: digester, on: connection)
            }
            return (after, before, after)
        }
        let dataset = admin.registry.snapshot.datasets[tenant.id]?[name].flatMap { $0.version >= version ? $0 : nil }
            ?? Dataset(id: context.snapshot?.datasets[tenant.id]?[name]?.id ?? UUID(), tenantID: tenant.id, name: name, version: version, schema: schema)
        return try admin.json(DatasetBody(dataset), status: existed ? .ok : .created)
    }
}
