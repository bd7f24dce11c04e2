import Configuration
import Foundation
import Hummingbird
import ItakuAccessLog
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
    let logger: Logger = {
        var logger = logger ?? Logger(label: "itaku")
        logger.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
        return logger
    }()

    let keyring = try Keyring.load(
        file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: configuration.generateKeyring
    )
    let database = PostgresClient(
        configuration: PostgresConfiguration(
            url: configuration.databaseURL,
            minimumConnections: configuration.poolMinimum,
            maximumConnections: configuration.poolMaximum,
            connectTimeoutSeconds: configuration.connectTimeoutSeconds
        ),
        logger: logger
    )
    let metrics = HTTPMetrics()
    let registry = Registry(database: database, logger: logger)

    let router = Router(context: ItakuRequestContext.self)
    router.add(middleware: RequestLogMiddleware(
        metrics: metrics, maxBodyBytes: configuration.maxBodyBytes, maxImportBytes: configuration.maxImportBytes
    ))
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: AuthMiddleware(registry: registry))
    var routes = RouteTable(router: router)
    HealthController(database: database, metrics: metrics, openAPIDocument: try openAPIDocument())
        .addRoutes(to: &routes)
    let accessLog = AccessLogWriter(database: database, keyring: keyring, instanceID: configuration.instanceID, logger: logger)
    let admin = Admin(database: database, registry: registry, accessLog: accessLog)
    TenantsController(admin: admin).addRoutes(to: &routes)
    DatasetsController(admin: admin).addRoutes(to: &routes)
    PurposesController(admin: admin).addRoutes(to: &routes)
    AgentsController(admin: admin).addRoutes(to: &routes)
    AssignmentsController(admin: admin).addRoutes(to: &routes)
    IntegrationsController(admin: admin).addRoutes(to: &routes)
    ImportsController(admin: admin, keyring: keyring).addRoutes(to: &routes)
    AccessLogController(admin: admin, keyring: keyring).addRoutes(to: &routes)
    let tokens = AgentTokens(
        keys: try await AgentTokens.demo(
            keyring: keyring, jwksFile: configuration.agentJWKSFile, pemFile: configuration.agentPublicKeyFile
        ),
        issuer: configuration.agentTokenIssuer, audience: configuration.agentTokenAudience
    )
    AgentController(admin: admin, keyring: keyring, tokens: tokens, caseBinding: .seconds(configuration.caseBindingMinutes * 60))
        .addRoutes(to: &routes)

    var app = Application(
        router: routes.finish(),
        configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: nil),
        services: [database, registry, PartitionMaintenance(database: database, logger: logger), accessLog],
        logger: logger
    )
    app.beforeServerStarts {
        if configuration.migrateOnStart {
            try await migrate(url: configuration.migrationURL, connectTimeout: configuration.connectTimeoutSeconds, logger: logger)
        }
        // The registry before the first request (the database may still be down: /readyz says so).
        try? await registry.reload()
    }
    return app
}

/// Applies pending migrations over a short-lived owner connection.
public func migrate(url: String, connectTimeout: Int = 5, logger: Logger) async throws {
    try await Migrator.migrate(
        PostgresConfiguration(
            url: url, minimumConnections: 0, maximumConnections: 1, applicationName: "itaku-migrate",
            connectTimeoutSeconds: connectTimeout
        ),
        logger: logger
    )
}

/// The OpenAPI contract shipped with the binary.
func openAPIDocument() throws -> ByteBuffer {
    guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
        throw Problem.internalError
    }
    return ByteBuffer(bytes: try Data(contentsOf: url))
}
