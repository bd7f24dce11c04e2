import Configuration
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuAccessLog
import ItakuCore
import ItakuDemo
import ItakuPostgres
import ItakuRegistry
import ItakuTestSupport
import Logging
import NIOCore
import Synchronization
import Testing

@testable import ItakuHTTP

/// What a reviewer tried, as a user and as an insider: one request must never take the service
/// down, poison a write or fool the log's tamper evidence.
@Suite("Hardening")
struct HardeningTests {
    static let lookup = "/v1/tenants/acme-retail/datasets/customers/lookup"

    static func agent(_ token: String, purpose: String = "order-support", case reference: String = "CALL-1001") -> HTTPFields {
        [.init("Itaku-Agent")!: token, .init("Itaku-Purpose")!: purpose, .init("Itaku-Case")!: reference]
    }

    /// base64url of a cursor's text, as the search hands it out.
    static func cursor(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    @Test("repeated, empty or NUL field names, extreme cursors, a huge retention and NUL filters get clear 4xx answers, and the service stays up")
    func oneRequestCannotCrash() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let integration = credentials["ITAKU_INTEGRATION_KEY"], reviewer = credentials["ITAKU_REVIEWER_KEY"]
        let admin = credentials["ITAKU_CLIENT_ADMIN_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"]), phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        try await app.test(.live) { client in
            let found = try await client.call(
                .post, Self.lookup, key: integration, json: ["by": "phone", "value": phone, "fields": ["name"]], headers: Self.agent(token)
            )
            let record = try #require((found["records"] as? [[String: Any]])?.first)
            #expect((record["fields"] as? [String: String])?.keys.sorted() == ["name"])
            let id = try #require(record["record_id"] as? String)

            for request in [
                try await client.call(
                    .post, Self.lookup, key: integration, json: ["by": "phone", "value": phone, "fields": ["name", "name"]], headers: Self.agent(token)
                ),
                try await client.call(
                    .get, "/v1/tenants/acme-retail/datasets/customers/records/\(id)?fields=name,name", key: integration, headers: Self.agent(token)
                ),
                try await client.call(
                    .get, "/v1/tenants/acme-retail/datasets/customers/records/\(id)?fields=name,,email", key: integration, headers: Self.agent(token)
                ),
                try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": phone, "fields": ["name\u{0}"]], headers: Self.agent(token)),
                try await client.call(.get, "/v1/tenants/acme-retail/datasets/customers/records/\(id)?fields=name%00", key: integration, headers: Self.agent(token)),
            ] {
                #expect(request.status == .badRequest && request.code == "invalid_fields", "\(request.text)")
                #expect(request["access_id"] != nil, "refused after the enforcer allowed: a logged decision")
            }

            for text in ["9223372036854775807:\(UUID())", "-9223372036854775808:\(UUID())", "1:not-a-uuid", "%%%"] {
                let search = try await client.call(.get, "/v1/access-log?cursor=\(Self.cursor(text))", key: reviewer)
                #expect(search.status == .badRequest && search.code == "invalid_cursor", "\(text): \(search.text)")
                let checkpoints = try await client.call(.get, "/v1/access-log/checkpoints?cursor=\(Self.cursor(text))", key: reviewer)
                #expect(checkpoints.status == .badRequest && checkpoints.code == "invalid_cursor")
            }
            let filter = try await client.call(.get, "/v1/access-log?agent=A%00", key: reviewer)
            #expect(filter.status == .badRequest && filter.code == "invalid_parameter")

            var dataset = customersDataset
            dataset["retention_days"] = 1_000_000_000_000_000
            let huge = try await client.call(.put, "/v1/tenants/acme-retail/datasets/archive", key: admin, json: dataset)
            #expect(huge.status == .unprocessableContent && huge.code == "invalid_retention", "\(huge.text)")
            dataset["retention_days"] = 36_500
            #expect(try await client.call(.put, "/v1/tenants/acme-retail/datasets/archive", key: admin, json: dataset).status.code < 300)

            // A NUL in an imported value names its line; nothing is imported.
            let nul = try await client.call(
                .post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin,
                text: "customer_no,name,phone\nC990001,Ok,090-1234-5678\nC990002,A\u{0}B,090-1234-5679\n"
            )
            #expect(nul.status == .unprocessableContent && nul.code == "import_rejected", "\(nul.text)")
            let issue = (nul["errors"] as? [[String: Any]])?.first
            #expect(issue?["code"] as? String == "invalid_characters" && issue?["line"] as? Int == 3)
            let updated = try await client.call(
                .patch, "/v1/tenants/acme-retail/datasets/customers/records/\(id)", key: integration,
                json: ["fields": ["address": "大阪\u{0}"]], headers: Self.agent(token)
            )
            #expect(updated.status == .unprocessableContent && updated.code == "invalid_value" && updated["access_id"] != nil, "\(updated.text)")

            // A body limit belongs to the matched route: a path merely ending in /imports does
            // not get the import limit.
            let big = String(repeating: "x", count: 2 << 20)
            let tooBig = try await client.call(.put, "/v1/tenants/acme-retail/purposes/imports", key: admin, text: big, contentType: "application/json")
            #expect(tooBig.status == .contentTooLarge && tooBig.code == "payload_too_large")

            #expect(try await client.execute(uri: "/livez", method: .get) { $0.status } == .ok)
            let again = try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token))
            #expect(again.status == .ok)
        }
        // The connection's address is in every entry; no entry holds a NUL or an unaccepted case.
        let owner = database.makeClient(role: .owner)
        let addresses = try await owner.query(
            "SELECT DISTINCT client_address FROM itaku.access_log WHERE operation IN ('lookup', 'read', 'review')"
        ).map { try $0.decode(0, as: String?.self) }
        await owner.shutdown()
        #expect(addresses == ["127.0.0.1"])
    }

    @Test("input problems are decided after the enforcer's checks, in DESIGN.md section 6 order, and logged; case references must match the tenant's pattern")
    func inputIsDecidedInOrder() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let integration = credentials["ITAKU_INTEGRATION_KEY"], asserted = credentials["ITAKU_ASSERTED_INTEGRATION_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"]), phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        let operatorKey = try #require(credentials["ITAKU_OPERATOR_KEY"])
        try await app.test(.live) { client in
            // A0003 is assigned to nothing: that decides before the malformed value does.
            let unassigned = try await client.call(
                .post, Self.lookup, key: asserted, json: ["by": "phone", "value": "abc"],
                headers: [.init("Itaku-Agent-Id")!: "A0003", .init("Itaku-Purpose")!: "order-support", .init("Itaku-Case")!: "CALL-7"]
            )
            #expect(unassigned.status == .forbidden && unassigned.code == "not_assigned")
            let invalid = try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": "abc"], headers: Self.agent(token))
            #expect(invalid.status == .badRequest && invalid.code == "invalid_lookup_value" && invalid["access_id"] != nil)

            // A phone number is not a case reference (it would be personal data in the log).
            let phoneCase = try await client.call(
                .post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token, case: "090-1234-5678")
            )
            #expect(phoneCase.status == .badRequest && phoneCase.code == "invalid_case" && phoneCase["access_id"] != nil)
            // A tenant narrows the pattern; references that do not match are refused.
            let patched = try await client.call(.patch, "/v1/tenants/acme-retail", key: operatorKey, json: ["case_pattern": "CALL-[0-9]{4}"])
            #expect(patched["case_pattern"] as? String == "CALL-[0-9]{4}")
            let badPattern = try await client.call(.patch, "/v1/tenants/acme-retail", key: operatorKey, json: ["case_pattern": "CALL-[0-9"])
            #expect(badPattern.code == "invalid_case_pattern")
            let longCase = try await client.call(
                .post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token, case: "CALL-12345")
            )
            #expect(longCase.code == "invalid_case")
            let goodCase = try await client.call(
                .post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token, case: "CALL-1234")
            )
            #expect(goodCase.status == .ok)
        }
        let owner = database.makeClient(role: .owner)
        let rows = try await owner.query(
            "SELECT reason, coalesce(case_ref, '') FROM itaku.access_log WHERE operation = 'lookup' ORDER BY occurred_at"
        ).map { (try $0.decode(0, as: String.self), try $0.decode(1, as: String.self)) }
        await owner.shutdown()
        #expect(rows.map(\.0) == ["not_assigned", "invalid_lookup_value", "invalid_case", "invalid_case", "allowed"])
        #expect(rows.map(\.1) == ["CALL-7", "CALL-1001", "", "", "CALL-1234"])
    }

    @Test("50 concurrent lookups under a 10-per-minute purpose give exactly 10 answers of 200")
    func volumeIsReservedAtomically() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let integration = credentials["ITAKU_INTEGRATION_KEY"], token = try #require(credentials["ITAKU_AGENT_TOKEN"])
        let customer = try #require(Array(DemoCustomers(count: 1)).first?["customer_no"])
        // All 50 inside one counting minute.
        let second = Calendar(identifier: .gregorian).component(.second, from: Date())
        if second > 45 { try await Task.sleep(for: .seconds(61 - second)) }
        let all: [Int] = try await app.test(.live) { client in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<50 {
                    group.addTask {
                        let answer = try await client.call(
                            .post, Self.lookup, key: integration, json: ["by": "customer_no", "value": customer],
                            headers: Self.agent(token, purpose: "survey-outreach", case: "CALL-\(n)")
                        )
                        return Int(answer.status.code)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        #expect(all.filter { $0 == 200 }.count == 10, "\(all)")
        #expect(all.filter { $0 == 429 }.count == 40, "\(all)")
    }

    @Test("an entry added without the signing key, a sequence number taken twice or missing: refused or reported, never verified")
    func insiderCannotFoolTheLog() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let integration = credentials["ITAKU_INTEGRATION_KEY"], reviewer = credentials["ITAKU_REVIEWER_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"]), phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        try await app.test(.live) { client in
            for n in 0..<5 {
                let found = try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token, case: "CALL-\(n)"))
                #expect(found.status == .ok)
            }
            let before = try await client.call(.post, "/v1/access-log/verify", key: reviewer)
            #expect(before["clean"] as? Bool == true, "\(before.text)")

            // As the runtime role (what an insider with the service's credentials has): append a
            // well-chained entry after the head of a stream.
            let runtime = database.makeClient(role: .runtime)
            let owner = database.makeClient(role: .owner)
            let head = try await owner.query(PostgresQuery(
                unsafeSQL: "SELECT \(AccessLogStore.columns) FROM itaku.access_log WHERE operation = 'lookup' ORDER BY occurred_at DESC LIMIT 1"
            ))
            let last = try AccessLogStore.entry(head[0])
            let link = try #require(last.chain)
            var forged = last
            forged.id = UUID()
            // To the microsecond, as the writer stores times (the hash covers them).
            forged.occurredAt = Date(timeIntervalSince1970: Double(AccessEntry.microseconds(Date())) / 1_000_000)
            forged.reason = "allowed"
            let hash = AccessEntry.chainHash(previous: link.hash, canonical: forged.canonicalBytes(stream: link.stream, seq: link.seq + 1))
            forged.chain = ChainLink(stream: link.stream, seq: link.seq + 1, previousHash: link.hash, hash: hash)
            try await runtime.withTransaction { try await AccessLogStore.insert(forged, on: $0) }
            // Taking a position twice is refused, whatever the time.
            var twin = forged
            twin.id = UUID()
            twin.occurredAt = Date().addingTimeInterval(-1)
            let duplicate = await #expect(throws: PostgresError.self) {
                try await runtime.withTransaction { try await AccessLogStore.insert(twin, on: $0) }
            }
            #expect(duplicate?.sqlState == PostgresError.SQLState.uniqueViolation)
            // So is an entry outside every chain.
            let loose = await #expect(throws: PostgresError.self) {
                try await runtime.query("INSERT INTO itaku.access_log (entry_id, occurred_at, actor_role, operation, decision, reason) VALUES (\(UUID()), now(), 'integration', 'lookup', 'allow', 'allowed')")
            }
            #expect(loose?.sqlState == "23502")
            // The runtime role cannot open other tenants' rows by setting the old switch.
            let seen = try await runtime.withTransaction { connection in
                try await connection.query("SELECT set_config('itaku.all_tenants', 'on', true)")
                return try await connection.query("SELECT count(*) FROM itaku.access_log")[0].decode(0, as: Int.self)
            }
            #expect(seen == 0)
            await runtime.shutdown()
            await owner.shutdown()
            // The gateway does not stall on the position the forgery took: it writes on in new streams.
            for n in 5..<8 {
                let found = try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token, case: "CALL-\(n)"))
                #expect(found.status == .ok, "\(found.text)")
            }

            let after = try await client.call(.post, "/v1/access-log/verify", key: reviewer)
            #expect(after["clean"] as? Bool == false)
            let streams = try #require(after["streams"] as? [[String: Any]])
            let problems = streams.flatMap { ($0["problems"] as? [[String: Any]]) ?? [] }
            #expect(problems.map { $0["problem"] as? String } == ["unsealed_tail"], "\(problems)")
            #expect(problems.first?["seq"] as? Int == Int(link.seq + 1))

            // A row the verifier cannot read back, and a sequence number at the end of the range:
            // reported or refused, never a crash or a 500.
            let insider = database.makeClient(role: .runtime)
            let far = await #expect(throws: PostgresError.self) {
                try await insider.query(
                    """
                    INSERT INTO itaku.access_log (entry_id, occurred_at, actor_role, operation, decision, reason, stream, seq, prev_hash, hash)
                    VALUES (\(UUID()), now(), 'integration', 'lookup', 'allow', 'allowed', 'forged', \(Int64.max), '\\x00', '\\x00')
                    """
                )
            }
            #expect(far?.sqlState == "23514")
            try await insider.query(
                """
                INSERT INTO itaku.access_log (entry_id, occurred_at, actor_role, operation, decision, reason, stream, seq, prev_hash, hash, subject_digests)
                VALUES (\(UUID()), now(), 'integration', 'lookup', 'allow', 'allowed', 'forged', 1, '\\x00', '\\x00', '{NULL}')
                """
            )
            await insider.shutdown()
            let unreadable = try await client.call(.post, "/v1/access-log/verify", key: reviewer)
            #expect(unreadable.status == .ok)
            let streams2 = (unreadable["streams"] as? [[String: Any]]) ?? []
            let forgedStream = streams2.first { $0["stream"] as? String == "forged" }
            let forgedProblems = (forgedStream?["problems"] as? [[String: Any]]) ?? []
            let codes = forgedProblems.compactMap { $0["problem"] as? String }
            #expect(codes.contains("entry_altered"), "\(unreadable.text)")
        }
    }

    @Test("a database that refuses one entry of a batch fails that entry alone; an entry with NUL is refused before writing")
    func oneBadEntryFailsAlone() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let owner = database.makeClient(role: .owner)
        try await owner.withConnection { connection in
            try await connection.executeScript("""
                CREATE FUNCTION itaku.poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.reason = 'poison' THEN RAISE EXCEPTION 'poisoned entry'; END IF; RETURN NEW; END $$;
                CREATE TRIGGER poison BEFORE INSERT ON itaku.access_log FOR EACH ROW EXECUTE FUNCTION itaku.poison();
                """)
        }
        let client = database.makeClient(role: .runtime, maximumConnections: 4)
        let reader = database.makeClient(role: .reader)
        let keyring = Keyring.generate()
        let writer = AccessLogWriter(database: client, keyring: keyring, instanceID: "poison-test", logger: Logger(label: "test"))
        let service = Task { try await writer.run() }
        let all: [String: Bool]
        do {
            all = await withTaskGroup(of: (String, Bool).self) { appends in
                for n in 0..<60 {
                    appends.addTask {
                        var entry = AccessEntry(tenantID: nil, actorRole: "operator", actorKeyID: nil, operation: .configure, decision: .allow, reason: "allowed")
                        entry.reason = n == 17 ? "poison" : "allowed"
                        entry.target = "entry-\(n)"
                        return ("entry-\(n)", (try? await writer.append(entry)) != nil)
                    }
                }
                return await appends.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            var withNUL = AccessEntry(tenantID: nil, actorRole: "operator", actorKeyID: nil, operation: .configure, decision: .allow, reason: "allowed")
            withNUL.caseRef = "CALL\u{0}1"
            await #expect(throws: AccessLogError.unstorable) { try await writer.append(withNUL) }
            await writer.checkpoint()
        }
        service.cancel()
        #expect(all.count == 60)
        #expect(all.filter { !$0.value }.map(\.key) == ["entry-17"])
        let report = try await AccessLogVerifier(publicKey: keyring.checkpointSigningKey.publicKey).verify(reader)
        #expect(report.clean, "\(report.streams.flatMap(\.problems))")
        #expect(report.entries == 59)
        await client.shutdown()
        await reader.shutdown()
        await owner.shutdown()
    }

    @Test("checkpoints page newest first in SQL, a client admin sees only its tenant's, and listing them writes nothing")
    func checkpointsArePaged() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let integration = credentials["ITAKU_INTEGRATION_KEY"], reviewer = credentials["ITAKU_REVIEWER_KEY"]
        let admin = credentials["ITAKU_CLIENT_ADMIN_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"]), phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        let owner = database.makeClient(role: .owner)
        try await app.test(.live) { client in
            _ = try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token))
            _ = try await client.call(.get, "/v1/access-log?limit=1", key: reviewer)
            // The writer signs the heads every 5 s: wait for the acme-retail and the global stream.
            for _ in 0..<40 {
                if try await owner.query("SELECT count(*) FROM itaku.access_log_checkpoints")[0].decode(0, as: Int.self) >= 2 { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            let entries = try await owner.query("SELECT count(*) FROM itaku.access_log")[0].decode(0, as: Int.self)
            let first = try await client.call(.get, "/v1/access-log/checkpoints?limit=1", key: reviewer)
            #expect((first["checkpoints"] as? [Any])?.count == 1)
            let next = try #require(first["next_cursor"] as? String)
            let second = try await client.call(.get, "/v1/access-log/checkpoints?limit=1&cursor=\(next)", key: reviewer)
            #expect((second["checkpoints"] as? [Any])?.count == 1)
            let own = try await client.call(.get, "/v1/access-log/checkpoints", key: admin)
            let tenants = ((own["checkpoints"] as? [[String: Any]]) ?? []).map { $0["tenant"] as? String }
            #expect(!tenants.isEmpty && tenants.allSatisfy { $0 == "acme-retail" }, "\(own.text)")
            #expect(try await owner.query("SELECT count(*) FROM itaku.access_log")[0].decode(0, as: Int.self) == entries)
        }
        await owner.shutdown()
    }

    @Test("agent tokens are bound to their integration (azp) and capped in lifetime")
    func tokensAreBound() async throws {
        let (database, state, keyring, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(
            database: database, settings: ["state.directory": .init(.string(state), isSecret: false), "agents.maxTokenMinutes": 60]
        )
        let integration = credentials["ITAKU_INTEGRATION_KEY"], phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        let owner = database.makeClient(role: .owner)
        let integrationID = try await owner.query("SELECT integration_id FROM itaku.integrations WHERE name = 'demo-desktop'")[0].decode(0, as: UUID.self)
        await owner.shutdown()
        try await app.test(.live) { client in
            for (token, status) in [
                (try AgentToken.mint(employeeID: "A0001", keyring: keyring, lifetime: 1800, authorizedParty: integrationID), 200),
                (try AgentToken.mint(employeeID: "A0001", keyring: keyring, lifetime: 1800, authorizedParty: UUID()), 401),
                (try AgentToken.mint(employeeID: "A0001", keyring: keyring, lifetime: 4 * 3600), 401),
            ] {
                let answer = try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token))
                #expect(Int(answer.status.code) == status, "\(answer.text)")
            }
        }
        // Where every token must name its integration, one that names none is refused.
        let strict = try await makeApplication(
            database: database, settings: ["state.directory": .init(.string(state), isSecret: false), "agents.requireAuthorizedParty": true]
        )
        try await strict.test(.live) { client in
            let unbound = try AgentToken.mint(employeeID: "A0001", keyring: keyring, lifetime: 1800)
            let answer = try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(unbound))
            #expect(answer.status == .unauthorized && answer.code == "agent_unverified")
        }
    }

    @Test("the service refuses to run as a privileged role, and db.migrationUrl no longer defaults to db.url")
    func privilegedRolesAreRefused() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        // Roles that bypass row-level security, or may become the owner (a superuser here)
        // without inheriting its rights: refused like the owner itself.
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let admin = database.makeClient(role: .owner)
        try await admin.withConnection { connection in
            try await connection.executeScript("""
                CREATE ROLE bypass_\(suffix) LOGIN BYPASSRLS;
                CREATE ROLE member_\(suffix) LOGIN NOINHERIT;
                GRANT \(database.cluster.superuser) TO member_\(suffix);
                """)
        }
        await admin.shutdown()
        for user in ["bypass_\(suffix)", "member_\(suffix)"] {
            var configuration = database.cluster.configuration(database: database.name, user: user)
            configuration.requireUnprivilegedRole = true
            let client = PostgresClient(configuration: configuration, logger: Logger(label: "test"))
            let refused = await #expect(throws: PostgresError.self) { try await client.query("SELECT 1") }
            #expect(refused?.kind == .unsafeSession, "\(user)")
            await client.shutdown()
        }
        var configuration = database.configuration(role: .owner)
        configuration.requireUnprivilegedRole = true
        let owner = PostgresClient(configuration: configuration, logger: Logger(label: "test"))
        let error = await #expect(throws: PostgresError.self) { try await owner.query("SELECT 1") }
        #expect(error?.kind == .unsafeSession)
        await owner.shutdown()
        var runtimeConfiguration = database.configuration(role: .runtime)
        runtimeConfiguration.requireUnprivilegedRole = true
        let runtime = PostgresClient(configuration: runtimeConfiguration, logger: Logger(label: "test"))
        #expect(try await runtime.query("SELECT 1")[0].decode(0, as: Int32.self) == 1)
        await runtime.shutdown()

        let settings = ItakuConfiguration(reader: ConfigReader(provider: InMemoryProvider(values: [
            "db.url": .init(.string(database.url(role: .runtime)), isSecret: true),
        ])))
        #expect(settings.migrationURL.isEmpty)
        await #expect(throws: ConfigurationError.self) { try await migrate(url: settings.migrationURL, logger: Logger(label: "test")) }
    }

    @Test("the client address is the peer's, or a trusted proxy's X-Forwarded-For, and only ever an address", arguments: [
        ("10.0.0.5", ["203.0.113.9"], "10.0.0.5"),
        ("127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        ("127.0.0.1", ["198.51.100.1, 203.0.113.9, 127.0.0.1"], "203.0.113.9"),
        ("127.0.0.1", ["<script>"], "127.0.0.1"),
        ("127.0.0.1", ["09012345678"], "127.0.0.1"),
        ("127.0.0.1", ["2001:db8::1"], "2001:db8::1"),
        ("127.0.0.1", [], "127.0.0.1"),
    ] as [(String, [String], String)])
    func clientAddress(peer: String, forwardedFor: [String], expected: String) {
        #expect(RequestLogMiddleware.clientAddress(peer: peer, forwardedFor: forwardedFor, trusted: ["127.0.0.1"]) == expected)
    }

    @Test("Itaku's default case pattern admits call and ticket ids and refuses what could be personal data", arguments: [
        ("CALL-1001", true), ("INC0012345", true), ("T#42", true), ("123456789", true), ("3f2b8c1e-9a4d-4c2b-8e1f-0a1b2c3d4e5f", true),
        ("Yamada-Taro", false), ("taro.yamada", false), ("tel:09012345678", false), ("tel:090-1234-5678", false),
        ("09012345678", false), ("taro@example.jp", false), ("山田太郎", false), ("CALL 1001", false), ("", false),
    ] as [(String, Bool)])
    func defaultCasePattern(reference: String, accepted: Bool) {
        #expect(CaseReference.isAcceptable(reference, pattern: nil) == accepted)
    }

    @Test("the owner's rows out of the walk's reach, a weakened schema and a forged checkpoint over a cut stream: each reported, never verified")
    func ownerCannotHideFromTheWalk() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let integration = credentials["ITAKU_INTEGRATION_KEY"], reviewer = credentials["ITAKU_REVIEWER_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"]), phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        let owner = database.makeClient(role: .owner)
        let runtime = database.makeClient(role: .runtime)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        try await app.test(.live) { client in
            for n in 0..<3 {
                let found = try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token, case: "CALL-\(n)"))
                #expect(found.status == .ok)
            }
            // The writer checkpoints every stream's head every few seconds.
            let checkpointed = try await timeUntil(limit: .seconds(15)) {
                try await owner.query("SELECT count(*) FROM itaku.access_log_checkpoints WHERE stream LIKE '%/%'")[0].decode(0, as: Int.self) > 0
            }
            #expect(checkpointed != nil)
            #expect(try await client.call(.post, "/v1/access-log/verify", key: reviewer)["clean"] as? Bool == true)

            // A checkpoint with the highest number, signed by nobody (the runtime role may
            // write checkpoints), then the stream cut below its real newest checkpoint.
            let newest = try await owner.query(
                "SELECT stream, seq, tenant_id FROM itaku.access_log_checkpoints WHERE stream LIKE '%/%' ORDER BY created_at DESC LIMIT 1"
            )
            let stream = try newest[0].decode(0, as: String.self), seq = try newest[0].decode(1, as: Int64.self)
            let tenant = try newest[0].decode(2, as: UUID?.self)
            try await runtime.withTransaction { connection in
                try await connection.query("SELECT set_config('itaku.tenant_id', \(tenant?.uuidString ?? ""), true)")
                try await connection.query(
                    """
                    INSERT INTO itaku.access_log_checkpoints (created_at, stream, tenant_id, seq, hash, key_id, signature)
                    VALUES (now(), \(stream), \(tenant), 4611686018427387904, '\\x00', 'x', '\\x00')
                    """
                )
            }
            // A checkpoint copied under another tenant's id (the stream is signed, tenant_id is
            // not): refused, so no tenant's list shows another's stream or loses its own.
            let other = try await owner.query(
                "SELECT tenant_id FROM itaku.tenants WHERE tenant_id IS DISTINCT FROM \(tenant) LIMIT 1"
            )[0].decode(0, as: UUID.self)
            let relabelled = await #expect(throws: PostgresError.self) {
                try await runtime.withTransaction { connection in
                    try await connection.query("SELECT set_config('itaku.tenant_id', \(other.uuidString), true)")
                    try await connection.query(
                        """
                        INSERT INTO itaku.access_log_checkpoints (created_at, stream, tenant_id, seq, hash, key_id, signature)
                        VALUES (now(), \(stream), \(other), \(seq), '\\x00', 'x', '\\x00')
                        """
                    )
                }
            }
            #expect(relabelled?.sqlState == "23514")
            try await owner.query("ALTER TABLE itaku.access_log DISABLE TRIGGER access_log_append_only")
            try await owner.query("DELETE FROM itaku.access_log WHERE stream = \(stream) AND seq >= \(seq)")
            try await owner.query("ALTER TABLE itaku.access_log ENABLE ALWAYS TRIGGER access_log_append_only")
            let cut = try await client.call(.post, "/v1/access-log/verify", key: reviewer)
            #expect(cut["clean"] as? Bool == false)
            let report = ((cut["streams"] as? [[String: Any]]) ?? []).first { $0["stream"] as? String == stream }
            let problems = ((report?["problems"] as? [[String: Any]]) ?? []).compactMap { $0["problem"] as? String }
            #expect(problems.contains("truncated") && problems.contains("checkpoint_signature_invalid"), "\(cut.text)")

            // A row without a sequence number, in a stream that sorts first, written with the
            // column's NOT NULL dropped and the positions trigger off: out of the walk's reach.
            try await owner.query("ALTER TABLE itaku.access_log ALTER COLUMN seq DROP NOT NULL")
            try await owner.query("ALTER TABLE itaku.access_log DISABLE TRIGGER access_log_positions")
            let hidden = UUID()
            try await owner.query(
                """
                INSERT INTO itaku.access_log (entry_id, occurred_at, tenant_id, actor_role, operation, decision, reason, stream, seq, prev_hash, hash)
                VALUES (\(hidden), now(), \(tenant), 'integration', 'lookup', 'allow', 'allowed', '', NULL, '\\x00', '\\x00')
                """
            )
            try await owner.query("ALTER TABLE itaku.access_log ENABLE ALWAYS TRIGGER access_log_positions")
            let after = try await client.call(.post, "/v1/access-log/verify", key: reviewer)
            #expect(after.status == .ok)
            #expect(after["clean"] as? Bool == false)
            let unchained = ((after["unchained"] as? [[String: Any]]) ?? []).compactMap { $0["entry_id"] as? String }
            #expect(unchained.map { $0.lowercased() } == [hidden.lowercasedString], "\(after.text)")
            #expect((after["schema"] as? [String]) == ["access_log.seq may be NULL"], "\(after.text)")
        }
    }

    @Test("a case binding is its integration's own: an asserted integration naming the agent and the case cannot read what the agent's desktop looked up")
    func bindingsAreTheIntegrations() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let integration = credentials["ITAKU_INTEGRATION_KEY"], asserted = credentials["ITAKU_ASSERTED_INTEGRATION_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"]), phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        try await app.test(.live) { client in
            let found = try await client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: Self.agent(token, case: "CALL-5001"))
            let record = try #require((found["records"] as? [[String: Any]])?.first?["record_id"] as? String, "\(found.text)")
            let path = "/v1/tenants/acme-retail/datasets/customers/records/\(record)"
            let named: HTTPFields = [.init("Itaku-Agent-Id")!: "A0001", .init("Itaku-Purpose")!: "order-support", .init("Itaku-Case")!: "CALL-5001"]
            let other = try await client.call(.get, path, key: asserted, headers: named)
            #expect(other.status == .forbidden && other.code == "not_case_bound", "\(other.text)")
            // The desktop that looked the record up reads it.
            #expect(try await client.call(.get, path, key: integration, headers: Self.agent(token, case: "CALL-5001")).status == .ok)
        }
    }
}

