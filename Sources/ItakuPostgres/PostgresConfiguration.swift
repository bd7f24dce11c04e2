/// How the client connects and how large its pool is.
///
/// `url` is handed to libpq as the `dbname` keyword with `expand_dbname` set, so it may be a
/// `postgresql://` URI or a `key=value` connection string exactly as libpq documents them;
/// `parameters` are further keyword/value pairs (for example `sslmode`, `sslrootcert`) that
/// override what the URL says. Nothing is ever interpolated into a connection string.
public struct PostgresConfiguration: Sendable {
    public var url: String
    public var parameters: [String: String]
    public var minimumConnections: Int
    public var maximumConnections: Int
    public var applicationName: String
    public var connectTimeoutSeconds: Int
    /// A pooled connection idle for longer than this is probed before it is lent again, so a
    /// connection the server dropped while idle (restart, failover) is replaced, not handed out.
    public var probeIdleAfter: Duration
    /// Refuse sessions whose role is, or may become (membership, with or without inheritance),
    /// a superuser, a role that bypasses row-level security, or an owner of anything in the
    /// `itaku` schema: the service's own pool, whose
    /// guarantees rest on RLS and the access log's append-only grants.
    public var requireUnprivilegedRole = false
    /// The longest a statement may run before the server cancels it (57014); 0: no bound. A
    /// request whose caller gave up must not hold a pooled connection for minutes.
    public var statementTimeoutSeconds = 0
    /// The URL leads to a transaction-pooling PgBouncer: no `options` startup parameter (the
    /// pooler refuses it), and each transaction sets what Itaku relies on itself (`SET LOCAL`,
    /// in the same round trip as `BEGIN`). Statements outside a transaction run with the role's
    /// defaults (migration 0011), which `connect` checks.
    public var transactionPooler = false
    /// Where LISTEN connects when it must bypass a pooler (a LISTEN holds one server session,
    /// which a transaction pool cannot give); nil: `url` and `parameters`.
    public var listenURL: String?
    public var listenParameters: [String: String] = [:]

    public init(
        url: String,
        parameters: [String: String] = [:],
        minimumConnections: Int = 1,
        maximumConnections: Int = 8,
        applicationName: String = "itaku",
        connectTimeoutSeconds: Int = 5,
        probeIdleAfter: Duration = .seconds(1)
    ) {
        self.url = url
        self.parameters = parameters
        self.minimumConnections = max(0, minimumConnections)
        self.maximumConnections = max(1, maximumConnections)
        self.applicationName = applicationName
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.probeIdleAfter = probeIdleAfter
    }

    /// The keyword/value pairs given to `PQconnectdbParams`, in order. libpq processes them in
    /// order and a later keyword overrides what the expanded `dbname` set.
    var connectionKeywords: [(String, String)] {
        // TCP keepalives and a user timeout first, so that the URL may set its own: a server
        // that vanished (a failover leaving a half-open socket) fails the connection within
        // about a minute instead of holding a statement, and the registry's reload, for good.
        // (Unix sockets ignore them.)
        var pairs: [(String, String)] = [
            ("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"), ("keepalives_count", "3"),
            ("tcp_user_timeout", "60000"),
        ]
        pairs.append(("dbname", url))
        pairs.append(("application_name", applicationName))
        pairs.append(("connect_timeout", String(connectTimeoutSeconds)))
        pairs.append(("client_encoding", "UTF8"))
        // Session settings Itaku relies on. synchronous_commit=on is what makes "committed"
        // mean "durable" for the access log (DESIGN.md invariant 1); they are checked again
        // after connecting because a role or database setting could not override -c, but a
        // pooler could.
        if !transactionPooler {
            pairs.append((
                "options",
                "-c synchronous_commit=on -c TimeZone=UTC -c DateStyle=ISO -c statement_timeout=\(statementTimeoutMilliseconds)"
            ))
        }
        for (key, value) in parameters.sorted(by: { $0.key < $1.key }) {
            pairs.append((key, value))
        }
        return pairs
    }

    var statementTimeoutMilliseconds: Int { max(0, statementTimeoutSeconds) * 1000 }

    /// What opens a transaction: `BEGIN`, and through a transaction pooler the session settings
    /// for this transaction alone, sent together in one pipeline (one round trip).
    var beginStatements: [String] {
        guard transactionPooler else { return ["BEGIN"] }
        return [
            "BEGIN", "SET LOCAL synchronous_commit TO on", "SET LOCAL TimeZone TO 'UTC'", "SET LOCAL DateStyle TO 'ISO'",
            "SET LOCAL statement_timeout TO \(statementTimeoutMilliseconds)",
        ]
    }

    /// The settings of the LISTEN connection: direct to PostgreSQL when `listenURL` is set.
    var listenConfiguration: PostgresConfiguration {
        guard let listenURL else { return self }
        var direct = self
        direct.url = listenURL
        direct.parameters = listenParameters
        direct.transactionPooler = false
        return direct
    }
}
