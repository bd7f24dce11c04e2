import ArgumentParser
import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuDemo
import ItakuPostgres
import ItakuRegistry

/// Prepares the benchmark (`Deploy/bench/run`) on a migrated database: the demo, plus in
/// `acme-retail` a dataset `callers` (the customers' schema) and a purpose `bench-support`
/// without volume limits or hours, assigned to agent A0001. Writes the CSV of synthetic callers
/// the benchmark imports, the phone numbers its lookups draw from (as written in the CSV, in
/// their mixed formats), and the credentials.
struct BenchSetup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-setup", abstract: "Prepare the benchmark's tenant, purpose and data files.", shouldDisplay: false
    )

    @OptionGroup var options: SettingsOptions
    @Option(help: "Records in the CSV to import.") var records = 1_000_000
    @Option(help: "Phone numbers to write for the lookups (the first of the CSV).") var phones = 100_000
    @Option(help: "Where to write callers.csv, phones.txt and bench.env.") var output: String

    static let dataset = "callers"
    static let purpose = "bench-support"

    func run() async throws {
        try await options.withRuntimeDatabase { configuration, logger, database, keyring in
            let url = "http://\(configuration.httpHost):\(configuration.httpPort)"
            let credentials = try await DemoSeeder(
                database: database, keyring: keyring, dataKeys: DataKeys(configuration: configuration, keyring: keyring), logger: logger
            ).seed(url: url)
            let accessLog = try options.accessLog(configuration, database: database, logger: logger)
            _ = try await accessLog.transaction(on: database) { connection in
                let snapshot = try await RegistryStore.loadSnapshot(on: connection, tenantByTenant: true)
                guard let acme = snapshot.tenant(code: "acme-retail"), let agent = snapshot.agentIDsByEmployeeID["A0001"],
                    let assignment = snapshot.assignments[acme.id]?[agent]
                else { throw ValidationError("the demo registry is incomplete") }
                _ = try await RegistryStore.putDataset(tenantID: acme.id, name: Self.dataset, schema: DemoSeeder.customersSchema, on: connection)
                let fields: [String: PurposeDefinition.Transform] = [
                    "name": .plain, "name_kana": .plain, "phone": .plain, "address": .plain, "postal_code": .plain,
                    "email": .mask, "birth_date": .yearOnly,
                ]
                let definition = PurposeDefinition(
                    name: "ベンチマーク (benchmark support)", legalBasis: .contract,
                    datasets: [Self.dataset: .init(
                        operations: [.lookup, .read, .update], lookupKeys: ["phone", "customer_no"], fields: fields,
                        updatable: ["address", "postal_code", "email"], maxResults: 5)],
                    caseRequired: true
                )
                let current = snapshot.purposes[acme.id]?[Self.purpose]?.version
                _ = try await RegistryStore.putPurpose(tenantID: acme.id, key: Self.purpose, definition: definition, expectedVersion: current, on: connection)
                var updated = assignment
                if !updated.purposes.contains(Self.purpose) { updated.purposes.append(Self.purpose) }
                _ = try await RegistryStore.putAssignment(updated, on: connection)
                try await RegistryStore.announceChange("bench:setup", on: connection)
                return ((), [AccessEntry.cli(target: "bench:setup", tenantID: acme.id)])
            }
            await accessLog.checkpoint()
            try writeFiles(credentials)
        }
    }

    private func writeFiles(_ credentials: DemoSeeder.Credentials) throws {
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let fields = DemoSeeder.customersSchema.fields.map(\.name)
        guard let csv = FileHandle(forWritingAtPath: try create(output + "/callers.csv")),
            let phoneFile = FileHandle(forWritingAtPath: try create(output + "/phones.txt"))
        else { throw ValidationError("could not write to \(output)") }
        var text = fields.joined(separator: ",") + "\n"
        var numbers = ""
        for (index, customer) in DemoCustomers(count: records, seed: 6_003).enumerated() {
            var customer = customer
            customer["customer_no"] = "B" + String(index + 1 + 10_000_000).dropFirst()
            text += fields.map { Self.csvField(customer[$0] ?? "") }.joined(separator: ",") + "\n"
            if index < phones, let phone = customer["phone"] { numbers += phone + "\n" }
            if text.utf8.count > 1 << 20 {
                csv.write(Data(text.utf8))
                text = ""
            }
        }
        csv.write(Data(text.utf8))
        phoneFile.write(Data(numbers.utf8))
        try csv.close()
        try phoneFile.close()
        var values = credentials.values
        values.append(("ITAKU_BENCH_DATASET", Self.dataset))
        values.append(("ITAKU_BENCH_PURPOSE", Self.purpose))
        try Data(DemoSeeder.Credentials(values: values).envFile.utf8).write(to: URL(fileURLWithPath: try create(output + "/bench.env")))
        print("\(records) records in \(output)/callers.csv, \(min(records, phones)) phone numbers in \(output)/phones.txt")
    }

    private func create(_ path: String) throws -> String {
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw ValidationError("could not write \(path)")
        }
        return path
    }

    static func csvField(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
