import Foundation

/// A PgBouncer (Debian's `pgbouncer`) in transaction pooling mode in front of a test cluster,
/// on a free port of 127.0.0.1, as Itaku is deployed behind one. Each of its databases leads to
/// the database of the same name on the cluster; its server pool is small, so many clients
/// share a few server sessions, which is what a test of leaks through the pooler needs.
public final class TestPgBouncer: Sendable {
    public let port: Int
    public let directory: String
    private let runAs: String?

    /// The `pgbouncer` program, or nil when the package is not installed.
    public static var executable: String? {
        ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts PgBouncer for `cluster` with `serverPoolSize` server connections per database and
    /// user; `users` are the roles it lets through (trust, as the test cluster does).
    public static func start(
        for cluster: TestCluster, serverPoolSize: Int = 3,
        users: [String] = ["itaku_runtime", "itaku_reader", "itaku_owner"]
    ) throws -> TestPgBouncer {
        guard let executable else { throw TestClusterError.commandFailed("pgbouncer is not installed (apt-get install pgbouncer)") }
        // PgBouncer refuses to run as root: as root, it runs as the cluster's owner.
        let runAs: String? = geteuid() == 0 ? "postgres" : nil
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("itaku-pgbouncer-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = try freePort()
        let configuration = """
            [databases]
            * = host=127.0.0.1 port=\(cluster.port)

            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir =
            auth_type = trust
            auth_file = \(directory)/userlist.txt
            pool_mode = transaction
            max_client_conn = 500
            default_pool_size = \(serverPoolSize)
            ignore_startup_parameters = extra_float_digits
            logfile = \(directory)/pgbouncer.log
            pidfile = \(directory)/pgbouncer.pid

            """
        try configuration.write(toFile: directory + "/pgbouncer.ini", atomically: true, encoding: .utf8)
        try users.map { "\"\($0)\" \"\"\n" }.joined().write(toFile: directory + "/userlist.txt", atomically: true, encoding: .utf8)
        if let runAs {
            try run("/bin/chown", ["-R", "\(runAs):", directory])
            try run("/usr/sbin/runuser", ["-u", runAs, "--", executable, "-d", directory + "/pgbouncer.ini"])
        } else {
            try run(executable, ["-d", directory + "/pgbouncer.ini"])
        }
        let bouncer = TestPgBouncer(port: port, directory: directory, runAs: runAs)
        try bouncer.waitUntilListening()
        return bouncer
    }

    private init(port: Int, directory: String, runAs: String?) {
        self.port = port
        self.directory = directory
        self.runAs = runAs
    }

    /// A URL through PgBouncer for `user` on `database`.
    public func url(database: String, user: String) -> String {
        "postgresql://\(user)@127.0.0.1:\(port)/\(database)"
    }

    /// Stops PgBouncer and removes its files.
    public func stop() {
        if let text = try? String(contentsOfFile: directory + "/pgbouncer.pid", encoding: .utf8),
           let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            // SIGINT: shut down once transactions end. (SIGTERM waits for every client to
            // disconnect, which a test's pool may never do: the daemon outlived the tests.)
            kill(pid, SIGINT)
            for _ in 0..<100 where kill(pid, 0) == 0 { usleep(20_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func waitUntilListening() throws {
        for _ in 0..<250 {
            let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            close(socket)
            if connected { return }
            usleep(20_000)
        }
        let log = (try? String(contentsOfFile: directory + "/pgbouncer.log", encoding: .utf8)) ?? ""
        throw TestClusterError.commandFailed("pgbouncer did not listen on port \(port) within 5 s: \(log.suffix(2000))")
    }
}
