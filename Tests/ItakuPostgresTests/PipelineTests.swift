import Foundation
import ItakuPostgres
import ItakuTestSupport
import Testing

@Suite("Statements in one round trip (pipeline mode) against a real PostgreSQL")
struct PipelineTests {
    @Test("statements run in order, with binds, prepared or not, each answering its rows")
    func inOrder() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        try await client.query("CREATE TABLE notes (n int, body text)")
        let rows = try await client.withConnection { connection in
            try await connection.pipeline([
                "INSERT INTO notes VALUES (1, \("一"))",
                .prepared("INSERT INTO notes VALUES (\(2), \("'); DROP TABLE notes; --"))"),
                "SELECT n, body FROM notes ORDER BY n",
            ])
        }
        #expect(rows.count == 3)
        #expect(rows[0].affectedRows == 1 && rows[1].affectedRows == 1)
        #expect(try rows[2].map { try $0.decode(1, as: String.self) } == ["一", "'); DROP TABLE notes; --"])
    }

    @Test("a failed statement throws its error, nothing of the pipeline stays, and the connection stays usable")
    func failure() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner, maximumConnections: 1)
        defer { Task { await client.shutdown() } }
        try await client.query("CREATE TABLE notes (n int PRIMARY KEY)")
        let session = try await client.query("SELECT pg_backend_pid()")[0].decode(0, as: Int32.self)
        let error = await #expect(throws: PostgresError.self) {
            try await client.withConnection { connection in
                try await connection.pipeline(["INSERT INTO notes VALUES (1)", "INSERT INTO notes VALUES (1)", "INSERT INTO notes VALUES (3)"])
            }
        }
        #expect(error?.sqlState == PostgresError.SQLState.uniqueViolation)
        // Without BEGIN the statements are one implicit transaction: the first is rolled back
        // too, and the third never ran.
        #expect(try await client.query("SELECT count(*) FROM notes")[0].decode(0, as: Int.self) == 0)
        // The pool's one connection is lent again, the same session, not closed and replaced.
        #expect(try await client.query("SELECT pg_backend_pid()")[0].decode(0, as: Int32.self) == session)
        try await client.query("INSERT INTO notes VALUES (4)")
        #expect(try await client.query("SELECT count(*) FROM notes")[0].decode(0, as: Int.self) == 1)
    }

    @Test("begin(then:) opens a transaction with its first statements; a failure inside leaves it for ROLLBACK")
    func transaction() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        try await client.query("CREATE TABLE notes (n int PRIMARY KEY)")
        let setting = try await client.withConnection { connection in
            let opened = try await connection.begin(then: [
                "SELECT set_config('itaku.test', \("7"), true)", "INSERT INTO notes VALUES (1)",
            ])
            #expect(opened.count == 2)
            let value = try await connection.query("SELECT current_setting('itaku.test')")[0].decode(0, as: String.self)
            try await connection.query("ROLLBACK")
            return value
        }
        #expect(setting == "7")
        #expect(try await client.query("SELECT count(*) FROM notes")[0].decode(0, as: Int.self) == 0)
        // A failure inside the opened transaction: nothing of it stays once rolled back.
        await #expect(throws: PostgresError.self) {
            try await client.withConnection { connection in
                do {
                    try await connection.begin(then: ["INSERT INTO notes VALUES (2)", "INSERT INTO notes VALUES (2)"])
                } catch {
                    try await connection.query("ROLLBACK")
                    throw error
                }
            }
        }
        #expect(try await client.query("SELECT count(*) FROM notes")[0].decode(0, as: Int.self) == 0)
    }
}
