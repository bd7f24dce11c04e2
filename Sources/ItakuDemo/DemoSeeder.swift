import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuPostgres
import ItakuRegistry
import Logging

/// Seeds the demo: tenants `acme-retail` (5,000 customers, three purposes) and
/// `kobe-insurance`, agents A0001–A0003 with their assignments, a verified and an asserted
/// integration. Data is created once; every run issues fresh demo keys (revoking the last
/// run's) and a fresh agent token, and returns them for `.itaku/demo.env`.
public struct DemoSeeder: Sendable {
    public struct Credentials: Sendable {
        public var values: [(String, String)]

        public init(values: [(String, String)]) { self.values = values }

        /// Shell `KEY='value'` lines.
        public var envFile: String {
            values.map { "\($0.0)='\($0.1.replacingOccurrences(of: "'", with: "'\\''"))'" }.joined(separator: "\n") + "\n"
        }
    }

    let database: PostgresClient
    let keyring: Keyring
    let dataKeys: DataKeys
    let logger: Logger
    public var customers = 5_000
    public var policyholders = 500

    public init(database: PostgresClient, keyring: Keyring, dataKeys: DataKeys, logger: Logger) {
        self.database = database
        self.keyring = keyring
        self.dataKeys = dataKeys
        self.logger = logger
    }

    public func seed(url: String, now: Date = Date()) async throws -> Credentials {
        var snapshot = try await database.withTransaction { try await RegistryStore.loadSnapshot(on: $0, tenantByTenant: true) }
        if snapshot.tenant(code: "acme-retail") == nil {
            try await createData(now: now)
            snapshot = try await database.withTransaction { try await RegistryStore.loadSnapshot(on: $0, tenantByTenant: true) }
        }
        let credentials = try await issueKeys(snapshot: snapshot, url: url)
        return credentials
    }

    // MARK: Data

    private func createData(now: Date) async throws {
        let year = Calendar(identifier: .gregorian).component(.year, from: now)
        let (start, end) = ("\(year)-01-01", "\(year)-12-31")
        let accessLog = AccessLogWriter(database: database, keyring: keyring, instanceID: "itaku-demo", logger: logger)
        _ = try await accessLog.transaction(on: database) { connection in
            let acme = try await RegistryStore.createTenant(
                code: "acme-retail", name: "Acme Retail 株式会社", timeZone: "Asia/Tokyo", contractStart: start, contractEnd: end, on: connection
            )
            let kobe = try await RegistryStore.createTenant(
                code: "kobe-insurance", name: "神戸保険株式会社", timeZone: "Asia/Tokyo", contractStart: start, contractEnd: end, on: connection
            )
            _ = try await RegistryStore.putDataset(tenantID: acme, name: "customers", schema: Self.customersSchema, on: connection)
            _ = try await RegistryStore.putDataset(tenantID: kobe, name: "policyholders", schema: Self.policyholdersSchema, on: connection)
            for (key, definition) in Self.acmePurposes(start: start, end: end) {
                _ = try await RegistryStore.putPurpose(tenantID: acme, key: key, definition: definition, expectedVersion: nil, on: connection)
            }
            _ = try await RegistryStore.putPurpose(
                tenantID: kobe, key: "claims-support", definition: Self.claimsPurpose(start: start, end: end), expectedVersion: nil, on: connection
            )
            let a1 = try await RegistryStore.createAgent(employeeID: "A0001", name: "田中 一郎", site: "Osaka", on: connection)
            let a2 = try await RegistryStore.createAgent(employeeID: "A0002", name: "山本 美穂", site: "Osaka", on: connection)
            _ = try await RegistryStore.createAgent(employeeID: "A0003", name: "佐藤 健太", site: "Sapporo", on: connection)
            let from = ISO8601DateFormatter().date(from: "\(start)T00:00:00+09:00")!
            let until = ISO8601DateFormatter().date(from: "\(year + 1)-01-01T00:00:00+09:00")!
            for assignment in [
                Assignment(tenantID: acme, agentID: a1, purposes: ["order-support", "billing-inquiry", "survey-outreach"], validFrom: from, validUntil: until),
                Assignment(tenantID: kobe, agentID: a1, purposes: ["claims-support"], validFrom: from, validUntil: until),
                Assignment(tenantID: acme, agentID: a2, purposes: ["order-support"], validFrom: from, validUntil: until),
            ] {
                _ = try await RegistryStore.putAssignment(assignment, on: connection)
            }
            _ = try await RegistryStore.createIntegration(name: "demo-desktop", trustMode: .verified, tenantIDs: [acme, kobe], on: connection)
            _ = try await RegistryStore.createIntegration(name: "demo-cti", trustMode: .asserted, tenantIDs: [acme], on: connection)
            try await RegistryStore.announceChange("demo:seed", on: connection)
            // The records go in with the rest: the demo exists whole or not at all.
            let snapshot = try await RegistryStore.loadSnapshot(on: connection, tenantByTenant: true)
            try await importRecords(snapshot: snapshot, tenant: "acme-retail", dataset: "customers", rows: DemoCustomers(count: customers), on: connection)
            let holders = DemoCustomers(count: policyholders, seed: 7).lazy.map { customer -> [String: String] in
                [
                    "policy_no": "P" + (customer["customer_no"] ?? "").dropFirst(), "name": customer["name"] ?? "",
                    "name_kana": customer["name_kana"] ?? "", "phone": customer["phone"] ?? "",
                    "address": customer["address"] ?? "", "birth_date": customer["birth_date"] ?? "",
                ]
            }
            try await importRecords(snapshot: snapshot, tenant: "kobe-insurance", dataset: "policyholders", rows: holders, on: connection)
            let entries = [acme, kobe].map { tenant -> AccessEntry in
                var entry = AccessEntry(tenantID: tenant, actorRole: "operator", actorKeyID: nil, operation: .configure, decision: .allow, reason: "allowed")
                entry.target = "demo:seed"
                return entry
            }
            // Commits the whole demo together with its access entries.
            return ((), entries)
        }
        await accessLog.checkpoint()
        logger.info("demo data created", metadata: ["itaku.demo.customers": "\(customers)", "itaku.demo.policyholders": "\(policyholders)"])
    }

    private func importRecords(
        snapshot: RegistrySnapshot, tenant code: String, dataset name: String, rows: some Sequence<[String: String]>,
        on connection: PostgresConnection
    ) async throws {
        guard let tenant = snapshot.tenant(code: code), let dataset = snapshot.datasets[tenant.id]?[name] else { return }
        let importer = RecordImporter(
            tenantID: tenant.id, dataset: dataset, digester: LookupDigester(key: keyring.digestKey(tenant: tenant.id.uuidString)),
            sealer: try dataKeys.sealer(for: tenant.id)
        )
        let outcome = try await importer.run(on: connection) { sink in
            for (index, row) in rows.enumerated() { try await sink.add(line: index + 2, values: row) }
        }
        guard case .imported = outcome else { throw DemoError.rejected("\(outcome)") }
    }

    enum DemoError: Error { case rejected(String) }

    // MARK: Keys

    private func issueKeys(snapshot: RegistrySnapshot, url: String) async throws -> Credentials {
        guard let acme = snapshot.tenant(code: "acme-retail"), let kobe = snapshot.tenant(code: "kobe-insurance"),
            let verified = snapshot.integrations.values.first(where: { $0.name == "demo-desktop" }),
            let asserted = snapshot.integrations.values.first(where: { $0.name == "demo-cti" })
        else { throw DemoError.rejected("demo registry incomplete") }
        let wanted: [(String, Role, UUID?, UUID?)] = [
            ("ITAKU_OPERATOR_KEY", .operator_, nil, nil),
            ("ITAKU_CLIENT_ADMIN_KEY", .clientAdmin, acme.id, nil),
            ("ITAKU_OTHER_CLIENT_ADMIN_KEY", .clientAdmin, kobe.id, nil),
            ("ITAKU_REVIEWER_KEY", .reviewer, nil, nil),
            ("ITAKU_INTEGRATION_KEY", .integration, nil, verified.id),
            ("ITAKU_ASSERTED_INTEGRATION_KEY", .integration, nil, asserted.id),
        ]
        var values: [(String, String)] = [("ITAKU_URL", url)]
        // Like every change of keys, a configure entry in the same transaction: the demo's keys
        // replaced (only those it issued itself, by their labels).
        let accessLog = AccessLogWriter(database: database, keyring: keyring, instanceID: "itaku-demo", logger: logger)
        var entry = AccessEntry(tenantID: nil, actorRole: "cli", actorKeyID: nil, operation: .configure, decision: .allow, reason: "allowed")
        entry.target = "demo:keys"
        let replaced = entry
        _ = try await accessLog.transaction(on: database) { connection in
            try await connection.query(
                "UPDATE itaku.api_keys SET revoked_at = now() WHERE label = ANY (\(wanted.map { "demo:" + $0.0 })::text[]) AND revoked_at IS NULL"
            )
            for (name, role, tenant, integration) in wanted {
                let key = APIKeys.generate()
                _ = try await RegistryStore.createKey(
                    hash: APIKeys.hash(key), displayPrefix: APIKeys.displayPrefix(key), role: role, tenantID: tenant,
                    integrationID: integration, label: "demo:\(name)", on: connection
                )
                values.append((name, key))
            }
            try await RegistryStore.announceChange("demo:keys", on: connection)
            return ((), [replaced])
        }
        await accessLog.checkpoint()
        values.append(("ITAKU_AGENT_TOKEN", try AgentToken.mint(employeeID: "A0001", keyring: keyring, lifetime: 12 * 3600)))
        var first = DemoCustomers(count: 1)
        let customer = first.next() ?? [:]
        values.append(("ITAKU_DEMO_PHONE", customer["phone"] ?? ""))
        values.append(("ITAKU_DEMO_CUSTOMER_NO", customer["customer_no"] ?? ""))
        return Credentials(values: values)
    }

    // MARK: Definitions

    public static let customersSchema = DatasetSchema(
        fields: [
            .init(name: "customer_no", type: .string, category: .basic, lookup: .exact),
            .init(name: "name", type: .string, category: .basic),
            .init(name: "name_kana", type: .string, category: .basic),
            .init(name: "phone", type: .phone, category: .contact, lookup: .phone),
            .init(name: "email", type: .email, category: .contact, lookup: .email),
            .init(name: "postal_code", type: .string, category: .contact),
            .init(name: "address", type: .address, category: .contact),
            .init(name: "birth_date", type: .date, category: .basic),
            .init(name: "card_last4", type: .string, category: .financial),
            .init(name: "my_number", type: .string, category: .individualNumber),
            .init(name: "health_note", type: .string, category: .sensitive),
        ],
        keyField: "customer_no", retentionDays: 3650
    )

    static let policyholdersSchema = DatasetSchema(
        fields: [
            .init(name: "policy_no", type: .string, category: .basic, lookup: .exact),
            .init(name: "name", type: .string, category: .basic),
            .init(name: "name_kana", type: .string, category: .basic),
            .init(name: "phone", type: .phone, category: .contact, lookup: .phone),
            .init(name: "address", type: .address, category: .contact),
            .init(name: "birth_date", type: .date, category: .basic),
        ],
        keyField: "policy_no", retentionDays: 3650
    )

    public static func acmePurposes(start: String, end: String) -> [(String, PurposeDefinition)] {
        let orderFields: [String: PurposeDefinition.Transform] = [
            "name": .plain, "name_kana": .plain, "phone": .plain, "address": .plain, "postal_code": .plain,
            "email": .mask, "birth_date": .yearOnly,
        ]
        var billingFields = orderFields
        billingFields["card_last4"] = .last4
        return [
            ("order-support", PurposeDefinition(
                name: "注文サポート (order support)", legalBasis: .contract,
                datasets: ["customers": .init(
                    operations: [.lookup, .read, .update], lookupKeys: ["phone", "customer_no"], fields: orderFields,
                    updatable: ["address", "postal_code", "email"], maxResults: 5)],
                validFrom: start, validUntil: end, businessHours: nil, caseRequired: true,
                limits: .init(recordsPerHour: 600, lookupsPerMinute: 60))),
            ("billing-inquiry", PurposeDefinition(
                name: "請求に関する問い合わせ (billing inquiry)", legalBasis: .contract,
                datasets: ["customers": .init(operations: [.lookup, .read], lookupKeys: ["phone", "customer_no"], fields: billingFields, maxResults: 5)],
                validFrom: start, validUntil: end,
                businessHours: .init(days: ["mon", "tue", "wed", "thu", "fri"], start: "09:00", end: "18:00"), caseRequired: true,
                limits: .init(recordsPerHour: 300, lookupsPerMinute: 30))),
            ("survey-outreach", PurposeDefinition(
                name: "アンケート (survey outreach)", legalBasis: .consent,
                datasets: ["customers": .init(operations: [.lookup], lookupKeys: ["customer_no"], fields: ["name": .plain, "phone": .plain], maxResults: 1)],
                validFrom: start, validUntil: end, caseRequired: true, limits: .init(recordsPerHour: 100, lookupsPerMinute: 10))),
        ]
    }

    static func claimsPurpose(start: String, end: String) -> PurposeDefinition {
        PurposeDefinition(
            name: "保険金請求サポート (claims support)", legalBasis: .contract,
            datasets: ["policyholders": .init(
                operations: [.lookup, .read], lookupKeys: ["phone", "policy_no"],
                fields: ["name": .plain, "phone": .last4, "address": .prefectureOnly, "birth_date": .yearOnly], maxResults: 3)],
            validFrom: start, validUntil: end, caseRequired: true
        )
    }
}
