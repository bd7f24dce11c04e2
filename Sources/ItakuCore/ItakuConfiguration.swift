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

    /// Settings that are set but cannot be used (a value that is not a number or a boolean, a
    /// name that is none of its choices, a number out of its range): `itaku check-config`
    /// lists them and fails, and nothing starts with any, rather than run on a default the
    /// operator did not choose.
    public private(set) var problems: [String] = []

    public init(reader: ConfigReader, workingDirectory: String = FileManager.default.currentDirectoryPath) {
        var problems: [String] = []
        // A value that is present but does not convert is a problem, not the default.
        func unusable(_ key: String, _ error: any Error, _ expected: String) {
            if !"\(error)".hasPrefix("Missing required") { problems.append("\(key): not \(expected)") }
        }
        func int(_ key: String, _ value: Int) -> Int {
            do { return try reader.requiredInt(forKey: ConfigKey(key)) } catch { unusable(key, error, "a whole number"); return value }
        }
        func bool(_ key: String, _ value: Bool) -> Bool {
            do { return try reader.requiredBool(forKey: ConfigKey(key)) } catch { unusable(key, error, "true or false"); return value }
        }
        func choice(_ key: String, _ value: String, of choices: [String]) -> String {
            let chosen = reader.string(forKey: ConfigKey(key), default: value)
            if !choices.contains(chosen) { problems.append("\(key): one of \(choices.joined(separator: ", "))") }
            return chosen
        }
        func atLeast(_ key: String, _ value: Int, _ least: Int) {
            if value < least { problems.append("\(key): at least \(least)") }
        }
        let state = Self.absolute(reader.string(forKey: "state.directory", default: ".itaku"), in: workingDirectory)
        stateDirectory = state
        httpHost = reader.string(forKey: "http.host", default: "127.0.0.1")
        httpPort = int("http.port", 8080)
        maxBodyBytes = int("http.maxBodyBytes", 1 << 20)
        maxImportBytes = int("http.maxImportBytes", 1 << 30)
        idleTimeoutSeconds = max(1, int("http.idleTimeoutSeconds", 60))
        importTimeoutSeconds = min(max(1, int("http.importTimeoutSeconds", 1800)), 86_400)
        registryMaxAgeSeconds = min(max(1, int("registry.maxAgeSeconds", 120)), 86_400)
        // The embedded default: the cluster ./Deploy/run keeps under the state directory,
        // reached over its Unix socket only.
        let embedded = "postgresql:///itaku?host=\(state)/run"
        databaseURL = reader.string(forKey: "db.url", isSecret: true, default: embedded + "&user=itaku_runtime")
        isEmbeddedDatabase = reader.string(forKey: "db.url", isSecret: true) == nil
        // With db.url set, the owner's URL must be given too: migrating as the runtime role
        // would fail, and serving as the owner is refused.
        migrationURL = reader.string(forKey: "db.migrationUrl", isSecret: true) ?? (isEmbeddedDatabase ? embedded + "&user=itaku_owner" : "")
        readerURL = reader.string(forKey: "db.readerUrl", isSecret: true) ?? (isEmbeddedDatabase ? embedded + "&user=itaku_reader" : nil)
        transactionPooler = choice("db.pooler", "none", of: ["none", "transaction"]) == "transaction"
        listenURL = reader.string(forKey: "db.listenUrl", isSecret: true)
        poolMinimum = int("db.pool.minimum", 2)
        poolMaximum = int("db.pool.maximum", 16)
        connectTimeoutSeconds = int("db.connectTimeoutSeconds", 5)
        migrateOnStart = bool("db.migrateOnStart", true)
        statementTimeoutSeconds = min(max(0, int("db.statementTimeoutSeconds", 30)), 86_400)
        keyringFile = Self.absolute(reader.string(forKey: "keyring.file", default: state + "/keyring.json"), in: workingDirectory)
        keyringDirectory = reader.string(forKey: "keyring.directory").map { Self.absolute($0, in: workingDirectory) }
        generateKeyring = bool("keyring.generate", true)
        dataKeysDirectory = Self.absolute(reader.string(forKey: "keyring.dataKeysDirectory", default: state + "/data-keys"), in: workingDirectory)
        logLevel = choice("log.level", "info", of: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        logFormat = choice("log.format", "json", of: ["json", "text"])
        instanceID = reader.string(forKey: "instance.id", default: ProcessInfo.processInfo.hostName)
        agentTokenIssuer = reader.string(forKey: "agents.tokenIssuer", default: "itaku-demo")
        agentTokenAudience = reader.string(forKey: "agents.tokenAudience", default: "itaku")
        agentJWKSFile = reader.string(forKey: "agents.jwksFile").map { Self.absolute($0, in: workingDirectory) }
        agentPublicKeyFile = reader.string(forKey: "agents.publicKeyFile").map { Self.absolute($0, in: workingDirectory) }
        caseBindingMinutes = max(1, int("cases.bindingMinutes", 30))
        trustedProxies = reader.string(forKey: "http.trustedProxies", default: "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        maxTokenMinutes = min(max(1, int("agents.maxTokenMinutes", 1440)), 43_200)
        requireAuthorizedParty = bool("agents.requireAuthorizedParty", false)
        retentionIntervalSeconds = min(max(1, int("retention.intervalSeconds", 3600)), 604_800)
        assertedLookupsPerMinute = min(max(1, int("agents.assertedLookupsPerMinute", 600)), 1_000_000)
        consoleSessionMinutes = min(max(1, int("console.sessionMinutes", 480)), 1440)
        consoleIdleMinutes = min(max(1, int("console.idleMinutes", 30)), consoleSessionMinutes)
        if !(0...65_535).contains(httpPort) { problems.append("http.port: 0 to 65535") }
        atLeast("http.maxBodyBytes", maxBodyBytes, 1024)
        atLeast("http.maxImportBytes", maxImportBytes, 1024)
        atLeast("db.pool.minimum", poolMinimum, 0)
        atLeast("db.pool.maximum", poolMaximum, max(1, poolMinimum))
        atLeast("db.connectTimeoutSeconds", connectTimeoutSeconds, 1)
        self.problems = problems
    }

    /// Throws when any setting is unusable (`problems`).
    public func check() throws {
        guard problems.isEmpty else { throw UnusableSettings(problems: problems) }
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

    /// The database URLs (by setting name) that reach a server over TCP without checking its
    /// certificate: libpq's default `sslmode=prefer` encrypts if it can but believes any
    /// server. `serve` logs each as critical and `check-config` warns; Unix sockets are local.
    public var unverifiedDatabaseURLs: [String] {
        let environment = ProcessInfo.processInfo.environment
        var urls = [("db.url", databaseURL), ("db.migrationUrl", migrationURL)]
        if let readerURL { urls.append(("db.readerUrl", readerURL)) }
        if let listenURL { urls.append(("db.listenUrl", listenURL)) }
        return urls.filter { !$0.1.isEmpty && Self.isUnverifiedTCP($0.1, environment: environment) }.map(\.0)
    }

    /// Whether a libpq URI or keyword/value string names a TCP host without `sslmode=verify-ca`
    /// or `verify-full` (in it or in `PGSSLMODE`).
    public static func isUnverifiedTCP(_ url: String, environment: [String: String] = [:]) -> Bool {
        let isURI = url.hasPrefix("postgresql://") || url.hasPrefix("postgres://")
        var parameters: [String: String] = [:]
        var hosts: [String] = []
        if isURI {
            let rest = url[url.range(of: "://")!.upperBound...]
            let authority = rest.prefix { $0 != "/" && $0 != "?" }
            let hostList = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
            for host in hostList.split(separator: ",") {
                // host, host:port, [v6]:port
                let name = host.hasPrefix("[") ? String(host.dropFirst().prefix { $0 != "]" }) : String(host.prefix { $0 != ":" })
                hosts.append(name.removingPercentEncoding ?? name)
            }
            if let query = rest.firstIndex(of: "?") {
                for pair in rest[rest.index(after: query)...].split(separator: "&") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { parameters[String(parts[0])] = String(parts[1]).removingPercentEncoding ?? String(parts[1]) }
                }
            }
        } else {
            // libpq allows spaces around "=": join them first.
            let text = url.replacingOccurrences(of: #"\s*=\s*"#, with: "=", options: .regularExpression)
            for pair in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { parameters[String(parts[0])] = String(parts[1]).trimmingCharacters(in: CharacterSet(charactersIn: "'")) }
            }
        }
        if let sslmode = parameters["sslmode"] ?? environment["PGSSLMODE"], sslmode == "verify-full" || sslmode == "verify-ca" { return false }
        if let host = parameters["host"] { hosts = host.split(separator: ",").map(String.init) }
        if let address = parameters["hostaddr"] { hosts = address.split(separator: ",").map(String.init) }
        hosts = hosts.filter { !$0.isEmpty }
        if hosts.isEmpty, let host = environment["PGHOST"] { hosts = [host] }
        // No host at all: libpq's default Unix socket.
        return hosts.contains { !$0.hasPrefix("/") && !$0.hasPrefix("@") }
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
        // keyword = value (libpq allows spaces around "="; a value may be quoted, with \' and \\).
        var bytes = Array(result.utf8)
        var index = 0
        while index < bytes.count {
            let atWordStart = index == 0 || [0x20, 0x09, 0x0A, 0x26, 0x3F].contains(bytes[index - 1])
            guard atWordStart, let keyword = ["sslpassword", "password"].first(where: { bytes[index...].starts(with: $0.utf8) }) else {
                index += 1
                continue
            }
            var cursor = index + keyword.utf8.count
            while cursor < bytes.count, bytes[cursor] == 0x20 || bytes[cursor] == 0x09 { cursor += 1 }
            guard cursor < bytes.count, bytes[cursor] == UInt8(ascii: "=") else {
                index += 1
                continue
            }
            cursor += 1
            while cursor < bytes.count, bytes[cursor] == 0x20 || bytes[cursor] == 0x09 { cursor += 1 }
            var end = cursor
            if end < bytes.count, bytes[end] == UInt8(ascii: "'") {
                end += 1
                while end < bytes.count, bytes[end] != UInt8(ascii: "'") { end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1 }
                end = min(end + 1, bytes.count)
            } else {
                while end < bytes.count, ![0x20, 0x09, 0x0A, 0x26].contains(bytes[end]) { end += 1 }
            }
            bytes.replaceSubrange(cursor..<end, with: Array("REDACTED".utf8))
            index = cursor + "REDACTED".utf8.count
        }
        result = String(decoding: bytes, as: UTF8.self)
        return result
    }
}

/// Settings that are set but cannot be used: nothing starts with them.
public struct UnusableSettings: Error, CustomStringConvertible {
    public var problems: [String]
    public var description: String { "unusable settings: " + problems.joined(separator: "; ") }
}
