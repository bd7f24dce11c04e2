import Foundation
import ItakuPostgres
import Logging
import ItakuTestSupport
import Testing

@Suite("Queries and types against a real PostgreSQL")
struct QueryTests {
    @Test("an SQL-injection string is bound as data, never run as SQL")
    func injectionRoundTrips() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        try await client.query("CREATE TABLE notes (body text)")
        let hostile = "'); DROP TABLE notes; --"
        try await client.query("INSERT INTO notes (body) VALUES (\(hostile))")
        let rows = try await client.query("SELECT body FROM notes WHERE body = \(hostile)")
        #expect(rows.count == 1)
        #expect(try rows[0].decode(0, as: String.self) == hostile)
        let tables = try await client.query("SELECT count(*) FROM pg_tables WHERE tablename = 'notes'")
        #expect(try tables[0].decode(0, as: Int.self) == 1)
    }

    @Test("every supported type decodes, and NULL decodes as nil")
    func typesDecode() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        let id = UUID()
        let when = Date(timeIntervalSince1970: 1_790_000_000.123456)
        let rows = try await client.query(
            """
            SELECT \("名前 テスト 🍣")::text, \(Int16(7))::int2, \(Int32(-70_000))::int4, \(Int64.max)::int8,
                   \(true)::bool, \(id)::uuid, \(when)::timestamptz, '2026-02-28'::date,
                   \(PostgresJSON(#"{"a": [1, "二"]}"#))::jsonb, \(PostgresBytes([0, 1, 255]))::bytea,
                   \(["東京", "a,b", "", "x\"y"])::text[], NULL::text, NULL::int8, '{}'::text[],
                   ARRAY[\(id)]::uuid[]
            """
        )
        let row = rows[0]
        #expect(try row.decode(0, as: String.self) == "名前 テスト 🍣")
        #expect(try row.decode(1, as: Int16.self) == 7)
        #expect(try row.decode(2, as: Int32.self) == -70_000)
        #expect(try row.decode(3, as: Int64.self) == Int64.max)
        #expect(try row.decode(4, as: Bool.self) == true)
        #expect(try row.decode(5, as: UUID.self) == id)
        #expect(abs(try row.decode(6, as: Date.self).timeIntervalSince(when)) < 0.000_001)
        #expect(try row.decode(7, as: PostgresDate.self) == PostgresDate(year: 2026, month: 2, day: 28))
        #expect(try row.decode(7, as: PostgresDate.self).description == "2026-02-28")
        let json = try row.decode(8, as: PostgresJSON.self).text
        #expect(json == #"{"a": [1, "二"]}"#)
        #expect(try row.decode(9, as: PostgresBytes.self).bytes == [0, 1, 255])
        #expect(try row.decode(10, as: [String].self) == ["東京", "a,b", "", "x\"y"])
        #expect(try row.decode(11, as: String?.self) == nil)
        #expect(try row.decode(12, as: Int?.self) == nil)
        #expect(try row.decode(13, as: [String].self) == [])
        #expect(try row.decode(14, as: [String].self) == [id.uuidString.lowercased()])
        // A NULL read as a non-optional is a decoding error, not a crash or an empty string.
        #expect(throws: PostgresError.self) { try row.decode(11, as: String.self) }
        // A type mismatch is a decoding error.
        #expect(throws: PostgresError.self) { try row.decode(0, as: Int.self) }
    }

    @Test("ids, numbers and bytes sent as binary arrays arrive element for element, empty arrays included")
    func binaryArraysArrive() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        let ids = [UUID(), UUID(), UUID()]
        let bytes = [PostgresBytes([]), PostgresBytes([0, 0x5c, 255]), PostgresBytes(Array(repeating: 7, count: 300))]
        let numbers: [Int32] = [0, -1, .max, .min]
        let rows = try await client.query(
            """
            SELECT array_to_string(\(PostgresArray(ids)), ','), cardinality(\(PostgresArray(bytes))),
                   (SELECT string_agg(encode(b, 'hex'), ',' ORDER BY n) FROM unnest(\(PostgresArray(bytes))) WITH ORDINALITY AS u(b, n)),
                   array_to_string(\(PostgresArray(numbers)), ','), cardinality(\(PostgresArray([UUID]()))),
                   pg_typeof(\(PostgresArray([Int32](1...3))))::text
            """
        )
        let row = rows[0]
        #expect(try row.decode(0, as: String.self) == ids.map { $0.uuidString.lowercased() }.joined(separator: ","))
        #expect(try row.decode(1, as: Int32.self) == 3)
        #expect(try row.decode(2, as: String.self) == ",005cff," + String(repeating: "07", count: 300))
        #expect(try row.decode(3, as: String.self) == "0,-1,2147483647,-2147483648")
        #expect(try row.decode(4, as: Int32.self) == 0)
        #expect(try row.decode(5, as: String.self) == "integer[]")
    }

    @Test("a server error carries its SQLSTATE; its description does not quote data")
    func serverErrorIsQuiet() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        try await client.query("CREATE TABLE people (phone text UNIQUE)")
        try await client.query("INSERT INTO people VALUES (\("090-1234-5678"))")
        let error = await #expect(throws: PostgresError.self) {
            try await client.query("INSERT INTO people VALUES (\("090-1234-5678"))")
        }
        #expect(error?.sqlState == PostgresError.SQLState.uniqueViolation)
        #expect(error?.description.contains("090") == false)
        #expect(error?.debugDescription.contains("090-1234-5678") == true)
    }

    @Test("a prepared statement is prepared once per connection, takes NULL and values alike, survives DEALLOCATE, and is never named through a transaction pooler")
    func preparedStatements() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let client = database.makeClient(role: .runtime, maximumConnections: 1)
        let (names, answers) = try await client.withConnection { connection in
            var answers: [String?] = []
            for value in ["a", nil, "b", "a"] as [String?] {
                let rows = try await connection.query(.prepared("SELECT \(value)::text || '!', \(Int32(7)) + 1"))
                answers.append(try rows[0].decode(0, as: String?.self))
                #expect(try rows[0].decode(1, as: Int32.self) == 8)
            }
            let names = try await connection.query("SELECT name FROM pg_prepared_statements ORDER BY name").map { try $0.decode(0, as: String.self) }
            // Dropped under the pool's feet: the statement still runs.
            try await connection.query("DEALLOCATE ALL")
            let again = try await connection.query(.prepared("SELECT \("c")::text || '!', \(Int32(7)) + 1"))
            answers.append(try again[0].decode(0, as: String?.self))
            return (names, answers)
        }
        await client.shutdown()
        #expect(answers == ["a!", nil, "b!", "a!", "c!"])
        #expect(names == ["itaku_1"])

        // Through a transaction pooler a named statement could land in another session: none is made.
        var pooled = database.configuration(role: .runtime, maximumConnections: 1)
        pooled.transactionPooler = true
        let viaPooler = PostgresClient(configuration: pooled, logger: Logger(label: "itaku.test"))
        let unnamed = try await viaPooler.withConnection { connection in
            _ = try await connection.query(.prepared("SELECT \("x")::text"))
            return try await connection.query("SELECT count(*) FROM pg_prepared_statements")[0].decode(0, as: Int.self)
        }
        await viaPooler.shutdown()
        #expect(unnamed == 0)
    }

    @Test("prepared statements that differ only in the middle of their text stay apart")
    func preparedStatementsApart() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let client = database.makeClient(role: .runtime, maximumConnections: 1)
        // Same length, same first and last 64 bytes: only the middle tells them apart.
        let padding = String(repeating: " ", count: 80)
        let answers = try await client.withConnection { connection in
            var answers: [Int32] = []
            for middle in ["1", "2", "1", "2"] {
                let sql = "SELECT \(padding)\(middle)::integer + $1\(padding)"
                var binds = PostgresBindings()
                binds.append(Int32(10))
                answers.append(try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds).prepared())[0].decode(0, as: Int32.self))
            }
            return answers
        }
        await client.shutdown()
        #expect(answers == [11, 12, 11, 12])
    }

    @Test("a thrown error rolls the whole transaction back")
    func transactionRollsBack() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        try await client.query("CREATE TABLE items (n int)")
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await client.withTransaction { connection in
                try await connection.query("INSERT INTO items VALUES (1)")
                try await connection.query("INSERT INTO items VALUES (2)")
                throw Boom()
            }
        }
        let count = try await client.query("SELECT count(*) FROM items")[0].decode(0, as: Int.self)
        #expect(count == 0)
        _ = try await client.withTransaction { try await $0.query("INSERT INTO items VALUES (3)") }
        #expect(try await client.query("SELECT count(*) FROM items")[0].decode(0, as: Int.self) == 1)
    }

    @Test("COPY FROM STDIN loads 100,000 rows; an aborted COPY keeps none")
    func copyLoadsRows() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        try await client.query("CREATE TABLE customers (n int, name text)")
        let copied = try await client.withConnection { connection in
            try await connection.copyFrom("COPY customers (n, name) FROM STDIN") { writer in
                for n in 0..<100_000 {
                    try await writer.write("\(n)\t\(PostgresCopyWriter.escape("山田\t太郎\\\(n)"))\n")
                }
            }
        }
        #expect(copied == 100_000)
        let rows = try await client.query("SELECT count(*), max(n) FROM customers")
        #expect(try rows[0].decode(0, as: Int.self) == 100_000)
        #expect(try rows[0].decode(1, as: Int.self) == 99_999)
        let name = try await client.query("SELECT name FROM customers WHERE n = 42")[0].decode(0, as: String.self)
        #expect(name == "山田\t太郎\\42")

        struct Stop: Error {}
        await #expect(throws: Stop.self) {
            try await client.withConnection { connection in
                try await connection.copyFrom("COPY customers (n, name) FROM STDIN") { writer in
                    try await writer.write("1\tx\n")
                    throw Stop()
                }
            }
        }
        #expect(try await client.query("SELECT count(*) FROM customers")[0].decode(0, as: Int.self) == 100_000)
    }

    @Test("NOTIFY reaches a LISTENer")
    func notifyReachesListener() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        let (stream, continuation) = AsyncStream.makeStream(of: PostgresNotification.self)
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Void.self)
        let listener = Task {
            try await client.listen(on: ["itaku_registry"], onReady: { readyContinuation.yield() }) { note in
                continuation.yield(note)
            }
        }
        for await _ in ready { break }
        try await client.query("SELECT pg_notify('itaku_registry', \("tenant changed"))")
        var received: PostgresNotification?
        for await note in stream {
            received = note
            break
        }
        listener.cancel()
        #expect(received?.channel == "itaku_registry")
        #expect(received?.payload == "tenant changed")
    }
}

@Suite("Text that cannot be sent")
struct UnsendableTextTests {
    @Test("text with a NUL byte, and JSON with the escape \\u0000, are refused before sending; escaped backslashes are not that escape",
        arguments: [
            (#"{"a":"b"}"#, true), (#"{"a":"\u0000"}"#, false), (#"{"a":"\\u0000"}"#, true), (#"{"a":"\\\u0000"}"#, false),
            (#"{"a":"\u00001"}"#, false), (#"{"a":"\u0001"}"#, true), ("{\"a\":\"\u{0}\"}", false), (#"{"\\":"u0000"}"#, true),
        ])
    func refused(json: String, sendable: Bool) {
        #expect(PostgresJSON(json).isEncodable == sendable)
        var buffer: [UInt8] = []
        #expect(((try? PostgresJSON(json).encode(into: &buffer)) != nil) == sendable)
        #expect("東京\u{0}".isEncodable == false)
        #expect("東京".isEncodable)
        #expect(["a", "b\u{0}"].isEncodable == false)
    }
}
