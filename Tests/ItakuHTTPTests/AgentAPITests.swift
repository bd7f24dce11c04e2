import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuCore
import ItakuData
import ItakuDemo
import ItakuPostgres
import ItakuRegistry
import ItakuTestSupport
import Logging
import Testing

@Suite("Agent data API")
struct AgentAPITests {
    @Test("an agent looks a caller up by phone in any form, reads the case-bound record, and sees only the purpose's fields through their transforms")
    func lookupAndRead() async throws {
        let (database, state, keyring, credentials) = try await seededDemo(customers: 300, policyholders: 20)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let integration = try #require(credentials["ITAKU_INTEGRATION_KEY"]), asserted = try #require(credentials["ITAKU_ASSERTED_INTEGRATION_KEY"])
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"]), phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        let agent: HTTPFields = [.init("Itaku-Agent")!: token, .init("Itaku-Purpose")!: "order-support", .init("Itaku-Case")!: "CALL-1001"]
        let lookup = "/v1/tenants/acme-retail/datasets/customers/lookup"
        // Every request reaches a decision and has one entry; 33's value is invalid, which is
        // decided (and logged) after the enforcer's own checks.
        let requestIDs = [0, 1, 2, 10, 11, 12, 20, 21, 22, 23, 24, 25, 30, 31, 32, 33, 34].map { "agent-test-\($0)" }
        @Sendable func headers(_ base: HTTPFields, _ n: Int) -> HTTPFields {
            var headers = base
            headers[.itakuRequestIDForTests] = "agent-test-\(n)"
            return headers
        }

        try await app.test(.live) { client in
            // The same caller in three spellings.
            let digits = phone.filter(\.isNumber)
            var recordID: String?
            for (n, spelling) in [phone, "+81 " + digits.dropFirst(), String(digits)].enumerated() {
                let found = try await client.call(.post, lookup, key: integration, json: ["by": "phone", "value": spelling], headers: headers(agent, n))
                #expect(found.status == .ok, "\(found.text)")
                let records = try #require(found["records"] as? [[String: Any]])
                #expect(records.count >= 1)
                let fields = try #require(records.first?["fields"] as? [String: String])
                #expect(Set(fields.keys).isSubset(of: ["name", "name_kana", "phone", "address", "postal_code", "email", "birth_date"]))
                #expect(fields["email"]?.contains("***@") == true)
                #expect(fields["birth_date"]?.count == 4)
                #expect(found["access_id"] as? String != nil)
                recordID = recordID ?? records.first?["record_id"] as? String
            }
            let id = try #require(recordID)

            // Reading needs the case that found the record.
            let read = try await client.call(.get, "/v1/tenants/acme-retail/datasets/customers/records/\(id)", key: integration, headers: headers(agent, 10))
            #expect(read.status == .ok)
            var otherCase = agent
            otherCase[.init("Itaku-Case")!] = "CALL-2002"
            let unbound = try await client.call(.get, "/v1/tenants/acme-retail/datasets/customers/records/\(id)", key: integration, headers: headers(otherCase, 11))
            #expect(unbound.status == .forbidden && unbound.code == "not_case_bound")
            let probe = try await client.call(.get, "/v1/tenants/acme-retail/datasets/customers/records/\(UUID())", key: integration, headers: headers(agent, 12))
            #expect(probe.code == "not_case_bound")

            // Denials carry their code and the access id to quote.
            let card = try await client.call(.post, lookup, key: integration, json: ["by": "phone", "value": phone, "fields": ["name", "card_last4"]], headers: headers(agent, 20))
            #expect(card.status == .forbidden && card.code == "field_not_allowed" && card.body["access_id"] != nil)
            var noToken = agent
            noToken[.init("Itaku-Agent")!] = nil
            noToken[.init("Itaku-Agent-Id")!] = "A0001"
            let unverified = try await client.call(.post, lookup, key: integration, json: ["by": "phone", "value": phone], headers: headers(noToken, 21))
            #expect(unverified.status == .unauthorized && unverified.code == "agent_unverified")
            let viaCTI = try await client.call(.post, lookup, key: asserted, json: ["by": "phone", "value": phone], headers: headers(noToken, 22))
            #expect(viaCTI.status == .ok)
            let foreign = try await client.call(.post, "/v1/tenants/kobe-insurance/datasets/policyholders/lookup", key: asserted, json: ["by": "phone", "value": phone], headers: headers(noToken, 23))
            #expect(foreign.status == .notFound && foreign.code == "not_found")
            var noCase = agent
            noCase[.init("Itaku-Case")!] = nil
            #expect(try await client.call(.post, lookup, key: integration, json: ["by": "phone", "value": phone], headers: headers(noCase, 24)).code == "case_required")
            var survey = agent
            survey[.init("Itaku-Purpose")!] = "survey-outreach"
            #expect(try await client.call(.post, lookup, key: integration, json: ["by": "phone", "value": phone], headers: headers(survey, 25)).code == "lookup_key_not_allowed")

            // Updates: allowed fields of the case-bound record; the change and its entry commit together.
            let record = "/v1/tenants/acme-retail/datasets/customers/records/\(id)"
            // A key the record's values no longer give (say, from an older normalisation) must go too.
            let keys = database.makeClient(role: .owner)
            try await keys.query(
                """
                INSERT INTO itaku.lookup_keys (tenant_id, dataset_id, kind, digest, record_id)
                SELECT tenant_id, dataset_id, 'email', '\\x00', record_id FROM itaku.records WHERE record_id = \(try #require(UUID(uuidString: id)))
                """
            )
            let updated = try await client.call(.patch, record, key: integration, json: ["fields": ["address": "大阪府大阪市北区梅田3-1-1", "email": "new.address@example.jp"]], headers: headers(agent, 30))
            #expect(updated.status == .ok, "\(updated.text)")
            #expect(updated["updated"] as? [String] == ["address", "email"])
            let after = try await client.call(.get, record, key: integration, headers: headers(agent, 31))
            let fields = try #require((after["records"] as? [[String: Any]])?.first?["fields"] as? [String: String])
            #expect(fields["address"] == "大阪府大阪市北区梅田3-1-1")
            #expect(fields["email"] == "n***@example.jp")
            // The lookup index follows the change: the new email's key replaced the old one's (and the stale one).
            let emailKeys = try await keys.query(
                "SELECT tenant_id::text, encode(digest, 'hex') FROM itaku.lookup_keys WHERE record_id = \(try #require(UUID(uuidString: id))) AND kind = 'email'"
            ).map { (try $0.decode(0, as: String.self), try $0.decode(1, as: String.self)) }
            await keys.shutdown()
            let newEmail = try #require(LookupDigester.normalize("new.address@example.jp", as: .email))
            #expect(emailKeys.count == 1)
            #expect(emailKeys.first.map { LookupDigester.hex(LookupDigester(key: keyring.digestKey(tenant: $0.0.uppercased())).digest(normalized: newEmail, kind: .email)) } == emailKeys.first?.1)
            #expect(try await client.call(.patch, record, key: integration, json: ["fields": ["name": "別人"]], headers: headers(agent, 32)).code == "field_not_allowed")
            let badEmail = try await client.call(.patch, record, key: integration, json: ["fields": ["email": "not-an-email"]], headers: headers(agent, 33))
            #expect(badEmail.status == .unprocessableContent && badEmail.code == "invalid_value" && badEmail.pointer == "fields.email")
            #expect(!badEmail.text.contains("not-an-email"))
            var billing = agent
            billing[.init("Itaku-Purpose")!] = "billing-inquiry"
            #expect(try await client.call(.patch, record, key: integration, json: ["fields": ["address": "x"]], headers: headers(billing, 34)).code != nil)
        }

        // Exactly one entry per request, with the right decision, code and verification flag.
        let owner = database.makeClient(role: .owner)
        let rows = try await owner.query(
            "SELECT request_id, decision, reason, agent_verified, purpose_version FROM itaku.access_log WHERE request_id LIKE 'agent-test-%'"
        )
        await owner.shutdown()
        let entries = try rows.map { (try $0.decode(0, as: String.self), try $0.decode(1, as: String.self), try $0.decode(2, as: String.self), try $0.decode(3, as: Bool?.self), try $0.decode(4, as: Int32?.self)) }
        #expect(entries.map(\.0).sorted() == requestIDs.sorted())
        let byID = Dictionary(uniqueKeysWithValues: entries.map { ($0.0, $0) })
        #expect(byID["agent-test-0"]?.1 == "allow" && byID["agent-test-0"]?.3 == true && byID["agent-test-0"]?.4 == 1)
        #expect(byID["agent-test-20"]?.2 == "field_not_allowed")
        #expect(byID["agent-test-33"]?.1 == "deny" && byID["agent-test-33"]?.2 == "invalid_value")
        #expect(byID["agent-test-22"]?.1 == "allow" && byID["agent-test-22"]?.3 == false)
        #expect(byID["agent-test-21"]?.2 == "agent_unverified")
        #expect(byID["agent-test-30"]?.1 == "allow")
        #expect(byID["agent-test-32"]?.2 == "field_not_allowed")
        #expect(["operation_not_allowed", "outside_hours"].contains(byID["agent-test-34"]?.2 ?? ""))
    }

    @Test("a record deleted by the owner (e.g. a retention purge) takes its lookup keys with it; other records keep theirs")
    func deletionRemovesLookupKeys() async throws {
        let (database, _, _, credentials) = try await seededDemo(customers: 20, policyholders: 5)
        let customerNo = try #require(credentials["ITAKU_DEMO_CUSTOMER_NO"])
        let owner = database.makeClient(role: .owner)
        let others = try await owner.query("SELECT count(*) FROM itaku.lookup_keys")[0].decode(0, as: Int.self)
        let mine = try await owner.query(
            "SELECT count(*) FROM itaku.lookup_keys k JOIN itaku.records r USING (tenant_id, dataset_id, record_id) WHERE r.external_id = \(customerNo)"
        )[0].decode(0, as: Int.self)
        #expect(mine == 3)
        try await owner.query("DELETE FROM itaku.records WHERE external_id = \(customerNo)")
        let after = try await owner.query("SELECT count(*) FROM itaku.lookup_keys")[0].decode(0, as: Int.self)
        await owner.shutdown()
        #expect(after == others - mine)
    }
}
