import Configuration
import Crypto
import Foundation
import ItakuCore
import Testing

@Suite("Configuration and keyring")
struct ConfigurationTests {
    @Test("command line beats environment, environment beats the YAML file, the file beats defaults")
    func precedence() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("itaku-config-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/itaku.yaml"
        try "http:\n  port: 7001\n  host: 0.0.0.0\nlog:\n  level: debug\ndb:\n  pool:\n    maximum: 9\n".write(toFile: file, atomically: true, encoding: .utf8)
        let reader = try await ConfigReader.itaku(
            arguments: ["--http-port", "7003"],
            environment: ["ITAKU_HTTP_PORT": "7002", "ITAKU_HTTP_HOST": "10.0.0.1", "ITAKU_DB_MAX_BODY_BYTES": "1"],
            configFile: file
        )
        let configuration = ItakuConfiguration(reader: reader, workingDirectory: directory)
        #expect(configuration.httpPort == 7003)
        #expect(configuration.httpHost == "10.0.0.1")
        #expect(configuration.logLevel == "debug")
        #expect(configuration.poolMaximum == 9)
        #expect(configuration.maxBodyBytes == 1 << 20)
        #expect(configuration.stateDirectory == directory + "/.itaku")
        #expect(configuration.databaseURL == "postgresql:///itaku?host=\(directory)/.itaku/run&user=itaku_runtime")
    }

    @Test("a setting that is set but unusable is a problem (nothing starts), never its default")
    func unusableSettings() async throws {
        let reader = try await ConfigReader.itaku(arguments: [], environment: [
            "ITAKU_KEYRING_GENERATE": "off", "ITAKU_DB_POOLER": "Transaction", "ITAKU_HTTP_PORT": "80o8",
            "ITAKU_HTTP_MAX_BODY_BYTES": "-1", "ITAKU_LOG_LEVEL": "verbose",
        ], configFile: nil)
        let configuration = ItakuConfiguration(reader: reader)
        let keys = Set(configuration.problems.map { String($0.prefix { $0 != ":" }) })
        #expect(keys == ["keyring.generate", "db.pooler", "http.port", "http.maxBodyBytes", "log.level"], "\(configuration.problems)")
        #expect(throws: UnusableSettings.self) { try configuration.check() }

        let good = ItakuConfiguration(reader: try await ConfigReader.itaku(arguments: [], environment: [
            "ITAKU_KEYRING_GENERATE": "false", "ITAKU_DB_POOLER": "transaction", "ITAKU_HTTP_PORT": "8081",
        ], configFile: nil))
        #expect(good.problems.isEmpty, "\(good.problems)")
        #expect(good.generateKeyring == false && good.transactionPooler && good.httpPort == 8081)
    }

    @Test("a database URL over TCP without sslmode=verify-full or verify-ca is flagged; a Unix socket or a verified one is not", arguments: [
        ("postgresql://itaku_runtime:pw@db.example/itaku", true),
        ("postgresql://itaku_runtime:pw@db.example/itaku?sslmode=require", true),
        ("postgresql://itaku_runtime:pw@db.example:5432/itaku?sslmode=verify-full&sslrootcert=/etc/itaku/ca.pem", false),
        ("postgresql://[2001:db8::1]:5432/itaku?sslmode=verify-ca", false),
        ("postgresql:///itaku?host=/work/.itaku/run&user=itaku_runtime", false),
        ("postgresql://%2Frun%2Fpostgresql/itaku", false),
        ("host=db.example dbname=itaku sslmode=prefer", true),
        ("host=/var/run/postgresql dbname=itaku", false),
        ("dbname=itaku", false),
        ("hostaddr=10.0.0.5 dbname=itaku sslmode=verify-full", false),
        ("host=db.example dbname = itaku sslmode = verify-full", false),
    ])
    func unverifiedTCP(url: String, flagged: Bool) {
        #expect(ItakuConfiguration.isUnverifiedTCP(url) == flagged)
    }

    @Test("check-config output redacts passwords in URLs", arguments: [
        ("postgresql://itaku:s3cret@db.example/itaku", "postgresql://itaku:REDACTED@db.example/itaku"),
        ("host=db password=s3cret dbname=itaku", "host=db password=REDACTED dbname=itaku"),
        ("postgresql://db/itaku?sslmode=verify-full&password=s3cret", "postgresql://db/itaku?sslmode=verify-full&password=REDACTED"),
        ("postgresql:///itaku?host=/run/pg", "postgresql:///itaku?host=/run/pg"),
        ("host=db password = s3cret dbname=itaku", "host=db password = REDACTED dbname=itaku"),
        ("password='a b\\' c' host=db sslpassword=x", "password=REDACTED host=db sslpassword=REDACTED"),
    ])
    func redaction(url: String, expected: String) {
        #expect(ItakuConfiguration.redactingPassword(url) == expected)
    }

    @Test("a missing keyring is generated with mode 0600 and loads back identical; its description shows no secret")
    func keyringRoundTrip() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("itaku-keyring-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/keyring.json"
        let generated = try Keyring.load(file: file, directory: nil, generate: true)
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let loaded = try Keyring.load(file: file, directory: nil, generate: false)
        #expect(loaded.checkpointKeyID == generated.checkpointKeyID)
        #expect(loaded.agentTokenKeyID == generated.agentTokenKeyID)
        #expect(loaded.digestKey(tenant: "acme-retail") == generated.digestKey(tenant: "acme-retail"))
        #expect(loaded.digestKey(tenant: "acme-retail") != loaded.digestKey(tenant: "kobe-insurance"))
        let secret = loaded.checkpointSigningKey.rawRepresentation.base64EncodedString()
        #expect(!"\(loaded)".contains(secret))
        #expect(throws: KeyringError.self) { try Keyring.load(file: directory + "/absent.json", directory: nil, generate: false) }
    }

    @Test("a secret directory with one file per key is read, and a short key is refused")
    func keyringDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("itaku-secrets-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = Data(repeating: 7, count: 32).base64EncodedString()
        for name in ["hmac_master", "checkpoint_signing_key", "agent_token_key"] {
            try (key + "\n").write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
        let keyring = try Keyring.load(file: "/nonexistent", directory: directory, generate: false)
        #expect(keyring.checkpointKeyID.count == 16)
        try Data(repeating: 1, count: 8).base64EncodedString().write(toFile: directory + "/hmac_master", atomically: true, encoding: .utf8)
        #expect(throws: KeyringError.self) { try Keyring.load(file: "/nonexistent", directory: directory, generate: false) }
    }
}

@Suite("Timestamps")
struct TimestampTests {
    @Test("ISO 8601 with microseconds, exact to the microsecond, across leap days and the epoch", arguments: [
        (0.0, "1970-01-01T00:00:00.000000Z"),
        (951_782_400.000_001, "2000-02-29T00:00:00.000001Z"),
        (1_795_383_927.532_320, "2026-11-22T21:45:27.532320Z"),
        (-1.5, "1969-12-31T23:59:58.500000Z"),
        (-62_135_596_800.0, "0001-01-01T00:00:00.000000Z"),
        (253_402_300_799.0, "9999-12-31T23:59:59.000000Z"),
    ])
    func formats(seconds: Double, expected: String) {
        #expect(Timestamp.iso8601(Date(timeIntervalSince1970: seconds)) == expected)
    }
}
