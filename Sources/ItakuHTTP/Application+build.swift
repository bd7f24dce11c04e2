import Configuration
import Foundation
import Hummingbird
import ItakuCore
import ItakuPostgres
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

    _ = try Keyring.load(
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

    let router = Router(context: ItakuRequestContext.self)
    router.add(middleware: RequestLogMiddleware(metrics: metrics, maxBodyBytes: configuration.maxBodyBytes))
    router.add(middleware: ErrorMiddleware())
    var routes = RouteTable(router: router)
    HealthController(database: database, metrics: metrics, openAPIDocument: try openAPIDocument())
        .addRoutes(to: &routes)

    var app = Application(
        router: routes.finish(),
        configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: nil),
        services: [database],
        logger: logger
    )
    if configuration.migrateOnStart {
        app.beforeServerStarts {
            try await migrate(url: configuration.migrationURL, connectTimeout: configuration.connectTimeoutSeconds, logger: logger)
        }
    }
    return app
}

/// Applies pending migrations over a short-lived owner connection.
public func migrate(url: String, connectTimeout: Int = 5, logger: Logger) async throws {
    let owner = PostgresClient(
        configuration: PostgresConfiguration(
            url: url, minimumConnections: 0, maximumConnections: 1, applicationName: "itaku-migrate",
            connectTimeoutSeconds: connectTimeout
        ),
        logger: logger
    )
    do {
        try await Migrator(client: owner, logger: logger).migrate()
        await owner.shutdown()
    } catch {
        await owner.shutdown()
        throw error
    }
}

/// The OpenAPI contract shipped with the binary.
func openAPIDocument() throws -> ByteBuffer {
    guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
        throw Problem.internalError
    }
    return ByteBuffer(bytes: try Data(contentsOf: url))
}
