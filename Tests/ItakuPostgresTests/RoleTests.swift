import Foundation
import ItakuPostgres
import Logging
import ItakuSchema
import ItakuTestSupport
import Testing

@Suite("Migrations and the runtime role")
struct RoleTests {
    @Test("migrations apply once; a second run and a concurrent run apply nothing more")
    func migrationsAreIdempotent() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let first = database.makeClient(role: .owner)
        let second = database.makeClient(role: .owner)
        defer { Task { await first.shutdown(); await second.shutdown() } }
        async let a = Migrator(client: first, logger: .init(label: "test")).migrate()
        async let b = Migrator(client: second, logger: .init(label: "test")).migrate()
        let (appliedA, appliedB) = try await (a, b)
        let bundled = try Migration.bundled()
        #expect(appliedA.count + appliedB.count == bundled.count)
        #expect(try await Migrator(client: first, logger: .init(label: "test")).migrate().isEmpty)
        let recorded = try await first.query("SELECT count(*) FROM itaku.schema_migrations")[0].decode(0, as: Int.self)
        #expect(recorded == bundled.count)
    }

    @Test("the runtime role cannot create, alter or drop anything", arguments: [
        "CREATE TABLE itaku.intruder (n int)",
        "CREATE TABLE public.intruder (n int)",
        "CREATE TEMPORARY TABLE intruder (n int)",
        "CREATE SCHEMA intruder",
        "ALTER TABLE itaku.datasets ADD COLUMN note text",
        "ALTER TABLE itaku.datasets DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON itaku.datasets",
        "DROP TABLE itaku.datasets",
        "TRUNCATE itaku.tenants",
        "CREATE ROLE intruder",
        "ALTER ROLE itaku_runtime BYPASSRLS",
    ])
    func runtimeRoleCannotChangeSchema(statement: String) async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let runtime = database.makeClient(role: .runtime)
        defer { Task { await runtime.shutdown() } }
        let error = await #expect(throws: PostgresError.self) {
            try await runtime.query(PostgresQuery(unsafeSQL: statement))
        }
        #expect(error?.kind == .server)
        #expect(error?.sqlState == PostgresError.SQLState.insufficientPrivilege)
    }

    @Test("as the runtime role in tenant A's context, a query without a tenant filter sees only A's rows")
    func runtimeRoleCannotBypassRowLevelSecurity() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let owner = database.makeClient(role: .owner)
        let runtime = database.makeClient(role: .runtime)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        let tenantA = UUID(), tenantB = UUID()
        try await owner.query(
            "INSERT INTO itaku.tenants (tenant_id, code, name) VALUES (\(tenantA), 'tenant-a', 'A'), (\(tenantB), 'tenant-b', 'B')"
        )
        try await owner.query(
            "INSERT INTO itaku.datasets (tenant_id, name) VALUES (\(tenantA), 'customers'), (\(tenantB), 'customers'), (\(tenantB), 'claims')"
        )
        let seen = try await runtime.withTransaction { connection in
            try await connection.query("SELECT set_config('itaku.tenant_id', \(tenantA.uuidString), true)")
            return try await connection.query("SELECT tenant_id FROM itaku.datasets").map { try $0.decode(0, as: UUID.self) }
        }
        #expect(seen == [tenantA])

        // No tenant set: nothing at all.
        let none = try await runtime.query("SELECT count(*) FROM itaku.datasets")[0].decode(0, as: Int.self)
        #expect(none == 0)

        // Writing into another tenant from A's context is refused by the policy.
        let error = await #expect(throws: PostgresError.self) {
            try await runtime.withTransaction { connection in
                try await connection.query("SELECT set_config('itaku.tenant_id', \(tenantA.uuidString), true)")
                try await connection.query("INSERT INTO itaku.datasets (tenant_id, name) VALUES (\(tenantB), 'stolen')")
            }
        }
        #expect(error?.sqlState == PostgresError.SQLState.insufficientPrivilege)

        // Turning row security off is refused rather than silently showing everything.
        let off = await #expect(throws: PostgresError.self) {
            try await runtime.withTransaction { connection in
                try await connection.query("SET LOCAL row_security = off")
                try await connection.query("SELECT count(*) FROM itaku.datasets")
            }
        }
        #expect(off?.sqlState == PostgresError.SQLState.insufficientPrivilege)

        // The tenant context does not leak into the connection's next transaction.
        let after = try await runtime.query("SELECT count(*) FROM itaku.datasets")[0].decode(0, as: Int.self)
        #expect(after == 0)
    }

    @Test("every pooled connection runs with synchronous_commit on")
    func synchronousCommitIsOn() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let owner = database.makeClient(role: .owner)
        let runtime = database.makeClient(role: .runtime)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        // Even when the database default says otherwise, the session setting wins and is checked.
        try await owner.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \(database.name) SET synchronous_commit = off"))
        let setting = try await runtime.query("SHOW synchronous_commit")[0].decode(0, as: String.self)
        #expect(setting == "on")
    }
}
