import Foundation
import ItakuCore
import ItakuPostgres

/// The registry's SQL. Every function runs on a connection the caller holds, so a change, its
/// access-log entry and its NOTIFY commit together in the caller's transaction.
public enum RegistryStore {
    /// Makes the rest of the transaction act for one tenant (row-level security).
    public static func setTenant(_ tenantID: UUID, on connection: PostgresConnection) async throws {
        try await connection.query("SELECT set_config('itaku.tenant_id', \(tenantID.uuidString), true)")
    }

    /// Announces a change; delivered to every instance's listener when the transaction commits.
    public static func announceChange(_ what: String, on connection: PostgresConnection) async throws {
        try await connection.query("SELECT pg_notify('itaku_registry', \(what))")
    }

    // MARK: Loading the snapshot

    /// Reads every tenant's registry: on a connection of the reader role (`itaku_reader`), the
    /// only role whose policies show more than one tenant. The runtime role sees one tenant at a
    /// time, so with `tenantByTenant` (the CLI and the demo, inside a transaction) each tenant's
    /// tables are read under that tenant.
    public static func loadSnapshot(on connection: PostgresConnection, tenantByTenant: Bool = false) async throws -> RegistrySnapshot {
        var snapshot = RegistrySnapshot()
        for row in try await connection.query(
            "SELECT tenant_id, code, name, time_zone, contract_start::text, contract_end::text, status, case_pattern FROM itaku.tenants"
        ) {
            let tenant = try tenant(row)
            snapshot.tenants[tenant.id] = tenant
            snapshot.tenantIDsByCode[tenant.code] = tenant.id
        }
        if tenantByTenant {
            for tenantID in snapshot.tenants.keys {
                try await setTenant(tenantID, on: connection)
                try await loadTenantTables(into: &snapshot, on: connection)
            }
            try await connection.query("SELECT set_config('itaku.tenant_id', '', true)")
        } else {
            try await loadTenantTables(into: &snapshot, on: connection)
        }
        for row in try await connection.query("SELECT agent_id, employee_id, name, site, active FROM itaku.agents") {
            let agent = Agent(id: try row.decode(0), employeeID: try row.decode(1), name: try row.decode(2), site: try row.decode(3), active: try row.decode(4))
            snapshot.agents[agent.id] = agent
            snapshot.agentIDsByEmployeeID[agent.employeeID] = agent.id
        }
        for row in try await connection.query(
            "SELECT integration_id, name, trust_mode, array(SELECT unnest(tenant_ids)::text) FROM itaku.integrations"
        ) {
            let integration = Integration(
                id: try row.decode(0), name: try row.decode(1),
                trustMode: Integration.TrustMode(rawValue: try row.decode(2)) ?? .asserted,
                tenantIDs: try row.decode(3, as: [String].self).compactMap(UUID.init(uuidString:))
            )
            snapshot.integrations[integration.id] = integration
        }
        for row in try await connection.query(
            "SELECT key_id, key_hash, role, tenant_id, integration_id, label FROM itaku.api_keys WHERE revoked_at IS NULL"
        ) {
            guard let role = Role(rawValue: try row.decode(2)) else { continue }
            let key = APIKey(id: try row.decode(0), role: role, tenantID: try row.decode(3), integrationID: try row.decode(4), label: try row.decode(5))
            snapshot.keys[Data(try row.decode(1, as: PostgresBytes.self).bytes)] = key
        }
        snapshot.loadedAt = Date()
        return snapshot
    }

    /// A tenant from the columns tenant_id, code, name, time_zone, contract_start::text,
    /// contract_end::text, status, case_pattern.
    private static func tenant(_ row: PostgresRow) throws -> Tenant {
        Tenant(
            id: try row.decode(0), code: try row.decode(1), name: try row.decode(2), timeZone: try row.decode(3),
            contractStart: try row.decode(4), contractEnd: try row.decode(5), status: try row.decode(6),
            casePattern: try row.decode(7)
        )
    }

    /// A dataset from the columns tenant_id, dataset_id, name, version, schema.
    private static func dataset(_ row: PostgresRow, decoder: JSONDecoder) throws -> Dataset {
        Dataset(
            id: try row.decode(1), tenantID: try row.decode(0), name: try row.decode(2), version: try row.decode(3),
            schema: try decoder.decode(DatasetSchema.self, from: Data(try row.decode(4, as: PostgresJSON.self).text.utf8))
        )
    }

    /// The tenant's datasets as the transaction sees them, by name.
    public static func datasets(tenantID: UUID, on connection: PostgresConnection) async throws -> [Dataset] {
        try await setTenant(tenantID, on: connection)
        let decoder = JSONDecoder()
        return try await connection.query(
            "SELECT tenant_id, dataset_id, name, version, schema FROM itaku.datasets WHERE tenant_id = \(tenantID) ORDER BY name"
        ).map { try dataset($0, decoder: decoder) }
    }

    /// Datasets, purposes and assignments: the registry's tenant tables (row-level security).
    private static func loadTenantTables(into snapshot: inout RegistrySnapshot, on connection: PostgresConnection) async throws {
        let decoder = JSONDecoder()
        for row in try await connection.query("SELECT tenant_id, dataset_id, name, version, schema FROM itaku.datasets") {
            let dataset = try dataset(row, decoder: decoder)
            snapshot.datasets[dataset.tenantID, default: [:]][dataset.name] = dataset
        }
        for row in try await connection.query(
            """
            SELECT DISTINCT ON (tenant_id, key) tenant_id, key, version, definition, created_at
            FROM itaku.purposes ORDER BY tenant_id, key, version DESC
            """
        ) {
            let definition = try row.decode(3, as: PostgresJSON.self).text
            let purpose = Purpose(
                tenantID: try row.decode(0), key: try row.decode(1), version: try row.decode(2),
                definition: try decoder.decode(PurposeDefinition.self, from: Data(definition.utf8)), createdAt: try row.decode(4)
            )
            snapshot.purposes[purpose.tenantID, default: [:]][purpose.key] = purpose
        }
        for row in try await connection.query("SELECT tenant_id, agent_id, purposes, valid_from, valid_until FROM itaku.assignments") {
            let assignment = Assignment(
                tenantID: try row.decode(0), agentID: try row.decode(1), purposes: try row.decode(2),
                validFrom: try row.decode(3), validUntil: try row.decode(4)
            )
            snapshot.assignments[assignment.tenantID, default: [:]][assignment.agentID] = assignment
        }
    }

    // MARK: Tenants

    public static func createTenant(
        id: UUID = UUID(), code: String, name: String, timeZone: String, contractStart: String?, contractEnd: String?,
        casePattern: String? = nil, on connection: PostgresConnection
    ) async throws -> UUID {
        let rows = try await connection.query(
            """
            INSERT INTO itaku.tenants (tenant_id, code, name, time_zone, contract_start, contract_end, case_pattern)
            VALUES (\(id), \(code), \(name), \(timeZone), \(contractStart)::date, \(contractEnd)::date, \(casePattern))
            RETURNING tenant_id
            """
        )
        return try rows[0].decode(0)
    }

    /// Changes the values given (nil: as stored) of a tenant whose contract has not ended, and
    /// returns the tenant as committed; nil if it has ended (or does not exist), or if the
    /// period it would have ends before it starts (a change of the other end committed meanwhile). Only what the
    /// request changes is written, so two changes of different values never undo each other,
    /// and nothing revives an ended tenant.
    public static func updateTenant(
        _ id: UUID, name: String?, timeZone: String?, contractStart: String?, contractEnd: String?, status: String?,
        casePattern: String?, on connection: PostgresConnection
    ) async throws -> Tenant? {
        let rows = try await connection.query(
            """
            UPDATE itaku.tenants SET name = coalesce(\(name), name), time_zone = coalesce(\(timeZone), time_zone),
                contract_start = coalesce(\(contractStart)::date, contract_start), contract_end = coalesce(\(contractEnd)::date, contract_end),
                status = coalesce(\(status), status), case_pattern = coalesce(\(casePattern), case_pattern), updated_at = now()
            WHERE tenant_id = \(id) AND status <> 'ended'
              AND NOT coalesce(coalesce(\(contractStart)::date, contract_start) > coalesce(\(contractEnd)::date, contract_end), false)
            RETURNING tenant_id, code, name, time_zone, contract_start::text, contract_end::text, status, case_pattern
            """
        )
        return try rows.first.map(tenant)
    }

    /// Locks the tenant's row until the transaction ends and returns its status (nil: no such
    /// tenant). Changes that add to a tenant's data take it shared; the contract's end takes it
    /// exclusively, so the two never overlap: the end waits for the changes in flight and
    /// disposes of what they committed, and a change after it sees the tenant ended.
    public static func lockTenant(_ tenantID: UUID, exclusive: Bool, on connection: PostgresConnection) async throws -> String? {
        let rows = try await connection.query(
            exclusive
                ? "SELECT status FROM itaku.tenants WHERE tenant_id = \(tenantID) FOR UPDATE"
                : "SELECT status FROM itaku.tenants WHERE tenant_id = \(tenantID) FOR SHARE"
        )
        return try rows.first?.decode(0, as: String.self)
    }

    // MARK: Datasets

    /// The first key of a dataset's schema lock, an advisory transaction lock whose second key is
    /// `hashtext` of the dataset's id. An agent update takes it shared, in a statement before the
    /// one that reads the dataset's version (`schemaLock`); a schema change takes it exclusively
    /// (`lockedDataset`). PostgreSQL queues a shared request behind an exclusive one that waits,
    /// so a steady stream of updates never keeps a schema change out (as row locks would).
    public static let schemaLockClass: Int32 = 0x4974_6B31

    /// The statement that takes dataset `id`'s schema lock shared until the transaction ends.
    public static func schemaLock(_ id: UUID) -> PostgresQuery {
        .prepared("SELECT pg_advisory_xact_lock_shared(\(schemaLockClass), hashtext(\(id.lowercasedString)))")
    }

    /// Locks a dataset's row shared until the transaction ends and returns its schema's version
    /// (nil: no such dataset). A schema change (`putDataset`, which locks it exclusively) then
    /// waits for the transaction, and the transaction sees whether the schema it works under is
    /// still the stored one.
    public static func lockDataset(tenantID: UUID, datasetID: UUID, on connection: PostgresConnection) async throws -> Int? {
        try await setTenant(tenantID, on: connection)
        return try await connection.query(
            "SELECT version FROM itaku.datasets WHERE tenant_id = \(tenantID) AND dataset_id = \(datasetID) FOR SHARE"
        ).first?.decode(0, as: Int.self)
    }

    /// A dataset's id and stored schema, its row locked for the transaction (nil: none of that
    /// name). First its schema lock (`schemaLock`), exclusively: the agent updates under way
    /// finish first, and those that come later wait for this transaction and then see its
    /// schema.
    public static func lockedDataset(tenantID: UUID, name: String, on connection: PostgresConnection) async throws -> (id: UUID, schema: DatasetSchema)? {
        try await setTenant(tenantID, on: connection)
        try await connection.query(
            """
            SELECT pg_advisory_xact_lock(\(schemaLockClass), hashtext(dataset_id::text))
            FROM itaku.datasets WHERE tenant_id = \(tenantID) AND name = \(name)
            """
        )
        guard let row = try await connection.query(
            "SELECT dataset_id, schema FROM itaku.datasets WHERE tenant_id = \(tenantID) AND name = \(name) FOR UPDATE"
        ).first else { return nil }
        return (try row.decode(0), try JSONDecoder().decode(DatasetSchema.self, from: Data(try row.decode(1, as: PostgresJSON.self).text.utf8)))
    }

    /// Creates or replaces the dataset's schema; returns (version before, version after).
    public static func putDataset(
        tenantID: UUID, name: String, schema: DatasetSchema, on connection: PostgresConnection
    ) async throws -> (before: Int?, after: Int) {
        try await setTenant(tenantID, on: connection)
        let json = String(decoding: try JSONEncoder().encode(schema), as: UTF8.self)
        let existing = try await connection.query(
            "SELECT version FROM itaku.datasets WHERE tenant_id = \(tenantID) AND name = \(name) FOR UPDATE"
        )
        if let row = existing.first {
            let before = try row.decode(0, as: Int.self)
            try await connection.query(
                """
                UPDATE itaku.datasets SET schema = \(PostgresJSON(json)), version = version + 1,
                    retention_days = \(schema.retentionDays), updated_at = now()
                WHERE tenant_id = \(tenantID) AND name = \(name)
                """
            )
            return (before, before + 1)
        }
        try await connection.query(
            """
            INSERT INTO itaku.datasets (tenant_id, name, schema, retention_days)
            VALUES (\(tenantID), \(name), \(PostgresJSON(json)), \(schema.retentionDays))
            """
        )
        return (nil, 1)
    }

    // MARK: Purposes

    /// Appends a new version; `expectedVersion` is the version the caller saw (nil: must not
    /// exist yet). Returns the new version, or nil when the caller's view is stale.
    public static func putPurpose(
        tenantID: UUID, key: String, definition: PurposeDefinition, expectedVersion: Int?, on connection: PostgresConnection
    ) async throws -> Int? {
        try await setTenant(tenantID, on: connection)
        // Serialises writers of the same purpose for the rest of the transaction.
        try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(tenantID.uuidString + "/" + key)))")
        let current = try await connection.query(
            "SELECT max(version) FROM itaku.purposes WHERE tenant_id = \(tenantID) AND key = \(key)"
        )[0].decode(0, as: Int?.self)
        guard current == expectedVersion else { return nil }
        let next = (current ?? 0) + 1
        let json = String(decoding: try JSONEncoder().encode(definition), as: UTF8.self)
        try await connection.query(
            """
            INSERT INTO itaku.purposes (tenant_id, key, version, definition)
            VALUES (\(tenantID), \(key), \(Int32(next)), \(PostgresJSON(json)))
            """
        )
        return next
    }

    /// Every version of every purpose of a tenant, oldest first.
    /// The newest `latest` versions of each of the tenant's purposes (of `key` alone, if given),
    /// by key and then version, each with how many versions its purpose has in all.
    public static func purposeVersions(
        tenantID: UUID, key: String? = nil, latest: Int, on connection: PostgresConnection
    ) async throws -> [(purpose: Purpose, versions: Int)] {
        try await setTenant(tenantID, on: connection)
        let decoder = JSONDecoder()
        return try await connection.query(
            """
            SELECT key, version, definition, created_at, versions FROM (
                SELECT key, version, definition, created_at, count(*) OVER (PARTITION BY key) AS versions,
                       row_number() OVER (PARTITION BY key ORDER BY version DESC) AS newest
                FROM itaku.purposes WHERE tenant_id = \(tenantID) AND (\(key)::text IS NULL OR key = \(key)::text)
            ) v WHERE newest <= \(Int32(clamping: latest)) ORDER BY key, version
            """
        ).map { row in
            (try purpose(row, tenantID: tenantID, decoder: decoder), try row.decode(4, as: Int.self))
        }
    }

    /// One version of a purpose, or nil.
    public static func purposeVersion(tenantID: UUID, key: String, version: Int, on connection: PostgresConnection) async throws -> Purpose? {
        try await setTenant(tenantID, on: connection)
        return try await connection.query(
            """
            SELECT key, version, definition, created_at FROM itaku.purposes
            WHERE tenant_id = \(tenantID) AND key = \(key) AND version = \(Int32(clamping: version))
            """
        ).first.map { try purpose($0, tenantID: tenantID, decoder: JSONDecoder()) }
    }

    private static func purpose(_ row: PostgresRow, tenantID: UUID, decoder: JSONDecoder) throws -> Purpose {
        Purpose(
            tenantID: tenantID, key: try row.decode(0), version: try row.decode(1),
            definition: try decoder.decode(PurposeDefinition.self, from: Data(try row.decode(2, as: PostgresJSON.self).text.utf8)),
            createdAt: try row.decode(3)
        )
    }

    // MARK: Agents, integrations, keys

    public static func createAgent(employeeID: String, name: String, site: String, on connection: PostgresConnection) async throws -> UUID {
        try await connection.query(
            "INSERT INTO itaku.agents (employee_id, name, site) VALUES (\(employeeID), \(name), \(site)) RETURNING agent_id"
        )[0].decode(0)
    }

    /// Changes the values given (nil: as stored) and returns the agent as committed (nil: no
    /// such agent). Only what the request changes is written: a rename never reactivates an
    /// agent deactivated meanwhile.
    public static func updateAgent(_ id: UUID, name: String?, site: String?, active: Bool?, on connection: PostgresConnection) async throws -> Agent? {
        let rows = try await connection.query(
            """
            UPDATE itaku.agents SET name = coalesce(\(name), name), site = coalesce(\(site), site), active = coalesce(\(active), active),
                updated_at = now()
            WHERE agent_id = \(id) RETURNING agent_id, employee_id, name, site, active
            """
        )
        return try rows.first.map { row in
            Agent(id: try row.decode(0), employeeID: try row.decode(1), name: try row.decode(2), site: try row.decode(3), active: try row.decode(4))
        }
    }

    public static func createIntegration(
        name: String, trustMode: Integration.TrustMode, tenantIDs: [UUID], on connection: PostgresConnection
    ) async throws -> UUID {
        try await connection.query(
            """
            INSERT INTO itaku.integrations (name, trust_mode, tenant_ids)
            VALUES (\(name), \(trustMode.rawValue), \(tenantIDs.map(\.uuidString))::uuid[])
            RETURNING integration_id
            """
        )[0].decode(0)
    }

    /// Stores a key's hash under `id` (chosen by the caller, so that the access entry of its
    /// issue, written in the same transaction, can name it).
    public static func createKey(
        id: UUID = .random(), hash: [UInt8], displayPrefix: String, role: Role, tenantID: UUID?, integrationID: UUID?, label: String,
        on connection: PostgresConnection
    ) async throws -> UUID {
        try await connection.query(
            """
            INSERT INTO itaku.api_keys (key_id, key_hash, display_prefix, role, tenant_id, integration_id, label)
            VALUES (\(id), \(PostgresBytes(hash)), \(displayPrefix), \(role.rawValue), \(tenantID), \(integrationID), \(label))
            RETURNING key_id
            """
        )[0].decode(0)
    }

    /// Returns false when there is no such live key.
    public static func revokeKey(_ id: UUID, on connection: PostgresConnection) async throws -> Bool {
        try await connection.query(
            "UPDATE itaku.api_keys SET revoked_at = now() WHERE key_id = \(id) AND revoked_at IS NULL"
        ).affectedRows == 1
    }

    // MARK: Assignments

    public static func putAssignment(_ assignment: Assignment, on connection: PostgresConnection) async throws -> Bool {
        try await setTenant(assignment.tenantID, on: connection)
        let rows = try await connection.query(
            """
            INSERT INTO itaku.assignments (tenant_id, agent_id, purposes, valid_from, valid_until)
            VALUES (\(assignment.tenantID), \(assignment.agentID), \(assignment.purposes), \(assignment.validFrom), \(assignment.validUntil))
            ON CONFLICT (tenant_id, agent_id) DO UPDATE SET purposes = excluded.purposes,
                valid_from = excluded.valid_from, valid_until = excluded.valid_until, updated_at = now()
            RETURNING (xmax = 0)
            """
        )
        return try rows[0].decode(0, as: Bool.self)
    }

    public static func deleteAssignment(tenantID: UUID, agentID: UUID, on connection: PostgresConnection) async throws -> Bool {
        try await setTenant(tenantID, on: connection)
        return try await connection.query(
            "DELETE FROM itaku.assignments WHERE tenant_id = \(tenantID) AND agent_id = \(agentID)"
        ).affectedRows == 1
    }
}
