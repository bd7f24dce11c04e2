import Configuration
import Foundation

/// Every setting of Itaku, read once at start from a `ConfigReader` (command line >
/// environment `ITAKU_…` > `Config/itaku.yaml` > these defaults). `Docs/configuration.md`
/// lists each key; keep the two in step.
public struct ItakuConfiguration: Sendable {
    /// `state.directory`: where local state lives (embedded PostgreSQL, keyring, demo credentials).
    public var stateDirectory: String
    /// `http.host`, `http.port`: where the API listens.
    public var httpHost: String
    public var httpPort: Int
    /// `http.maxBodyBytes`: largest accepted request body; larger ones answer 413.
    public var maxBodyBytes: Int
    /// `http.maxImportBytes`: largest record import body (CSV streams; JSON is read whole).
    public var maxImportBytes: Int
    /// `http.idleTimeoutSeconds`: a connection that sends nothing for this long, between
    /// requests or in the middle of a request's body, is closed.
    public var idleTimeoutSeconds: Int
    /// `http.importTimeoutSeconds`: the longest a record import may take, its body's upload
    /// included: one whose body trickles in ends (408, rolled back) instead of holding its
    /// transaction and a pooled connection for as long as its sender likes.
    public var importTimeoutSeconds: Int
    /// `registry.maxAgeSeconds`: an instance whose registry (keys, purposes, assignments,
    /// contracts) was last read longer ago than this refuses authenticated calls (503) and is
    /// not ready, rather than act on revoked keys or ended assignments.
    public var registryMaxAgeSeconds: Int
    /// `db.url`: libpq URI or conninfo of the runtime role's connection.
    public var databaseURL: String
    /// `db.migrationUrl`: connection of the owner role that runs migrations.
    public var migrationURL: String
    /// `db.pool.minimum`, `db.pool.maximum`: pooled connections.
    public var poolMinimum: Int
    public var poolMaximum: Int
    /// `db.connectTimeoutSeconds`.
    public var connectTimeoutSeconds: Int
    /// `db.migrateOnStart`: apply pending migrations (as the owner) before serving.
    public var migrateOnStart: Bool
    /// `keyring.file`: JSON keyring; `keyring.directory`: a secret directory (one file per key)
    /// that takes precedence when set; `keyring.generate`: create the file on first run.
    public var keyringFile: String
    public var keyringDirectory: String?
    public var generateKeyring: Bool
    /// `keyring.dataKeysDirectory`: the tenants' data keys (one wrapped key file per tenant),
    /// shared by every instance, writable, and never backed up with the database.
    public var dataKeysDirectory: String
    /// `log.level`: trace, debug, info, notice, warning, error, critical. `log.format`: json or text.
    public var logLevel: String
    public var logFormat: String
    /// `instance.id`: names this gateway instance (access-log chain streams are per instance).
    public var instanceID: String
    /// `agents.tokenIssuer`, `agents.tokenAudience`: what agent tokens must say; `agents.jwksFile`:
    /// the issuer's keys (default: the keyring's demo issuer key).
    public var agentTokenIssuer: String
    public var agentTokenAudience: String
    public var agentJWKSFile: String?
    /// `agents.publicKeyFile`: the issuer's one public key as PEM (Ed25519, P-256 or RSA), when
    /// there is no JWKS.
    public var agentPublicKeyFile: String?
    /// `cases.bindingMinutes`: how long a lookup binds its records to (agent, case).
    public var caseBindingMinutes: Int
    /// `db.statementTimeoutSeconds`: the longest one statement of the service may run.
    public var statementTimeoutSeconds: Int
    /// `http.trustedProxies`: peers whose `X-Forwarded-For` names the client (comma-separated).
    public var trustedProxies: [String]
    /// `agents.maxTokenMinutes`: the longest lifetime an agent token may have.
    public var maxTokenMinutes: Int
    /// `agents.requireAuthorizedParty`: refuse agent tokens without an `azp` naming the integration.
    public var requireAuthorizedParty: Bool
    /// `agents.assertedLookupsPerMinute`: lookups per minute per asserted integration and tenant.
    public var assertedLookupsPerMinute: Int
    /// `retention.intervalSeconds`: how often the retention service disposes of expired records.
    public var retentionIntervalSeconds: Int
    /// `console.sessionMinutes`: the longest a console session lasts; `console.idleMinutes`:
    /// how long it lasts without a page being viewed.
    public var consoleSessionMinutes: Int
    public var consoleIdleMinutes: Int
    /// Whether the database is the embedded cluster of `./Deploy/run` (a local demo).
    public var isEmbeddedDatabase: Bool
    /// `db.readerUrl`: the cross-tenant reader role's connection (registry snapshots, the
    /// security team's search, export and verification). Nil: `db.url` as `itaku_reader`.
    public var readerURL: String?
    /// `db.pooler`: `none`, or `transaction` when db.url and db.readerUrl lead to a
    /// transaction-pooling PgBouncer. `db.listenUrl`: a direct connection for the registry's
    /// LISTEN, which a transaction pool cannot carry (required with `transaction`).
    public var transactionPooler: Bool
    public var listenURL: String?

    public init(reader: ConfigReader, workingDirectory: String = FileManager.default.currentDirectoryPath) {
        let state = Self.absolute(reader.string(forKey: "state.directory", default: ".itaku"), in: workingDirectory)
        stateDirectory = state
        httpHost = reader.string(forKey: "http.host", default: "127.0.0.1")
        httpPort = reader.int(forKey: "http.port", default: 8080)
        maxBodyBytes = reader.int(forKey: "http.maxBodyBytes", default: 1 << 20)
        maxImportBytes = reader.int(forKey: "http.maxImportBytes", default: 1 << 30)
        idleTimeoutSeconds = max(1, reader.int(forKey: "http.idleTimeoutSeconds", default: 60))
        importTimeoutSeconds = min(max(1, reader.int(forKey: "http.importTimeoutSeconds", default: 1800)), 86_400)
        registryMaxAgeSeconds = min(max(1, reader.int(forKey: "registry.maxAgeSeconds", default: 120)), 86_400)
        // The embedded default: the cluster ./Deploy/run keeps under the state directory,
        // reached over its Unix socket only.
        let embedded = "postgresql:///itaku?host=\(state)/run"
        databaseURL = reader.string(forKey: "db.url", isSecret: true, default: embedded + "&user=itaku_runtime")
        isEmbeddedDatabase = reader.string(forKey: "db.url", isSecret: true) == nil
        // With db.url set, the owner's URL must be given too: migrating as the runtime role
        // would fail, and serving as the owner is refused.
        migrationURL = reader.string(forKey: "db.migrationUrl", isSecret: true) ?? (isEmbeddedDatabase ? embedded + "&user=itaku_owner" : "")
        readerURL = reader.string(forKey: "db.readerUrl", isSecret: true) ?? (isEmbeddedDatabase ? embedded + "&user=itaku_reader" : nil)
        transactionPooler = reader.string(forKey: "db.pooler", default: "none") == "transaction"
        listenURL = reader.string(forKey: "db.listenUrl", isSecret: true)
        poolMinimum = reader.int(forKey: "db.pool.minimum", default: 2)
        poolMaximum = reader.int(forKey: "db.pool.maximum", default: 16)
        connectTimeoutSeconds = reader.int(forKey: "db.connectTimeoutSeconds", default: 5)
        migrateOnStart = reader.bool(forKey: "db.migrateOnStart", default: true)
        statementTimeoutSeconds = min(max(0, reader.int(forKey: "db.statementTimeoutSeconds", default: 30)), 86_400)
        keyringFile = Self.absolute(reader.string(forKey: "keyring.file", default: state + "/keyring.json"), in: workingDirectory)
        keyringDirectory = reader.string(forKey: "keyring.directory").map { Self.absolute($0, in: workingDirectory) }
        generateKeyring = reader.bool(forKey: "keyring.generate", default: true)
        dataKeysDirectory = Self.absolute(reader.string(forKey: "keyring.dataKeysDirectory", default: state + "/data-keys"), in: workingDirectory)
        logLevel = reader.string(forKey: "log.level", default: "info")
        logFormat = reader.string(forKey: "log.format", default: "json")
        instanceID = reader.string(forKey: "instance.id", default: ProcessInfo.processInfo.hostName)
        agentTokenIssuer = reader.string(forKey: "agents.tokenIssuer", default: "itaku-demo")
        agentTokenAudience = reader.string(forKey: "agents.tokenAudience", default: "itaku")
        agentJWKSFile = reader.string(forKey: "agents.jwksFile").map { Self.absolute($0, in: workingDirectory) }
        agentPublicKeyFile = reader.string(forKey: "agents.publicKeyFile").map { Self.absolute($0, in: workingDirectory) }
        caseBindingMinutes = max(1, reader.int(forKey: "cases.bindingMinutes", default: 30))
        trustedProxies = reader.string(forKey: "http.trustedProxies", default: "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        maxTokenMinutes = min(max(1, reader.int(forKey: "agents.maxTokenMinutes", default: 1440)), 43_200)
        requireAuthorizedParty = reader.bool(forKey: "agents.requireAuthorizedParty", default: false)
        retentionIntervalSeconds = min(max(1, reader.int(forKey: "retention.intervalSeconds", default: 3600)), 604_800)
        assertedLookupsPerMinute = min(max(1, reader.int(forKey: "agents.assertedLookupsPerMinute", default: 600)), 1_000_000)
        consoleSessionMinutes = min(max(1, reader.int(forKey: "console.sessionMinutes", default: 480)), 1440)
        consoleIdleMinutes = min(max(1, reader.int(forKey: "console.idleMinutes", default: 30)), consoleSessionMinutes)
    }

    /// The effective settings as `key = value` lines, with passwords in URLs redacted.
    public var redactedDescription: [(key: String, value: String)] {
        [
            ("state.directory", stateDirectory),
            ("http.host", httpHost),
            ("http.port", String(httpPort)),
            ("http.maxBodyBytes", String(maxBodyBytes)),
            ("http.maxImportBytes", String(maxImportBytes)),
            ("http.idleTimeoutSeconds", String(idleTimeoutSeconds)),
            ("http.importTimeoutSeconds", String(importTimeoutSeconds)),
            ("registry.maxAgeSeconds", String(registryMaxAgeSeconds)),
            ("db.url", Self.redactingPassword(databaseURL)),
            ("db.migrationUrl", migrationURL.isEmpty ? "(not set)" : Self.redactingPassword(migrationURL)),
            ("db.readerUrl", readerURL.map(Self.redactingPassword) ?? "(not set: db.url as itaku_reader)"),
            ("db.pooler", transactionPooler ? "transaction" : "none"),
            ("db.listenUrl", listenURL.map(Self.redactingPassword) ?? "(not set: the reader's connection)"),
            ("db.pool.minimum", String(poolMinimum)),
            ("db.pool.maximum", String(poolMaximum)),
            ("db.connectTimeoutSeconds", String(connectTimeoutSeconds)),
            ("db.migrateOnStart", String(migrateOnStart)),
            ("db.statementTimeoutSeconds", String(statementTimeoutSeconds)),
            ("keyring.file", keyringFile),
            ("keyring.directory", keyringDirectory ?? "(not set)"),
            ("keyring.generate", String(generateKeyring)),
            ("keyring.dataKeysDirectory", dataKeysDirectory),
            ("log.level", logLevel),
            ("log.format", logFormat),
            ("instance.id", instanceID),
            ("agents.tokenIssuer", agentTokenIssuer),
            ("agents.tokenAudience", agentTokenAudience),
            ("agents.jwksFile", agentJWKSFile ?? "(not set)"),
            ("agents.publicKeyFile", agentPublicKeyFile ?? "(not set: with neither, the keyring's demo issuer key)"),
            ("cases.bindingMinutes", String(caseBindingMinutes)),
            ("http.trustedProxies", trustedProxies.isEmpty ? "(none)" : trustedProxies.joined(separator: ",")),
            ("agents.maxTokenMinutes", String(maxTokenMinutes)),
            ("agents.requireAuthorizedParty", String(requireAuthorizedParty)),
            ("agents.assertedLookupsPerMinute", String(assertedLookupsPerMinute)),
            ("retention.intervalSeconds", String(retentionIntervalSeconds)),
            ("console.sessionMinutes", String(consoleSessionMinutes)),
            ("console.idleMinutes", String(consoleIdleMinutes)),
        ]
    }

    static func absolute(_ path: String, in directory: String) -> String {
        path.hasPrefix("/") ? path : (directory as NSString).appendingPathComponent(path)
    }

    /// The reader role's connection settings: `db.readerUrl`, or `db.url` with its user
    /// replaced by `itaku_reader` (libpq lets a later keyword override the URL's).
    public func readerConnection() -> (url: String, parameters: [String: String]) {
        if let readerURL { return (readerURL, [:]) }
        return (databaseURL, ["user": "itaku_reader"])
    }

    /// Replaces the password of a `postgresql://user:password@…` URI and a `password=` keyword.
    public static func redactingPassword(_ url: String) -> String {
        var result = url
        if let scheme = result.range(of: "://"), let at = result[scheme.upperBound...].firstIndex(of: "@") {
            let userInfo = result[scheme.upperBound..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                result.replaceSubrange(result.index(after: colon)..<at, with: "REDACTED")
            }
        }
        for marker in ["password=", "sslpassword="] {
            var searchStart = result.startIndex
            while let range = result.range(of: marker, range: searchStart..<result.endIndex) {
                let end = result[range.upperBound...].firstIndex(where: { $0 == "&" || $0 == " " }) ?? result.endIndex
                result.replaceSubrange(range.upperBound..<end, with: "REDACTED")
                searchStart = result.index(range.upperBound, offsetBy: "REDACTED".count)
            }
        }
        return result
    }
}
