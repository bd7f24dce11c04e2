import ArgumentParser
import Crypto
import Foundation
import ItakuCore
import ItakuData
import ItakuDemo
import ItakuRegistry

/// Measures what sealing costs per record, on this machine, without a database: sealing a
/// record's fields (imports, updates) and opening them (every record a lookup or read returns),
/// against reading the same fields stored plain.
struct BenchSeal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-seal", abstract: "Measure the cost of sealing records' fields.", shouldDisplay: false
    )

    @Option(help: "Records to seal and open.") var records = 100_000

    func run() async throws {
        let keyring = Keyring.generate()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("itaku-bench-seal-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keys = DataKeys(directory: directory, keyring: keyring)
        let tenant = UUID()
        let sealer = try keys.sealer(for: tenant)
        let fields = DemoSeeder.customersSchema.fields
        let rows = Array(DemoCustomers(count: records))
        let ids = rows.map { _ in UUID().uuidString }
        let plain = rows.map { RecordDocument.json($0, order: fields) }
        let clock = ContinuousClock()

        var sealed: [String] = []
        sealed.reserveCapacity(records)
        let sealing = clock.measure {
            for (document, id) in zip(plain, ids) { sealed.append((try? sealer.seal(document, record: id)) ?? "") }
        }
        var opened = 0
        let opening = try clock.measure {
            for (document, id) in zip(sealed, ids) { opened += try keys.open(document, tenant: tenant, record: id).count }
        }
        var read = 0
        let reading = try clock.measure {
            for (document, id) in zip(plain, ids) { read += try keys.open(document, tenant: tenant, record: id).count }
        }
        guard opened == read else { throw ValidationError("sealed and plain records opened differently") }
        func perRecord(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1e6 / Double(records) + Double(duration.components.attoseconds) / 1e12 / Double(records)
        }
        let size = Double(sealed.reduce(0) { $0 + $1.utf8.count }) / Double(records)
        let plainSize = Double(plain.reduce(0) { $0 + $1.utf8.count }) / Double(records)
        print(String(
            format: "{\"records\": %d, \"seal_us\": %.2f, \"open_sealed_us\": %.2f, \"read_plain_us\": %.2f, \"sealed_bytes\": %.0f, \"plain_bytes\": %.0f}",
            records, perRecord(sealing), perRecord(opening), perRecord(reading), size, plainSize
        ))
    }
}
