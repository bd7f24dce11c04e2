import Configuration
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuDemo
import ItakuPostgres
import ItakuTestSupport
import Logging
import Testing

/// The data-subject life cycle as a client admin runs it: requests of each kind executed with
/// evidence, retention and the contract's end with signed disposal records.
@Suite("Data-subject life cycle")
struct SubjectRequestTests {
    static let base = "/v1/tenants/acme-retail"
    static let lookup = base + "/datasets/customers/lookup"

    static func lookupSubject(_ client: some TestClientProtocol, integration: String?, token: String, phone: String, case reference: String) async throws -> JSONResponse {
        try await client.call(.post, lookup, key: integration, json: ["by": "phone", "value": phone], headers: HardeningTests.agent(token, case: reference))
    }

    @Test("disclosure, suspension, resumption, correction, rejection and deletion: each executed with its entries, the log still verifies")
    func everyKind() async throws {
        let (database, state, keyring, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"]), reviewer = credentials["ITAKU_REVIEWER_KEY"]
        let integration = credentials["ITAKU_INTEGRATION_KEY"], token = try #require(credentials["ITAKU_AGENT_TOKEN"])
        let phone = try #require(credentials["ITAKU_DEMO_PHONE"]), customerNo = try #require(credentials["ITAKU_DEMO_CUSTOMER_NO"])
        let other = try #require(DemoCustomers(count: 50).first { $0["customer_no"] != customerNo && $0["phone"] != phone })
        let digest = LookupDigester(key: keyring.digestKey(tenant: try await tenantID(database, "acme-retail").uuidString))
            .subjectDigest(externalID: customerNo)
        try await app.test(.live) { client in
            // Three accesses to the subject, one to somebody else.
            var accessIDs: [String] = []
            for n in 1...3 {
                let found = try await Self.lookupSubject(client, integration: integration, token: token, phone: phone, case: "CALL-\(n)")
                #expect((found["records"] as? [Any])?.count == 1)
                accessIDs.append(try #require(found["access_id"] as? String))
            }
            _ = try await Self.lookupSubject(client, integration: integration, token: token, phone: other["phone"]!, case: "CALL-9")

            // Disclosure: located by phone; the package holds exactly the subject's accesses.
            let disclosure = try await client.call(.post, Self.base + "/subject-requests", key: admin, json: [
                "kind": "disclosure", "dataset": "customers", "subject": ["by": "phone", "value": phone],
                "due_date": "2027-01-15", "reference": "REQ-2026-001",
            ])
            #expect(disclosure.status == .created, "\(disclosure.text)")
            #expect(disclosure["state"] as? String == "received")
            #expect(disclosure["subject_digests"] as? [String] == [digest])
            let disclosureID = try #require(disclosure["id"] as? String)
            let recordID = try #require((disclosure["record_ids"] as? [String])?.first)
            #expect(try await client.call(.get, Self.base + "/subject-requests/\(disclosureID)/package", key: admin).code == "request_not_executed")
            #expect(try await client.call(.post, Self.base + "/subject-requests/\(disclosureID)/execute", key: admin)["state"] as? String == "executed")
            let package = try await client.call(.get, Self.base + "/subject-requests/\(disclosureID)/package", key: admin)
            #expect(package.status == .ok)
            let records = try #require(package["records"] as? [[String: Any]])
            #expect(records.count == 1)
            #expect(records.first?["external_id"] as? String == customerNo)
            #expect((records.first?["fields"] as? [String: String])?["phone"] == phone)
            let history = try #require(package["access_history"] as? [[String: Any]])
            #expect(history.compactMap { $0["entry_id"] as? String } == accessIDs)
            #expect(history.allSatisfy { $0["agent"] as? String == "A0001" && $0["purpose"] as? String == "order-support" })
            let csv = try await client.call(.get, Self.base + "/subject-requests/\(disclosureID)/package?format=csv", key: admin)
            #expect(csv.headers[.contentType] == "text/csv; charset=utf-8")
            #expect(csv.text.split(separator: "\n").count == 4)
            let fieldsCSV = try await client.call(.get, Self.base + "/subject-requests/\(disclosureID)/package?format=csv&part=fields", key: admin)
            #expect(fieldsCSV.text.contains(",phone,"))
            #expect(try await client.call(.get, Self.base + "/subject-requests/\(disclosureID)/package?format=xml", key: admin).code == "invalid_parameter")

            // Suspension: withheld from lookups and reads until resumed.
            let suspension = try await client.call(.post, Self.base + "/subject-requests", key: admin, json: [
                "kind": "suspension", "dataset": "customers", "subject": ["record_ids": [recordID]],
            ])
            let suspensionID = try #require(suspension["id"] as? String)
            #expect(try await client.call(.post, Self.base + "/subject-requests/\(suspensionID)/execute", key: admin).status == .ok)
            let withheld = try await Self.lookupSubject(client, integration: integration, token: token, phone: phone, case: "CALL-4")
            #expect((withheld["records"] as? [Any])?.isEmpty == true)
            #expect(withheld["withheld"] as? Int == 1)
            let read = try await client.call(
                .get, Self.base + "/datasets/customers/records/\(recordID)", key: integration, headers: HardeningTests.agent(token, case: "CALL-1")
            )
            #expect((read["records"] as? [Any])?.isEmpty == true)
            #expect(read["withheld"] as? Int == 1)
            let resumption = try await client.call(.post, Self.base + "/subject-requests", key: admin, json: [
                "kind": "resumption", "dataset": "customers", "subject": ["record_ids": [recordID]],
            ])
            _ = try await client.call(.post, Self.base + "/subject-requests/\(try #require(resumption["id"] as? String))/execute", key: admin)
            #expect((try await Self.lookupSubject(client, integration: integration, token: token, phone: phone, case: "CALL-5")["records"] as? [Any])?.count == 1)

            // Correction: the new value is served; the log holds digests of before and after.
            let correction = try await client.call(.post, Self.base + "/subject-requests", key: admin, json: [
                "kind": "correction", "dataset": "customers", "subject": ["by": "customer_no", "value": customerNo],
            ])
            let correctionID = try #require(correction["id"] as? String)
            let unknown = try await client.call(.post, Self.base + "/subject-requests/\(correctionID)/execute", key: admin, json: ["fields": ["shoe_size": "27"]])
            #expect(unknown.status == .unprocessableContent)
            #expect(unknown.code == "unknown_field")
            let corrected = try await client.call(.post, Self.base + "/subject-requests/\(correctionID)/execute", key: admin, json: ["fields": ["name": "訂正 花子"]])
            #expect(corrected["state"] as? String == "executed", "\(corrected.text)")
            let after = try await Self.lookupSubject(client, integration: integration, token: token, phone: phone, case: "CALL-6")
            #expect(((after["records"] as? [[String: Any]])?.first?["fields"] as? [String: String])?["name"] == "訂正 花子")

            // Rejection: with a reason; a decided request cannot be executed.
            let rejected = try await client.call(.post, Self.base + "/subject-requests", key: admin, json: [
                "kind": "deletion", "dataset": "customers", "subject": ["record_ids": [recordID]],
            ])
            let rejectedID = try #require(rejected["id"] as? String)
            #expect(try await client.call(.post, Self.base + "/subject-requests/\(rejectedID)/reject", key: admin, json: ["reason": "Retention required by law"])["state"] as? String == "rejected")
            #expect(try await client.call(.post, Self.base + "/subject-requests/\(rejectedID)/execute", key: admin).code == "request_not_pending")

            // Deletion: the record and its lookup keys go; a signed disposal record remains.
            let deletion = try await client.call(.post, Self.base + "/subject-requests", key: admin, json: [
                "kind": "deletion", "dataset": "customers", "subject": ["by": "phone", "value": phone],
            ])
            let deleted = try await client.call(.post, Self.base + "/subject-requests/\(try #require(deletion["id"] as? String))/execute", key: admin)
            let disposalID = try #require(deleted["disposal_id"] as? String)
            let gone = try await Self.lookupSubject(client, integration: integration, token: token, phone: phone, case: "CALL-7")
            #expect((gone["records"] as? [Any])?.isEmpty ?? true)
            #expect((gone["withheld"] as? Int ?? 0) == 0)
            let byNumber = try await client.call(.post, Self.lookup, key: integration, json: ["by": "customer_no", "value": customerNo], headers: HardeningTests.agent(token, case: "CALL-8"))
            #expect((byNumber["records"] as? [Any])?.isEmpty ?? true)
            // The record CALL-1 was bound to is gone: reading it releases nothing, and its entry
            // is a denial (not an allowed read of nothing).
            let reread = try await client.call(.get, Self.base + "/datasets/customers/records/\(recordID)", key: integration, headers: HardeningTests.agent(token, case: "CALL-1"))
            #expect(reread.status == .notFound && reread.code == "not_found", "\(reread.text)")
            let rereadID = try #require(reread["access_id"] as? String)
            let rereadEntry = try await client.call(.get, "/v1/access-log?entry=\(rereadID)", key: reviewer)
            let logged = (rereadEntry["entries"] as? [[String: Any]])?.first
            #expect(logged?["decision"] as? String == "deny" && logged?["reason"] as? String == "not_found", "\(rereadEntry.text)")
            let record = try await client.call(.get, Self.base + "/disposals/\(disposalID)", key: admin)
            let signed = try JSONDecoder().decode(SignedDisposal.self, from: Data(record.text.utf8))
            let document = try signed.verify(with: keyring.checkpointSigningKey.publicKey)
            #expect(document.kind == .deletion)
            #expect(document.subject_digests == [digest])
            #expect(try await client.call(.get, Self.base + "/disposals", key: reviewer)["disposals"] as? [Any] != nil)

            // The disclosure package still lists the subject's accesses, by digest, after deletion.
            let afterDeletion = try await client.call(.get, Self.base + "/subject-requests/\(disclosureID)/package", key: admin)
            #expect((afterDeletion["records"] as? [Any])?.isEmpty == true)
            #expect(((afterDeletion["access_history"] as? [Any])?.count ?? 0) >= 3)

            let verified = try await client.call(.post, "/v1/access-log/verify", key: reviewer)
            #expect(verified["clean"] as? Bool == true, "\(verified.text)")
        }
        // Every transition is an entry; none carries the corrected value.
        let owner = database.makeClient(role: .owner)
        let targets = try await owner.query("SELECT target FROM itaku.access_log WHERE operation = 'subject_request' ORDER BY occurred_at")
            .map { try $0.decode(0, as: String.self).split(separator: ":").suffix(2).joined(separator: ":") }
        #expect(targets.filter { $0.hasSuffix(":received") }.count == 6)
        #expect(targets.contains("deletion:rejected"))
        #expect(targets.contains("correction:executed"))
        let correctionFields = try await owner.query("SELECT fields::text FROM itaku.access_log WHERE target LIKE '%:correction:executed'")[0]
            .decode(0, as: String.self)
        #expect(correctionFields.contains("\"name\"") && correctionFields.contains("->") && !correctionFields.contains("訂正"))
        let lookupKeys = try await owner.query(
            "SELECT count(*) FROM itaku.lookup_keys k JOIN itaku.records r USING (tenant_id, dataset_id, record_id) WHERE r.external_id = \(customerNo)"
        )[0].decode(0, as: Int.self)
        #expect(lookupKeys == 0)
        // Stored sealed: the database never holds a field's value in the clear.
        let stored = try await owner.query("SELECT fields::text FROM itaku.records").map { try $0.decode(0, as: String.self) }
        #expect(!stored.isEmpty && stored.allSatisfy(FieldSealer.isSealed))
        await owner.shutdown()
    }

    @Test("a correction decided under a dataset schema that changed since answers 409 dataset_changed and changes nothing; under the stored schema it is executed; a field the schema lacks can only be removed")
    func correctionUnderAChangedSchema() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 5, policyholders: 1)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"]), customerNo = try #require(credentials["ITAKU_DEMO_CUSTOMER_NO"])
        let owner = database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        @Sendable func bumpVersion() async throws {
            // A schema change committed behind this instance's registry (another instance's PUT
            // that this one has not reloaded yet).
            try await owner.query("UPDATE itaku.datasets SET version = version + 1 WHERE name = 'customers'")
        }
        try await app.test(.live) { client in
            let correction = try await client.call(.post, Self.base + "/subject-requests", key: admin, json: [
                "kind": "correction", "dataset": "customers", "subject": ["by": "customer_no", "value": customerNo],
            ])
            let id = try #require(correction["id"] as? String)
            try await bumpVersion()
            let stale = try await client.call(.post, Self.base + "/subject-requests/\(id)/execute", key: admin, json: ["fields": ["name": "訂正 花子"]])
            #expect(stale.status == .conflict && stale.code == "dataset_changed", "\(stale.text)")
            #expect(try await client.call(.get, Self.base + "/subject-requests/\(id)", key: admin)["state"] as? String == "received")
            // Once this instance has read the new schema (a notice, as the other instance's PUT
            // sends one), the same correction is executed.
            try await owner.query("SELECT pg_notify('itaku_registry', '')")
            var executed = try await client.call(.post, Self.base + "/subject-requests/\(id)/execute", key: admin, json: ["fields": ["name": "訂正 花子"]])
            for _ in 0..<50 where executed.code == "dataset_changed" {
                try await Task.sleep(for: .milliseconds(100))
                executed = try await client.call(.post, Self.base + "/subject-requests/\(id)/execute", key: admin, json: ["fields": ["name": "訂正 花子"]])
            }
            #expect(executed["state"] as? String == "executed", "\(executed.text)")

            // The schema drops my_number, which the records still hold: a correction can only
            // remove it (an empty value), and only while a record of the request holds it.
            var shown = try await client.call(.get, Self.base + "/datasets/customers", key: admin).body
            shown["fields"] = (shown["fields"] as? [[String: Any]] ?? []).filter { $0["name"] as? String != "my_number" }
            let dropped = try await client.call(.put, Self.base + "/datasets/customers", key: admin, json: shown)
            #expect(dropped.status == .ok, "\(dropped.text)")
            func newCorrection() async throws -> String {
                let created = try await client.call(.post, Self.base + "/subject-requests", key: admin, json: [
                    "kind": "correction", "dataset": "customers", "subject": ["by": "customer_no", "value": customerNo],
                ])
                return try #require(created["id"] as? String)
            }
            let removal = try await newCorrection()
            let value = try await client.call(.post, Self.base + "/subject-requests/\(removal)/execute", key: admin, json: ["fields": ["my_number": "123456789012"]])
            #expect(value.status == .unprocessableContent && value.code == "unknown_field")
            let misspelt = try await client.call(.post, Self.base + "/subject-requests/\(removal)/execute", key: admin, json: ["fields": ["my_numbr": ""]])
            #expect(misspelt.status == .unprocessableContent && misspelt.code == "unknown_field" && misspelt.pointer == "fields.my_numbr", "\(misspelt.text)")
            let removed = try await client.call(.post, Self.base + "/subject-requests/\(removal)/execute", key: admin, json: ["fields": ["my_number": ""]])
            #expect(removed["state"] as? String == "executed", "\(removed.text)")
            // Gone: no record of the subject holds it now.
            let again = try await newCorrection()
            let none = try await client.call(.post, Self.base + "/subject-requests/\(again)/execute", key: admin, json: ["fields": ["my_number": ""]])
            #expect(none.status == .unprocessableContent && none.code == "unknown_field", "\(none.text)")
        }
        let corrections = try await owner.query(
            "SELECT count(*) FROM itaku.access_log WHERE target LIKE '%:correction:executed'"
        )[0].decode(0, as: Int.self)
        #expect(corrections == 2, "the refused executions wrote no entry")
        let removal = try await owner.query(
            "SELECT fields::text FROM itaku.access_log WHERE target LIKE '%:correction:executed' AND fields ? 'my_number'"
        ).map { try $0.decode(0, as: String.self) }
        #expect(removal.count == 1 && removal[0].contains("->absent") && !removal[0].contains("absent->"), "\(removal)")
    }

    @Test("a request names a real subject of its own tenant, or is refused with a stable code")
    func requestsAreValidated() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 20, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"]), otherAdmin = credentials["ITAKU_OTHER_CLIENT_ADMIN_KEY"]
        let reviewer = credentials["ITAKU_REVIEWER_KEY"]
        try await app.test(.live) { client in
            let path = Self.base + "/subject-requests"
            let cases: [([String: Any], String)] = [
                (["kind": "forget", "dataset": "customers", "subject": ["by": "phone", "value": "090-0000-0000"]], "invalid_kind"),
                (["kind": "deletion", "dataset": "nope", "subject": ["by": "phone", "value": "090-0000-0000"]], "unknown_dataset"),
                (["kind": "deletion", "dataset": "customers"], "invalid_subject"),
                (["kind": "deletion", "dataset": "customers", "subject": ["by": "name", "value": "x"]], "invalid_lookup_key"),
                (["kind": "deletion", "dataset": "customers", "subject": ["by": "phone", "value": "not a phone"]], "invalid_lookup_value"),
                (["kind": "deletion", "dataset": "customers", "subject": ["record_ids": ["nope"]]], "invalid_record_ids"),
                (["kind": "deletion", "dataset": "customers", "subject": ["record_ids": [UUID().uuidString]], "due_date": "2026-02-30"], "invalid_date"),
                (["kind": "deletion", "dataset": "customers", "subject": ["record_ids": [UUID().uuidString]], "reference": "a\u{0}b"], "invalid_reference"),
                (["kind": "deletion", "dataset": "customers", "subject": ["record_ids": [UUID().uuidString]]], "subject_not_found"),
            ]
            for (body, code) in cases {
                let answer = try await client.call(.post, path, key: admin, json: body)
                #expect(answer.status == .unprocessableContent, "\(code): \(answer.text)")
                #expect(answer.code == code, "\(answer.text)")
            }
            #expect(try await client.call(.post, path, key: otherAdmin, json: cases[0].0).status == .notFound)
            #expect(try await client.call(.post, path, key: reviewer, json: cases[0].0).status == .forbidden)
            #expect(try await client.call(.get, path, key: reviewer).status == .ok)
            #expect(try await client.call(.get, path + "/\(UUID())", key: admin).status == .notFound)
            // A disclosure package holds record values: the BPO's operator never takes one.
            #expect(try await client.call(.get, path + "/\(UUID())/package", key: credentials["ITAKU_OPERATOR_KEY"]).status == .forbidden)
            #expect(try await client.call(.post, Self.base + "/contract-end", key: admin, json: ["confirm": "wrong"]).code == "confirmation_required")
        }
        let owner = database.makeClient(role: .owner)
        #expect(try await owner.query("SELECT count(*) FROM itaku.subject_requests")[0].decode(0, as: Int.self) == 0)
        await owner.shutdown()
    }

    @Test("retention disposes of exactly the expired records, on schedule and on instruction; the disposal record verifies and an edited one does not")
    func retention() async throws {
        let (database, state, keyring, credentials) = try await seededDemo(customers: 40, policyholders: 5)
        let owner = database.makeClient(role: .owner)
        let expired = try await owner.query("SELECT external_id FROM itaku.records WHERE dataset_id IN (SELECT dataset_id FROM itaku.datasets WHERE name = 'customers') ORDER BY external_id LIMIT 3")
            .map { try $0.decode(0, as: String.self) }
        try await owner.query("UPDATE itaku.records SET expires_at = now() - interval '1 day' WHERE external_id = ANY (\(expired))")
        // A record stored before sealing existed: plain JSON.
        let legacy = try await owner.query(
            "SELECT record_id FROM itaku.records WHERE NOT (external_id = ANY (\(expired))) ORDER BY external_id LIMIT 1"
        )[0].decode(0, as: UUID.self)
        try await owner.query(#"UPDATE itaku.records SET fields = '{"name": "平文 太郎", "phone": "090-0000-1111"}' WHERE record_id = \#(legacy)"#)
        let before = try await owner.query("SELECT count(*) FROM itaku.records")[0].decode(0, as: Int.self)
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"])
        let app = try await makeApplication(database: database, settings: [
            "state.directory": .init(.string(state), isSecret: false), "retention.intervalSeconds": 1,
        ])
        let tenant = try await tenantID(database, "acme-retail")
        let digester = LookupDigester(key: keyring.digestKey(tenant: tenant.uuidString))
        try await app.test(.live) { client in
            // The service runs every second: the expired records go without being asked.
            var listed: [[String: Any]] = []
            for _ in 0..<50 {
                listed = try await client.call(.get, Self.base + "/disposals", key: admin)["disposals"] as? [[String: Any]] ?? []
                if !listed.isEmpty { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(listed.count == 1)
            #expect(listed.first?["records"] as? Int == 3)
            #expect(listed.first?["kind"] as? String == "retention")
            let id = try #require(listed.first?["id"] as? String)
            let downloaded = try await client.call(.get, Self.base + "/disposals/\(id)", key: admin)
            #expect(downloaded.headers[.contentDisposition]?.contains("attachment") == true)
            let signed = try JSONDecoder().decode(SignedDisposal.self, from: Data(downloaded.text.utf8))
            let document = try signed.verify(with: keyring.checkpointSigningKey.publicKey)
            #expect(Set(document.subject_digests) == Set(expired.map { digester.subjectDigest(externalID: $0) }))
            #expect(document.disposed_by.hasPrefix("retention-service@"))
            // Edited (one record fewer), it no longer verifies.
            var edited = signed
            edited.document = edited.document.replacingOccurrences(of: "\"records\":3", with: "\"records\":2")
            #expect(edited.document != signed.document)
            #expect(throws: SignedDisposal.VerificationError.badSignature) { try edited.verify(with: keyring.checkpointSigningKey.publicKey) }
            // Offline, as the client checks it: `itaku verify-disposal` with the public key.
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("itaku-disposal-\(UUID())").path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try Data(downloaded.text.utf8).write(to: URL(fileURLWithPath: folder + "/disposal.json"))
            try JSONEncoder().encode(edited).write(to: URL(fileURLWithPath: folder + "/edited.json"))
            let publicKey = keyring.checkpointSigningKey.publicKey.rawRepresentation.base64EncodedString()
            let good = try runProgram(itakuExecutable, ["verify-disposal", folder + "/disposal.json", "--public-key", publicKey])
            #expect(good.status == 0, "\(good.output)")
            #expect(good.output.contains("valid: signed by key \(keyring.checkpointKeyID)"))
            #expect(good.output.contains("3 record(s) of acme-retail/customers"))
            let bad = try runProgram(itakuExecutable, ["verify-disposal", folder + "/edited.json", "--public-key", publicKey])
            #expect(bad.status == 1)
            #expect(bad.output.contains("NOT VALID"))
            // A run on instruction finds nothing more to dispose of.
            let run = try await client.call(.post, Self.base + "/retention/run", key: admin)
            #expect((run["disposals"] as? [Any])?.isEmpty == true)
        }
        #expect(try await owner.query("SELECT count(*) FROM itaku.records")[0].decode(0, as: Int.self) == before - 3)
        #expect(try await owner.query("SELECT count(*) FROM itaku.records WHERE external_id = ANY (\(expired))")[0].decode(0, as: Int.self) == 0)
        #expect(try await owner.query("SELECT count(*) FROM itaku.disposal_records")[0].decode(0, as: Int.self) == 1)
        // The service's pass sealed the plain record, its values as they were.
        #expect(try await owner.query("SELECT count(*) FROM itaku.records WHERE NOT fields ? '$sealed'")[0].decode(0, as: Int.self) == 0)
        let resealed = try await owner.query("SELECT fields::text FROM itaku.records WHERE record_id = \(legacy)")[0].decode(0, as: String.self)
        #expect(try DataKeys(directory: state + "/data-keys", keyring: keyring).open(resealed, tenant: tenant, record: legacy.uuidString)
            == ["name": "平文 太郎", "phone": "090-0000-1111"])
        await owner.shutdown()
    }

    @Test("the contract's end disposes of every record of the tenant, a disposal record per 5,000, and destroys its data key: a backup of its records no longer opens; other tenants keep theirs")
    func contractEnd() async throws {
        let (database, state, keyring, credentials) = try await seededDemo(customers: 20, policyholders: 5_003)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let kobeAdmin = try #require(credentials["ITAKU_OTHER_CLIENT_ADMIN_KEY"]), reviewer = credentials["ITAKU_REVIEWER_KEY"]
        let kobe = try await tenantID(database, "kobe-insurance"), acme = try await tenantID(database, "acme-retail")
        let keys = DataKeys(directory: state + "/data-keys", keyring: keyring)
        // A "backup": the stored rows as the database holds them, sealed.
        let owner = database.makeClient(role: .owner)
        let backup = try await owner.query("SELECT tenant_id, record_id, fields::text FROM itaku.records ORDER BY tenant_id, external_id")
            .map { (try $0.decode(0, as: UUID.self), try $0.decode(1, as: UUID.self), try $0.decode(2, as: String.self)) }
        let holders = DemoCustomers(count: 20, seed: 7).map { $0["name"] ?? "" }
        #expect(backup.count == 5_023)
        #expect(backup.allSatisfy { FieldSealer.isSealed($0.2) })
        #expect(!backup.contains { row in holders.contains { row.2.contains($0) } })
        let kobeRow = try #require(backup.first { $0.0 == kobe })
        #expect(holders.contains(try keys.open(kobeRow.2, tenant: kobe, record: kobeRow.1.uuidString)["name"] ?? ""))
        // Sealed to its record: moved to another record, it does not open.
        let otherKobe = try #require(backup.last { $0.0 == kobe })
        #expect(throws: FieldSealer.SealError.self) { try keys.open(kobeRow.2, tenant: kobe, record: otherKobe.1.uuidString) }
        // A dataset this instance's registry does not know of (made elsewhere a moment ago):
        // the contract's end disposes of what the database holds.
        try await owner.withConnection { connection in
            try await connection.query("SELECT set_config('itaku.tenant_id', \(kobe.uuidString), false)")
            try await connection.query(
                """
                INSERT INTO itaku.datasets (tenant_id, name, schema, retention_days)
                SELECT tenant_id, 'archive', schema, retention_days FROM itaku.datasets WHERE tenant_id = \(kobe) AND name = 'policyholders'
                """
            )
            try await connection.query(
                """
                INSERT INTO itaku.records (tenant_id, dataset_id, record_id, external_id, fields)
                SELECT r.tenant_id, d.dataset_id, gen_random_uuid(), 'A1', r.fields FROM itaku.records r, itaku.datasets d
                WHERE r.tenant_id = \(kobe) AND r.record_id = \(kobeRow.1) AND d.tenant_id = \(kobe) AND d.name = 'archive'
                """
            )
            try await connection.query("SELECT set_config('itaku.tenant_id', '', false)")
        }
        try await app.test(.live) { client in
            let ended = try await client.call(.post, "/v1/tenants/kobe-insurance/contract-end", key: kobeAdmin, json: ["confirm": "kobe-insurance"])
            #expect(ended.status == .ok, "\(ended.text)")
            let disposals = try #require(ended["disposals"] as? [[String: Any]])
            #expect(disposals.map { $0["dataset"] as? String } == ["archive", "policyholders", "policyholders"])
            #expect(disposals.map { $0["records"] as? Int } == [1, 5_000, 3])
            let id = try #require(disposals.dropFirst().first?["id"] as? String)
            let signed = try JSONDecoder().decode(SignedDisposal.self, from: Data(try await client.call(.get, "/v1/tenants/kobe-insurance/disposals/\(id)", key: kobeAdmin).text.utf8))
            let document = try signed.verify(with: keyring.checkpointSigningKey.publicKey)
            #expect(document.kind == .contractEnd)
            #expect(document.data_key_destroyed == true)
            // The tenant is ended: nothing more comes in, its agents are refused.
            #expect(try await client.call(.get, "/v1/tenants/kobe-insurance", key: kobeAdmin)["status"] as? String == "ended")
            let late = try await client.call(
                .post, "/v1/tenants/kobe-insurance/datasets/policyholders/imports", key: kobeAdmin, text: "policy_no,name\nP9,Late\n"
            )
            #expect(late.status == .conflict)
            #expect(late.code == "tenant_ended")
            // A contract ends once: asked again, nothing is disposed of or signed anew.
            let again = try await client.call(.post, "/v1/tenants/kobe-insurance/contract-end", key: kobeAdmin, json: ["confirm": "kobe-insurance"])
            #expect(again.status == .conflict && again.code == "tenant_ended", "\(again.text)")
            let listed = try await client.call(.get, "/v1/tenants/kobe-insurance/disposals", key: kobeAdmin)
            #expect((listed["disposals"] as? [Any])?.count == 3, "\(listed.text)")
            #expect(try await client.call(.post, "/v1/access-log/verify", key: reviewer)["clean"] as? Bool == true)
        }
        // The backup of kobe's records no longer opens; acme's still does.
        #expect(!FileManager.default.fileExists(atPath: state + "/data-keys/\(kobe.uuidString.lowercased()).key"))
        let afterwards = DataKeys(directory: state + "/data-keys", keyring: keyring)
        #expect(throws: DataKeys.KeyError.self) { try afterwards.open(kobeRow.2, tenant: kobe, record: kobeRow.1.uuidString) }
        // No instance makes the ended tenant a new key, whatever its registry still says.
        #expect(throws: DataKeys.KeyError.self) { try afterwards.sealer(for: kobe) }
        #expect(!FileManager.default.fileExists(atPath: state + "/data-keys/\(kobe.uuidString.lowercased()).key"))
        let acmeRow = try #require(backup.first { $0.0 == acme })
        #expect(try afterwards.open(acmeRow.2, tenant: acme, record: acmeRow.1.uuidString)["name"] != nil)
        // The end itself is an entry, once.
        let ends = try await owner.query(
            "SELECT count(*) FROM itaku.access_log WHERE tenant_id = \(kobe) AND operation = 'configure' AND target = 'tenant:kobe-insurance:ended'"
        )
        #expect(try ends[0].decode(0, as: Int.self) == 1)
        let counts = try await owner.query("SELECT t.code, count(r.record_id) FROM itaku.tenants t LEFT JOIN itaku.records r USING (tenant_id) GROUP BY t.code ORDER BY t.code")
            .map { (try $0.decode(0, as: String.self), try $0.decode(1, as: Int.self)) }
        #expect(counts.map(\.0) == ["acme-retail", "kobe-insurance"])
        #expect(counts.map(\.1) == [20, 0])
        await owner.shutdown()
    }

    @Test("a subject named by a value that several records share is refused as ambiguous; a disclosure's history holds its own dataset's accesses only")
    func subjectsAreOnePerson() async throws {
        let (database, state, keyring, credentials) = try await seededDemo(customers: 20, policyholders: 2)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"])
        let tenant = try await tenantID(database, "acme-retail")
        let owner = database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        try await app.test(.live) { client in
            let path = Self.base + "/subject-requests"
            let csv = "customer_no,name,phone\nC-HOME-1,Home One,03-5555-0177\nC-HOME-2,Home Two,03-5555-0177\n"
            #expect(try await client.call(.post, Self.base + "/datasets/customers/imports", key: admin, text: csv).status == .created)
            for kind in ["disclosure", "correction", "deletion"] {
                let shared = try await client.call(
                    .post, path, key: admin, json: ["kind": kind, "dataset": "customers", "subject": ["by": "phone", "value": "03-5555-0177"]]
                )
                #expect(shared.status == .unprocessableContent && shared.code == "subject_ambiguous", "\(shared.text)")
                #expect(shared.pointer == "subject")
            }
            // By the dataset's key: one person.
            let one = try await client.call(
                .post, path, key: admin, json: ["kind": "disclosure", "dataset": "customers", "subject": ["by": "customer_no", "value": "C-HOME-1"]]
            )
            #expect(one.status == .created, "\(one.text)")
            #expect((one["record_ids"] as? [String])?.count == 1)
            let id = try #require(one["id"] as? String)

            // Another dataset's access to the same key (ticket C-HOME-1 is somebody else's).
            let digest = LookupDigester(key: keyring.digestKey(tenant: tenant.uuidString)).subjectDigest(externalID: "C-HOME-1")
            try await owner.query(
                """
                INSERT INTO itaku.access_log (entry_id, occurred_at, tenant_id, actor_role, operation, dataset, subject_digests,
                                              decision, reason, agent, stream, seq, prev_hash, hash)
                VALUES (gen_random_uuid(), now(), \(tenant), 'integration', 'read', 'tickets', ARRAY[\(digest)]::text[],
                        'allow', 'allowed', 'A0001', 'test/another-dataset', 1, '\\x00', '\\x00')
                """
            )
            #expect(try await client.call(.post, path + "/\(id)/execute", key: admin)["state"] as? String == "executed")
            let package = try await client.call(.get, path + "/\(id)/package", key: admin)
            #expect(package.status == .ok, "\(package.text)")
            #expect((package["access_history"] as? [Any])?.isEmpty == true, "\(package.text)")
        }
        #expect(try await owner.query("SELECT count(*) FROM itaku.subject_requests")[0].decode(0, as: Int.self) == 1)
    }
}

/// A tenant's id, read as the owner.
func tenantID(_ database: TestDatabase, _ code: String) async throws -> UUID {
    let owner = database.makeClient(role: .owner)
    defer { Task { await owner.shutdown() } }
    return try await owner.query("SELECT tenant_id FROM itaku.tenants WHERE code = \(code)")[0].decode(0)
}
