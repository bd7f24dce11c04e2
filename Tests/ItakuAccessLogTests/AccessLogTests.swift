import Crypto
import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuPostgres
import ItakuTestSupport
import Logging
import ServiceLifecycle
import Testing

/// A log of `count` entries across two tenants, written through the writer with group commit,
/// checkpointed, in a database that nothing else holds open (so tests can clone it).
struct WrittenLog {
    let database: TestDatabase
    let keyring: Keyring
    let commits: Int

    static func make(count: Int) async throws -> WrittenLog {
        let database = try await TestCluster.shared().makeDatabase()
        let keyring = Keyring.generate()
        let client = database.makeClient(role: .runtime, maximumConnections: 4)
        let owner = database.makeClient(role: .owner, maximumConnections: 1)
        let before = try await owner.query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0].decode(0, as: Int64.self)
        // Checkpoints only where the test says (at the end), however long the writing takes.
        var configuration = AccessLogWriter.Configuration()
        configuration.checkpointInterval = .seconds(3600)
        let writer = AccessLogWriter(database: client, keyring: keyring, instanceID: "test", logger: Logger(label: "test"), configuration: configuration)
        let service = Task { try await writer.run() }
        let tenants = [UUID(), UUID()]
        try await withThrowingTaskGroup(of: Void.self) { group in
            // 100 callers at a time, each waiting for its own entry's commit.
            for worker in 0..<100 {
                group.addTask {
                    for n in stride(from: worker, to: count, by: 100) {
                        var entry = AccessEntry(
                            tenantID: tenants[n % 2], actorRole: "integration", actorKeyID: UUID(), operation: .lookup,
                            decision: n % 7 == 0 ? .deny : .allow, reason: n % 7 == 0 ? "not_assigned" : "allowed"
                        )
                        entry.agent = "A\(n % 50)"
                        entry.purposeKey = "order-support"
                        entry.purposeVersion = 1
                        entry.caseRef = "CASE-\(n)"
                        entry.lookupKind = "phone"
                        entry.lookupDigest = Array(SHA256.hash(data: Data("\(n)".utf8)))
                        entry.recordIDs = [UUID()]
                        entry.fields = ["name": "plain", "phone": "last4"]
                        entry.rowsReturned = 1
                        let written = try await writer.append(entry)
                        #expect(written.chain != nil)
                    }
                }
            }
            try await group.waitForAll()
        }
        await writer.checkpoint()
        service.cancel()
        await client.shutdown()
        let after = try await owner.query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0].decode(0, as: Int64.self)
        await owner.shutdown()
        return WrittenLog(database: database, keyring: keyring, commits: Int(after - before))
    }

    func verify(_ database: TestDatabase, anchors: [Checkpoint] = []) async throws -> AccessLogVerifier.Report {
        let client = database.makeClient(role: .reader)
        do {
            let report = try await AccessLogVerifier(publicKey: keyring.checkpointSigningKey.publicKey).verify(client, anchors: anchors)
            await client.shutdown()
            return report
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// The entries that `condition` (with one parameter, `value`) selects.
    static func entries(_ owner: PostgresClient, where condition: String, _ value: some PostgresEncodable) async throws -> [AccessEntry] {
        var binds = PostgresBindings()
        binds.append(value)
        let rows = try await owner.query(
            PostgresQuery(unsafeSQL: "SELECT \(AccessLogStore.columns) FROM itaku.access_log WHERE \(condition)", binds: binds)
        )
        return try rows.map { try AccessLogStore.entry($0) }
    }

    /// A copy of the log with the append-only triggers dropped, tampered with by `sql` as the owner.
    /// A copy of the log changed by `sql` as its owner; `restore`: with the triggers put back.
    func tampered(_ sql: String, restore: Bool = true) async throws -> TestDatabase {
        let copy = try await database.cluster.cloneDatabase(database)
        let owner = copy.makeClient(role: .owner)
        try await owner.withConnection { connection in
            // The owner's way around the log's triggers, put back afterwards: a weakened schema
            // is a finding of its own (`schema`), which a careful insider leaves none of.
            try await connection.executeScript(
                """
                ALTER TABLE itaku.access_log DISABLE TRIGGER access_log_append_only;
                ALTER TABLE itaku.access_log_checkpoints DISABLE TRIGGER access_log_checkpoints_append_only;
                ALTER TABLE itaku.access_log DISABLE TRIGGER access_log_positions;
                """
            )
            try await connection.executeScript(sql)
            guard restore else { return }
            try await connection.executeScript(
                """
                ALTER TABLE itaku.access_log ENABLE ALWAYS TRIGGER access_log_append_only;
                ALTER TABLE itaku.access_log_checkpoints ENABLE ALWAYS TRIGGER access_log_checkpoints_append_only;
                ALTER TABLE itaku.access_log ENABLE ALWAYS TRIGGER access_log_positions;
                """
            )
        }
        await owner.shutdown()
        return copy
    }
}

@Suite("Access log", .serialized)
struct AccessLogTests {
    static let log = Task { try await WrittenLog.make(count: 10_000) }

    @Test("10,000 concurrent appends are group-committed, every one durable, and the untouched log verifies clean")
    func writesAndVerifiesClean() async throws {
        let log = try await Self.log.value
        let owner = log.database.makeClient(role: .owner)
        let count = try await owner.query("SELECT count(*), count(DISTINCT stream) FROM itaku.access_log")
        await owner.shutdown()
        #expect(try count[0].decode(0, as: Int.self) == 10_000)
        #expect(try count[0].decode(1, as: Int.self) == 2)
        // Group commit: far fewer commits than entries.
        #expect(log.commits < 10_000 / 4, "\(log.commits) commits for 10,000 entries")
        let report = try await log.verify(log.database)
        #expect(report.clean)
        #expect(report.entries == 10_000)
        #expect(report.checkpoints == 2)
    }

    @Test("each kind of tampering is detected and located", arguments: [
        ("UPDATE itaku.access_log SET reason = reason || '!' WHERE seq = 2500", "entry_altered", 2500),
        ("DELETE FROM itaku.access_log WHERE seq = 1234", "entries_missing", 1234),
        ("""
         INSERT INTO itaku.access_log SELECT gen_random_uuid(), occurred_at + interval '1 microsecond', tenant_id, actor_role, actor_key_id,
           integration_id, agent, agent_verified, purpose_key, purpose_version, case_ref, operation, dataset, target, version_before,
           version_after, lookup_kind, lookup_digest, record_ids, subject_digests, fields, decision, 'allowed', rows_returned, request_id,
           client_address, stream, seq, prev_hash, hash FROM itaku.access_log WHERE seq = 3000
         """, "", 3000),
        ("""
         UPDATE itaku.access_log a SET case_ref = b.case_ref, lookup_digest = b.lookup_digest
         FROM itaku.access_log b WHERE a.stream = b.stream AND ((a.seq = 400 AND b.seq = 401) OR (a.seq = 401 AND b.seq = 400))
         """, "entry_altered", 400),
        ("DELETE FROM itaku.access_log WHERE seq > 4000", "truncated", 5000),
        ("UPDATE itaku.access_log SET fields = '{\"name\": 1, \"phone\": \"last4\"}' WHERE seq = 777", "entry_altered", 777),
    ] as [(String, String, Int64)])
    func tamperingIsDetected(sql: String, problem: String, seq: Int64) async throws {
        let log = try await Self.log.value
        let copy = try await log.tampered(sql)
        let report = try await log.verify(copy)
        #expect(!report.clean)
        let found = report.streams.compactMap(\.firstProblem)
        #expect(!found.isEmpty)
        #expect(found.allSatisfy { $0.seq == seq }, "\(found)")
        if !problem.isEmpty { #expect(found.allSatisfy { $0.problem == problem }, "\(found)") }
    }

    @Test("a field changed and the chain recomputed without the signing key is caught by the seals and the checkpoint")
    func recomputedChainFailsCheckpoint() async throws {
        let log = try await Self.log.value
        let copy = try await log.tampered("UPDATE itaku.access_log SET reason = reason || '!' WHERE seq = 4321", restore: false)
        // Recompute every hash from the changed entry on, as someone with database access but
        // without the checkpoint key would.
        let owner = copy.makeClient(role: .owner)
        let streams = try await owner.query("SELECT DISTINCT stream FROM itaku.access_log").map { try $0.decode(0, as: String.self) }
        for stream in streams {
            var previous = ChainLink.genesis
            let rows = try await owner.query("SELECT entry_id, seq FROM itaku.access_log WHERE stream = \(stream) ORDER BY seq")
            for row in rows {
                let id = try row.decode(0, as: UUID.self)
                let seq = try row.decode(1, as: Int64.self)
                let entry = try await WrittenLog.entries(owner, where: "entry_id = $1", id)[0]
                let hash = AccessEntry.chainHash(previous: previous, canonical: entry.canonicalBytes(stream: stream, seq: seq))
                if seq >= 4321 || hash != entry.chain?.hash {
                    try await owner.query(
                        "UPDATE itaku.access_log SET prev_hash = \(PostgresBytes(previous)), hash = \(PostgresBytes(hash)) WHERE entry_id = \(id)"
                    )
                }
                previous = hash
            }
        }
        await owner.shutdown()
        let report = try await log.verify(copy)
        #expect(!report.clean)
        // Every seal from the changed entry on no longer signs its entry's hash, the checkpoint
        // names a hash the chain no longer has, and so nothing after the last good seal is verified.
        let problems = report.streams.flatMap(\.problems)
        #expect(problems.contains { $0.problem == "checkpoint_mismatch" && $0.seq == 5000 })
        #expect(problems.contains { $0.problem == "seal_invalid" })
        #expect(problems.filter { $0.problem == "unsealed_tail" }.count == 2)
        #expect(problems.allSatisfy {
            ($0.problem == "seal_invalid" && ($0.seq ?? 0) >= 4321) || $0.problem == "checkpoint_mismatch"
                || ($0.problem == "unsealed_tail" && ($0.seq ?? 0) <= 4321)
        }, "\(problems)")
        #expect(report.streams.allSatisfy { $0.verifiedThrough < 4321 })
    }

    /// Someone with the database can cut a stream back to any sealed entry, or delete it whole,
    /// and delete the checkpoints that named what is gone: nothing in the database shows it.
    /// The checkpoints the service logged (anchors) still do.
    @Test("a stream cut back to a seal, or deleted whole, with its checkpoints, is found through the checkpoints the service logged")
    func anchorsFindWhatTheDatabaseLost() async throws {
        let log = try await Self.log.value
        // The anchors as verify-log reads them: checkpoint lines of the service's JSON log.
        let owner = log.database.makeClient(role: .owner)
        let checkpoints = try await owner.withConnection { try await AccessLogStore.latestCheckpoints(on: $0) }
        let streams = try await owner.query("SELECT DISTINCT stream FROM itaku.access_log ORDER BY stream").map { try $0.decode(0, as: String.self) }
        let (cut, deleted) = (streams[0], streams[1])
        let sealed = try await owner.query(
            "SELECT max(seq) FROM itaku.access_log WHERE stream = \(cut) AND seal IS NOT NULL AND seq <= 4000"
        )[0].decode(0, as: Int64.self)
        await owner.shutdown()
        let handler = JSONLogHandler(label: "itaku")
        let lines = checkpoints.values.map { checkpoint in
            handler.line(level: .notice, message: Checkpoint.logMessage, metadata: checkpoint.logMetadata.mapValues { .string($0) }, time: Date())
        }
        let anchors = lines.compactMap { Checkpoint(logLine: $0) }
        #expect(anchors.count == 2 && Set(anchors.map(\.stream)) == Set(streams))
        #expect(Checkpoint(logLine: handler.line(level: .info, message: "request", metadata: ["http.status": "200"], time: Date())) == nil)

        let copy = try await log.tampered(
            """
            DELETE FROM itaku.access_log WHERE stream = '\(cut)' AND seq > \(sealed);
            DELETE FROM itaku.access_log WHERE stream = '\(deleted)';
            DELETE FROM itaku.access_log_checkpoints;
            """
        )
        // The database alone: what is left is sealed, and verifies.
        let alone = try await log.verify(copy)
        #expect(alone.clean)
        let anchored = try await log.verify(copy, anchors: anchors)
        #expect(!anchored.clean)
        let found = Dictionary(uniqueKeysWithValues: anchored.streams.map { ($0.stream, $0.problems.map { "\($0.problem) \($0.seq ?? 0)" }) })
        #expect(found[cut] == ["truncated 5000"])
        #expect(found[deleted] == ["truncated 5000"])
        // Anchors signed by another key are not used.
        let forged = try anchors.map { anchor in
            try Checkpoint.sign(stream: anchor.stream, tenantID: anchor.tenantID, seq: anchor.seq, hash: anchor.hash, at: anchor.createdAt, keyring: Keyring.generate())
        }
        #expect(try await log.verify(copy, anchors: forged).clean)
    }

    /// The table of each stream's head when seals were introduced carries no signature: raising
    /// it must not make entries appended without the key count as covered.
    @Test("an entry appended without the key is found even under a forged legacy head")
    func forgedLegacyHeadCoversNothing() async throws {
        let log = try await Self.log.value
        let copy = try await log.tampered("SELECT 1")
        let owner = copy.makeClient(role: .owner)
        let stream = try await owner.query("SELECT min(stream) FROM itaku.access_log")[0].decode(0, as: String.self)
        var forged = try await WrittenLog.entries(owner, where: "stream = $1 AND seq = 5000", stream)[0]
        let head = try #require(forged.chain)
        forged.id = UUID()
        forged.reason = "allowed"
        forged.chain = nil
        let hash = AccessEntry.chainHash(previous: head.hash, canonical: forged.canonicalBytes(stream: stream, seq: 5001))
        forged.chain = ChainLink(stream: stream, seq: 5001, previousHash: head.hash, hash: hash)
        try await owner.withConnection { connection in
            try await AccessLogStore.insert(forged, on: connection)
            try await connection.query("INSERT INTO itaku.access_log_legacy_heads (stream, seq) VALUES (\(stream), 9000000000000000000)")
        }
        await owner.shutdown()
        let report = try await log.verify(copy)
        #expect(!report.clean)
        let problems = report.streams.first { $0.stream == stream }?.problems ?? []
        #expect(problems.map { "\($0.problem) \($0.seq ?? 0) \($0.entryID == forged.id)" } == ["unsealed_tail 5001 true"])
    }

    @Test("an entry whose decision is changed to a value Itaku never writes, or that has no stream, is reported")
    func valuesOutsideTheSchemaAreReported() async throws {
        let log = try await Self.log.value
        let copy = try await log.tampered(
            """
            ALTER TABLE itaku.access_log DROP CONSTRAINT access_log_decision_check;
            UPDATE itaku.access_log SET decision = 'denied' WHERE seq = 2222 AND decision = 'deny';
            UPDATE itaku.access_log SET decision = 'allowed' WHERE seq = 2222 AND decision = 'allow';
            ALTER TABLE itaku.access_log ALTER COLUMN stream DROP NOT NULL, ALTER COLUMN seq DROP NOT NULL,
                ALTER COLUMN prev_hash DROP NOT NULL, ALTER COLUMN hash DROP NOT NULL;
            INSERT INTO itaku.access_log (entry_id, occurred_at, tenant_id, actor_role, operation, decision, reason)
                SELECT gen_random_uuid(), occurred_at, tenant_id, actor_role, operation, decision, 'allowed'
                FROM itaku.access_log WHERE seq = 3333 LIMIT 1;
            """
        )
        let report = try await log.verify(copy)
        #expect(!report.clean)
        let found = report.streams.compactMap(\.firstProblem)
        #expect(found.count == 2 && found.allSatisfy { $0.problem == "entry_altered" && $0.seq == 2222 }, "\(found)")
        #expect(report.unchained.count == 1 && report.unchained[0].problem == "unchained_entry")
    }

    @Test("the runtime role cannot update, delete or truncate the log or its checkpoints", arguments: [
        "UPDATE itaku.access_log SET reason = 'allowed'",
        "DELETE FROM itaku.access_log",
        "TRUNCATE itaku.access_log",
        "UPDATE itaku.access_log_checkpoints SET seq = 1",
        "DELETE FROM itaku.access_log_checkpoints",
        "TRUNCATE itaku.access_log_checkpoints",
    ])
    func runtimeRoleCannotChangeTheLog(statement: String) async throws {
        let log = try await Self.log.value
        let copy = try await log.database.cluster.cloneDatabase(log.database)
        let runtime = copy.makeClient(role: .runtime)
        let error = await #expect(throws: PostgresError.self) {
            try await runtime.withTransaction { connection in
                try await connection.query("SELECT set_config('itaku.all_tenants', 'on', true)")
                try await connection.query(PostgresQuery(unsafeSQL: statement))
            }
        }
        await runtime.shutdown()
        #expect(error?.sqlState == PostgresError.SQLState.insufficientPrivilege)
    }

    @Test("a graceful shutdown amid steady appends fails no caller whose entry was taken, and leaves each of them committed")
    func shutdownWritesWhatWasTaken() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let client = database.makeClient(role: .runtime, maximumConnections: 4)
        let writer = AccessLogWriter(database: client, keyring: Keyring.generate(), instanceID: "test", logger: Logger(label: "test"))
        let group = ServiceGroup(services: [writer], logger: Logger(label: "test"))
        let service = Task { try await group.run() }
        let tenant = UUID()
        // 32 callers append one entry after another until the writer stops taking them.
        let outcomes = try await withThrowingTaskGroup(of: (written: [UUID], failed: Int).self) { callers in
            for _ in 0..<32 {
                callers.addTask {
                    var written: [UUID] = [], failed = 0
                    while true {
                        do {
                            let entry = try await writer.append(AccessEntry(
                                tenantID: tenant, actorRole: "integration", actorKeyID: nil, operation: .lookup, decision: .allow, reason: "allowed"
                            ))
                            written.append(entry.id)
                        } catch AccessLogError.unavailable {
                            return (written, failed)
                        } catch {
                            failed += 1
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            await group.triggerGracefulShutdown()
            return try await callers.reduce(into: [(written: [UUID], failed: Int)]()) { $0.append($1) }
        }
        try await service.value
        await client.shutdown()
        let written = Set(outcomes.flatMap(\.written))
        #expect(outcomes.map(\.failed).reduce(0, +) == 0, "callers were told their entries failed during the shutdown")
        #expect(written.count > 100)
        let owner = database.makeClient(role: .owner)
        let stored = try await owner.query("SELECT count(*) FROM itaku.access_log WHERE tenant_id = \(tenant)")[0].decode(0, as: Int.self)
        await owner.shutdown()
        #expect(stored == written.count)
    }
}
