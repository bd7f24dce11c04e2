import Foundation
import ItakuPostgres
import Logging
import ItakuTestSupport
import Testing

@Suite("TLS to PostgreSQL")
struct TLSTests {
    @Test("sslmode=verify-full succeeds with the cluster's CA and fails with another CA")
    func verifyFull() async throws {
        let cluster = try TestCluster.start(tls: true)
        defer { cluster.destroy() }
        let goodCA = try #require(cluster.certificateAuthority)
        let base = "postgresql://itaku_owner@localhost:\(cluster.port)/postgres"

        let trusted = PostgresClient(
            configuration: PostgresConfiguration(
                url: base + "?sslmode=verify-full", parameters: ["sslrootcert": goodCA], minimumConnections: 0
            ),
            logger: .init(label: "test")
        )
        let ssl = try await trusted.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        #expect(try ssl[0].decode(0, as: Bool.self) == true)
        await trusted.shutdown()

        let otherDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("itaku-ca-\(UUID())").path
        try FileManager.default.createDirectory(atPath: otherDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: otherDirectory) }
        let wrongCA = try TestCertificates.makeAuthority(in: otherDirectory, name: "other")
        let untrusted = PostgresClient(
            configuration: PostgresConfiguration(
                url: base + "?sslmode=verify-full", parameters: ["sslrootcert": wrongCA], minimumConnections: 0
            ),
            logger: .init(label: "test")
        )
        let error = await #expect(throws: PostgresError.self) { try await untrusted.query("SELECT 1") }
        #expect(error?.kind == .connectionFailed)
        await untrusted.shutdown()
    }
}
