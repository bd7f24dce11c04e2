import Foundation
import HTTPTypes
import Hummingbird
import ItakuPostgres
import ItakuRegistry

/// `/v1/tenants/{tenant}/purposes`: a client admin defines purposes of use. Every `PUT` makes a
/// new version. Changing an existing purpose needs `If-Match` with its current `ETag` (428
/// without, 412 when stale), so two admins never overwrite each other unknowingly.
struct PurposesController: Sendable {
    let admin: Admin

    struct PurposeBody: Encodable {
        var key: String
        var version: Int
        var created_at: Date
        var definition: PurposeDefinition
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/tenants/:tenant/purposes", method: .get, context: RoleContext<ClientAdmins>.self) { _, context in
            let tenant = try admin.tenant(context)
            let versions = try await admin.database.withTransaction { connection in
                try await RegistryStore.purposeVersions(tenantID: tenant.id, latest: Self.listedVersions, on: connection)
            }
            struct Listing: Encodable {
                var key: String
                var current_version: Int
                var version_count: Int
                var versions: [PurposeBody]
            }
            let listing = Dictionary(grouping: versions, by: \.purpose.key).sorted { $0.key < $1.key }.map { key, versions in
                Listing(
                    key: key, current_version: versions.map(\.purpose.version).max() ?? 0, version_count: versions.first?.versions ?? 0,
                    versions: versions.map { Self.body($0.purpose) }
                )
            }
            return try admin.json(["purposes": listing])
        }
        routes.on("/v1/tenants/:tenant/purposes/:purpose/versions/:version", method: .get, context: RoleContext<ClientAdmins>.self) { _, context in
            let tenant = try admin.tenant(context)
            guard let key = context.parameters.get("purpose"), let text = context.parameters.get("version"),
                let version = Int(text), (1...Int(Int32.max)).contains(version)
            else { throw Problem.notFound }
            let found = try await admin.database.withTransaction { connection in
                try await RegistryStore.purposeVersion(tenantID: tenant.id, key: key, version: version, on: connection)
            }
            guard let found else { throw Problem.notFound }
            return try admin.json(Self.body(found))
        }
        routes.on("/v1/tenants/:tenant/purposes/:purpose", method: .get, context: RoleContext<ClientAdmins>.self) { _, context in
            let tenant = try admin.tenant(context)
            guard let key = context.parameters.get("purpose"), let purpose = context.snapshot?.purposes[tenant.id]?[key] else {
                throw Problem.notFound
            }
            return try admin.json(Self.body(purpose), headers: [.eTag: Self.etag(purpose.version)])
        }
        routes.on("/v1/tenants/:tenant/purposes/:purpose", method: .put, context: RoleContext<ClientAdmins>.self) { request, context in try await put(request, context) }
    }

    private func put(_ request: Request, _ context: RoleContext<ClientAdmins>) async throws -> Response {
        let (purpose, created) = try await save(context, ifMatch: request.headers[.ifMatch]) {
            try await admin.decode(PurposeDefinition.self, from: request, context: context)
        }
        return try admin.json(Self.body(purpose), status: created ? .created : .ok, headers: [.eTag: Self.etag(purpose.version)])
    }

    /// Makes a new version of the path's purpose: the API's PUT and the console's edit form
    /// alike. `ifMatch` must name the current version when the purpose exists; the definition is
    /// read only after that check passes. Returns the stored purpose and whether it is new.
    func save(
        _ context: RoleContext<ClientAdmins>, ifMatch: String?, definition read: () async throws -> PurposeDefinition
    ) async throws -> (Purpose, created: Bool) {
        let tenant = try admin.tenant(context)
        let key = context.parameters.get("purpose") ?? ""
        guard TenantsController.isCode(key) else { throw Problem.invalid([.init(code: "invalid_purpose_key", pointer: "purpose")]) }
        let current = context.snapshot?.purposes[tenant.id]?[key]
        var expected: Int? = nil
        if let current {
            guard let ifMatch else {
                throw Problem(.preconditionRequired, code: "precondition_required", title: "If-Match required",
                              detail: "This purpose exists; send If-Match with its current ETag.")
            }
            guard ifMatch == Self.etag(current.version) || ifMatch == "*" else { throw Self.stale }
            expected = current.version
        }
        let definition = try await read()
        let schemas = (context.snapshot?.datasets[tenant.id] ?? [:]).mapValues(\.schema)
        let issues = definition.validate(against: schemas)
        guard issues.isEmpty else { throw Problem.invalid(issues.problems) }
        let expectedVersion = expected
        let version: Int? = try await admin.change(context, tenantID: tenant.id, target: "purpose:\(key)") { connection in
            let version = try await RegistryStore.putPurpose(
                tenantID: tenant.id, key: key, definition: definition, expectedVersion: expectedVersion, on: connection
            )
            // A concurrent writer got there first: roll back (nothing of this request is kept).
            guard let version else { throw Self.stale }
            return (version, expectedVersion, version)
        }
        guard let version else { throw Problem.internalError }
        let purpose = admin.registry.snapshot.purposes[tenant.id]?[key].flatMap { $0.version >= version ? $0 : nil }
            ?? Purpose(tenantID: tenant.id, key: key, version: version, definition: definition, createdAt: Date())
        return (purpose, current == nil)
    }

    static let stale = Problem(.preconditionFailed, code: "precondition_failed", title: "Stale version",
                               detail: "The purpose changed since the ETag you sent; read it again.")

    static func etag(_ version: Int) -> String { "\"v\(version)\"" }

    /// A purpose's versions that the listing shows: the newest (every version stays readable
    /// on its own).
    static let listedVersions = 20

    static func body(_ purpose: Purpose) -> PurposeBody {
        PurposeBody(key: purpose.key, version: purpose.version, created_at: purpose.createdAt, definition: purpose.definition)
    }
}
