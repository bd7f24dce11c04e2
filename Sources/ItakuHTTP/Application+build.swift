import Configuration
import Foundation
import Hummingbird
import ItakuAccessLog
import ItakuAgentAPI
import ItakuCore
import ItakuData
import ItakuPostgres
import ItakuRegistry
import ItakuSchema
import Logging
import NIOCore
import ServiceLifecycle

/// Builds the Itaku application from configuration. `main` and the tests use this same builder.
///
/// Services run in the application's `ServiceGroup`: the connection pool, then the HTTP
/// server. On SIGTERM/SIGINT the server stops accepting, lets in-flight requests finish, and
/// then the pool closes. Pending migrations run (as the owner role) before the server starts
/// when `db.migrateOnStart` is set.
public func buildApplication(reader: ConfigReader, logger: Logger? = nil) async throws -> some ApplicationProtocol {
    let configuration = ItakuConfiguration(reader: reader)
    try configuration.check()
    let logger: Logger = {
        var logger = logger ?? Logger(label: "itaku")
        logger.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
        return logger
    }()

    let keyring = try Keyring.load(
        file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: configuration.generateKeyring
    )
    var poolConfiguration = PostgresConfiguration(
        url: configuration.databaseURL,
        minimumConnections: configuration.poolMinimum,
        maximumConnections: configuration.poolMaximum,
        connectTimeoutSeconds: configuration.connectTimeoutSeconds
    )
    poolConfiguration.requireUnprivilegedRole = true
    poolConfiguration.statementTimeoutSeconds = configuration.statementTimeoutSeconds
    poolConfiguration.transactionPooler = configuration.transactionPooler
    if configuration.transactionPooler && configuration.listenURL == nil {
        logger.critical("db.pooler is transaction but db.listenUrl is not set: the registry's LISTEN needs a direct connection")
        throw ConfigurationError.listenURLMissing
    }
    for setting in configuration.unverifiedDatabaseURLs {
        logger.critical("\(setting) reaches PostgreSQL over TCP without verifying its certificate: add sslmode=verify-full (and sslrootcert)")
    }
    let database = PostgresClient(configuration: poolConfiguration, logger: logger)
    // Reading across tenants takes a role of its own (migration 0009): a small pool.
    let readerSettings = configuration.readerConnection()
    var readerConfiguration = PostgresConfiguration(
        url: readerSettings.url, parameters: readerSettings.parameters, minimumConnections: 1,
        maximumConnections: 4, applicationName: "itaku-reader", connectTimeoutSeconds: configuration.connectTimeoutSeconds
    )
    readerConfiguration.requireUnprivilegedRole = true
    readerConfiguration.statementTimeoutSeconds = configuration.statementTimeoutSeconds
    readerConfiguration.transactionPooler = configuration.transactionPooler
    // The registry listens through the reader pool's client: past the pooler when told.
    readerConfiguration.listenURL = configuration.listenURL
    let reader = PostgresClient(configuration: readerConfiguration, logger: logger)
    let metrics = HTTPMetrics()
    let registry = Registry(database: reader, logger: logger, maxAge: .seconds(Int64(configuration.registryMaxAgeSeconds)))

    let router = Router(context: ItakuRequestContext.self)
    router.add(middleware: RequestLogMiddleware(
        metrics: metrics, maxBodyBytes: configuration.maxBodyBytes, trustedProxies: Set(configuration.trustedProxies)
    ))
    let allowedMethods = AllowedMethods()
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: MethodNotAllowedMiddleware(allowed: allowedMethods))
    router.add(middleware: AuthMiddleware(registry: registry))
    var routes = RouteTable(router: router, maxBodyBytes: configuration.maxBodyBytes, allowed: allowedMethods)
    HealthController(database: database, registry: registry, metrics: metrics, openAPIDocument: try openAPIDocument())
        .addRoutes(to: &routes)
    let accessLog = AccessLogWriter(database: database, keyring: keyring, instanceID: configuration.instanceID, logger: logger)
    let admin = Admin(
        database: database, reader: reader, registry: registry, accessLog: accessLog,
        dataKeys: DataKeys(configuration: configuration, keyring: keyring)
    )
    TenantsController(admin: admin).addRoutes(to: &routes)
    DatasetsController(admin: admin, keyring: keyring).addRoutes(to: &routes)
    let purposes = PurposesController(admin: admin)
    purposes.addRoutes(to: &routes)
    AgentsController(admin: admin).addRoutes(to: &routes)
    AssignmentsController(admin: admin).addRoutes(to: &routes)
    IntegrationsController(admin: admin).addRoutes(to: &routes)
    ImportsController(
        admin: admin, keyring: keyring, maxImportBytes: configuration.maxImportBytes,
        timeout: .seconds(Int64(configuration.importTimeoutSeconds)), running: Gate(limit: max(1, configuration.poolMaximum / 4))
    ).addRoutes(to: &routes)
    let accessLogController = AccessLogController(admin: admin, keyring: keyring)
    accessLogController.addRoutes(to: &routes)
    ConsoleController(
        admin: admin,
        sessions: ConsoleSessions(
            database: database, lifetime: .seconds(configuration.consoleSessionMinutes * 60),
            idle: .seconds(configuration.consoleIdleMinutes * 60)
        ),
        accessLog: accessLogController, purposes: purposes,
        reports: ConsoleReports(admin: admin, accessLog: accessLogController)
    ).addRoutes(to: &routes)
    let retention = RetentionService(
        database: database, registry: registry, accessLog: accessLog, keyring: keyring, dataKeys: admin.dataKeys,
        instanceID: configuration.instanceID,
        interval: .seconds(configuration.retentionIntervalSeconds), logger: logger
    )
    SubjectRequestsController(admin: admin, keyring: keyring, retention: retention).addRoutes(to: &routes)
    let tokens = AgentTokens(
        keys: try await AgentTokens.demo(
            keyring: keyring, jwksFile: configuration.agentJWKSFile, pemFile: configuration.agentPublicKeyFile
        ),
        issuer: configuration.agentTokenIssuer, audience: configuration.agentTokenAudience,
        maxLifetime: TimeInterval(configuration.maxTokenMinutes * 60),
        requireAuthorizedParty: configuration.requireAuthorizedParty
    )
    if configuration.agentJWKSFile == nil && configuration.agentPublicKeyFile == nil && !configuration.isEmbeddedDatabase {
        // Outside the local demo, agent identity must come from the contact center's issuer.
        logger.critical(
            "agent tokens are verified with the keyring's demo issuer key: set agents.jwksFile or agents.publicKeyFile",
            metadata: ["itaku.config": "agents.jwksFile"]
        )
    }
    let agentData = AgentDataService(
        store: PostgresAgentRecordStore(database: database, accessLog: accessLog), accessLog: accessLog, keyring: keyring,
        dataKeys: admin.dataKeys, caseBinding: .seconds(configuration.caseBindingMinutes * 60),
        assertedLookupsPerMinute: configuration.assertedLookupsPerMinute
    )
    AgentController(admin: admin, tokens: tokens, service: agentData).addRoutes(to: &routes)

    var app = Application(
        router: routes.finish(),
        // A body that stops arriving closes its connection: an import holding a transaction
        // open (and a pooled connection) for a stalled upload ends and rolls back.
        server: .http1(configuration: .init(idleTimeout: .seconds(Int64(configuration.idleTimeoutSeconds)))),
        configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: nil),
        services: [database, reader, registry, PartitionMaintenance(database: database, logger: logger), accessLog, retention],
        logger: logger
    )
    app.beforeServerStarts {
        if configuration.migrateOnStart {
            try await migrate(url: configuration.migrationURL, connectTimeout: configuration.connectTimeoutSeconds, logger: logger)
        }
        // Refuse to serve as a role that RLS and the log's grants do not bind. (A database that
        // is down now is not fatal: every pooled connection is checked the same way.)
        for (pool, key) in [(database, "db.url"), (reader, "db.readerUrl")] {
            do {
                try await pool.withConnection { _ in }
            } catch let error as PostgresError where error.kind == .unsafeSession {
                logger.critical(
                    "refusing to serve: \(key) connects as a superuser, a role that bypasses row-level security, or an owner",
                    metadata: ["itaku.error": "\(error)"]
                )
                throw error
            } catch {}
        }
        // The registry before the first request (the database may still be down: /readyz says so).
        try? await registry.reload()
    }
    return app
}

/// Applies pending migrations over a short-lived owner connection.
public func migrate(url: String, connectTimeout: Int = 5, logger: Logger) async throws {
    guard !url.isEmpty else {
        logger.critical("db.migrationUrl is not set: with db.url set, name the owner role's URL too")
        throw ConfigurationError.migrationURLMissing
    }
    try await Migrator.migrate(
        PostgresConfiguration(
            url: url, minimumConnections: 0, maximumConnections: 1, applicationName: "itaku-migrate",
            connectTimeoutSeconds: connectTimeout
        ),
        logger: logger
    )
}

public enum ConfigurationError: Error, CustomStringConvertible {
    case migrationURLMissing
    case listenURLMissing

    public var description: String {
        switch self {
        case .migrationURLMissing: "db.migrationUrl is not set (it no longer defaults to db.url)"
        case .listenURLMissing: "db.listenUrl is not set (db.pooler = transaction needs a direct connection for LISTEN)"
        }
    }
}

/// The OpenAPI contract shipped with the binary.
func openAPIDocument() throws -> ByteBuffer {
    guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
        throw Problem.internalError
    }
    return ByteBuffer(bytes: try Data(contentsOf: url))
}
