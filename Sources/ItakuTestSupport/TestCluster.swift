import Foundation
import ItakuCore
import ItakuPostgres
import ItakuSchema
import Logging
import Synchronization

/// A throwaway PostgreSQL cluster for tests, in a temporary folder, on a free port of
/// 127.0.0.1. PostgreSQL refuses to run as root, so when the tests run as root the cluster is
/// initialised and run as the `postgres` system user.
///
/// `ITAKU_TEST_DB_URL` (a superuser URL) makes `shared` use that server instead.
public final class TestCluster: Sendable {
    public let port: Int
    public let directory: String
    /// Superuser (and migration owner) of the cluster.
    public let superuser = "itaku_owner"
    /// Set when the cluster was started with TLS: the CA that signed the server certificate.
    public let certificateAuthority: String?
    private let externalURL: String?
    private let runAs: String?
    private let binDirectory: String

    // MARK: Shared cluster

    private static let sharedCluster = Mutex<Result<TestCluster, any Error>?>(nil)

    /// The cluster shared by every test of the process, started on first use and stopped when
    /// the process exits.
    public static func shared() throws -> TestCluster {
        try sharedCluster.withLock { cached in
            if let cached { return try cached.get() }
            let result = Result { () throws -> TestCluster in
                if let url = ProcessInfo.processInfo.environment["ITAKU_TEST_DB_URL"], !url.isEmpty {
                    return TestCluster(externalURL: url)
                }
                let cluster = try TestCluster.start()
                registerExitCleanup(cluster)
                return cluster
            }
            cached = result
            return try result.get()
        }
    }

    private init(externalURL: String) {
        self.externalURL = externalURL
        self.port = 0
        self.directory = ""
        self.runAs = nil
        self.binDirectory = ""
        self.certificateAuthority = nil
    }

    private init(port: Int, directory: String, runAs: String?, binDirectory: String, certificateAuthority: String?) {
        self.externalURL = nil
        self.port = port
        self.directory = directory
        self.runAs = runAs
        self.binDirectory = binDirectory
        self.certificateAuthority = certificateAuthority
    }

    // MARK: Starting and stopping

    /// Initialises and starts a new cluster. With `tls`, a test CA and a server certificate for
    /// `localhost` are made, and the cluster accepts only TLS connections over TCP.
    public static func start(tls: Bool = false) throws -> TestCluster {
        let bin = try binDirectory()
        let runAs: String? = geteuid() == 0 ? "postgres" : nil
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("itaku-test-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let data = directory + "/data"
        var certificateAuthority: String?
        if tls {
            certificateAuthority = try TestCertificates.make(in: directory)
        }
        if let runAs { try run("/bin/chown", ["-R", "\(runAs):", directory]) }
        let cluster = TestCluster(
            port: try freePort(), directory: directory, runAs: runAs, binDirectory: bin,
            certificateAuthority: certificateAuthority
        )
        try cluster.postgresCommand(
            "initdb", ["-D", data, "-U", "itaku_owner", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        )
        if tls {
            let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"
            try cluster.writeAsOwner(hba, to: data + "/pg_hba.conf")
        }
        try cluster.startServer()
        return cluster
    }

    private func startServer() throws {
        var options = [
            "-p \(port)", "-k \(directory)", "-c listen_addresses=localhost",
            // Durability of a throwaway cluster does not matter; speed does. Itaku still sets
            // and checks synchronous_commit=on on each connection.
            "-c fsync=off", "-c full_page_writes=off", "-c max_connections=400",
        ]
        if let certificateAuthority {
            _ = certificateAuthority
            options += ["-c ssl=on", "-c ssl_cert_file=\(directory)/server.crt", "-c ssl_key_file=\(directory)/server.key"]
        }
        try postgresCommand(
            "pg_ctl", ["-D", directory + "/data", "-l", directory + "/server.log", "-w", "-t", "60",
                       "-o", options.joined(separator: " "), "start"]
        )
    }

    /// Stops the server (fast shutdown), keeping its data, as when a database goes away.
    public func stopServer() throws {
        try postgresCommand("pg_ctl", ["-D", directory + "/data", "-m", "fast", "-w", "stop"])
    }

    /// Starts a server stopped with `stopServer()` again on the same port.
    public func restartServer() throws {
        try startServer()
    }

    /// Stops the server and removes its files.
    public func destroy() {
        _ = try? postgresCommand("pg_ctl", ["-D", directory + "/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Connecting

    /// A URL for `user` on `database` of this cluster.
    public func url(database: String = "postgres", user: String? = nil) -> String {
        if let externalURL { return externalURL }
        return "postgresql://\(user ?? superuser)@127.0.0.1:\(port)/\(database)"
    }

    /// A single URL for `user` on `database`: for settings that take one URL. With
    /// `ITAKU_TEST_DB_URL`, its user and path are replaced (`itaku_runtime` must be able to log in).
    public func singleURL(database: String, user: String? = nil) -> String {
        guard let externalURL, var components = URLComponents(string: externalURL) else {
            return url(database: database, user: user)
        }
        components.path = "/" + database
        if let user {
            components.user = user
            components.password = nil
        }
        return components.string ?? externalURL
    }

    /// Keyword overrides that select `database` and `user` (applied after the URL).
    public func parameters(database: String, user: String? = nil) -> [String: String] {
        var parameters = ["dbname": database]
        if let user { parameters["user"] = user }
        return parameters
    }

    public func configuration(
        database: String, user: String? = nil, maximumConnections: Int = 8
    ) -> PostgresConfiguration {
        PostgresConfiguration(
            url: url(), parameters: parameters(database: database, user: user),
            minimumConnections: 0, maximumConnections: maximumConnections
        )
    }

    /// Creates a fresh database, migrated with Itaku's migrations unless `migrated` is false.
    public func makeDatabase(migrated: Bool = true, logger: Logger = Logger(label: "itaku.test")) async throws -> TestDatabase {
        let name = "itaku_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let admin = PostgresClient(configuration: configuration(database: "postgres", maximumConnections: 1), logger: logger)
        do {
            // The name is generated here from hex digits, never from input.
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name) TEMPLATE template0 ENCODING 'UTF8'"))
            await admin.shutdown()
        } catch {
            await admin.shutdown()
            throw error
        }
        let database = TestDatabase(cluster: self, name: name)
        if migrated {
            try await Migrator.migrate(database.configuration(role: .owner, maximumConnections: 1), logger: logger)
        }
        return database
    }

    /// A copy of `database` (which must have no open connections), for destructive tests.
    public func cloneDatabase(_ database: TestDatabase, logger: Logger = Logger(label: "itaku.test")) async throws -> TestDatabase {
        let name = "itaku_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let admin = PostgresClient(configuration: configuration(database: "postgres", maximumConnections: 1), logger: logger)
        do {
            // Both names are generated here from hex digits, never from input.
            _ = try await WriteHeavyGate.shared.withLock {
                try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name) TEMPLATE \(database.name)"))
            }
            await admin.shutdown()
        } catch {
            await admin.shutdown()
            throw error
        }
        return TestDatabase(cluster: self, name: name)
    }

    // MARK: Helpers

    private static func binDirectory() throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        guard let newest = versions.compactMap(Int.init).max() else { throw TestClusterError.noPostgres }
        return "\(root)/\(newest)/bin"
    }

    @discardableResult
    private func postgresCommand(_ tool: String, _ arguments: [String]) throws -> String {
        let path = "\(binDirectory)/\(tool)"
        if let runAs {
            return try run("/usr/sbin/runuser", ["-u", runAs, "--", path] + arguments)
        }
        return try run(path, arguments)
    }

    private func writeAsOwner(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        if let runAs { try run("/bin/chown", ["\(runAs):", path]) }
    }
}

/// One database of a test cluster.
public struct TestDatabase: Sendable {
    public enum Role: Sendable {
        /// The migration owner (the cluster superuser in tests).
        case owner
        /// `itaku_runtime`, the role the service runs as.
        case runtime
        /// `itaku_reader`, the service's cross-tenant reader.
        case reader

        var user: String? {
            switch self {
            case .owner: nil
            case .runtime: "itaku_runtime"
            case .reader: "itaku_reader"
            }
        }
    }

    public let cluster: TestCluster
    public let name: String

    public func configuration(role: Role, maximumConnections: Int = 8) -> PostgresConfiguration {
        cluster.configuration(
            database: name, user: role.user, maximumConnections: maximumConnections
        )
    }

    /// One URL for `role` on this database, for configuration keys such as `db.url`.
    public func url(role: Role) -> String {
        cluster.singleURL(database: name, user: role.user)
    }

    public func makeClient(role: Role, maximumConnections: Int = 8, logger: Logger = Logger(label: "itaku.test")) -> PostgresClient {
        PostgresClient(configuration: configuration(role: role, maximumConnections: maximumConnections), logger: logger)
    }
}

// MARK: - Cleanup at exit

private let clustersToStop = Mutex<[TestCluster]>([])

private func registerExitCleanup(_ cluster: TestCluster) {
    let first = clustersToStop.withLock { list in
        list.append(cluster)
        return list.count == 1
    }
    if first {
        atexit {
            for cluster in clustersToStop.withLock({ $0 }) { cluster.destroy() }
        }
    }
}
