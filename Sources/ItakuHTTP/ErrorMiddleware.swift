import Hummingbird
import ItakuAccessLog
import ItakuData
import ItakuPostgres
import ItakuRegistry
import Logging
import NIOHTTP1

/// Maps every error to problem+json, in exactly one place. Unknown errors become an empty
/// `internal_error` (no internal text leaks); only the error's type is logged.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = ItakuRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let problem = Self.problem(for: error, context: context)
            if request.uri.path.hasPrefix("/console") {
                // The console answers in pages, also for paths it does not have.
                return ConsoleView(language: .of(request), snapshot: RegistrySnapshot(), path: "/console/").errorPage(problem)
            }
            return problem.render(requestID: context.requestID)
        }
    }

    static func problem(for error: any Error, context: Context) -> Problem {
        switch error {
        case let problem as Problem:
            return problem
        case let rejected as ImportsController.ImportRejected:
            return rejected.problem
        case let error as HTTPError:
            switch error.status {
            case .notFound: return .notFound
            case .contentTooLarge: return .payloadTooLarge(limit: context.maxUploadSize)
            case .methodNotAllowed: return .methodNotAllowed(allow: [])
            case .badRequest: return .badRequest(code: "bad_request", "The request could not be read.")
            case .unsupportedMediaType:
                return Problem(.unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported media type")
            default:
                return Problem(error.status, code: "http_\(error.status.code)", title: error.status.reasonPhrase)
            }
        case is HTTPParserError:
            // A body that is not HTTP, or that ended before its length (the client stopped sending
            // and its idle connection was closed): the client's doing, not the gateway's.
            return .badRequest(code: "bad_request", "The request could not be read.")
        case is PostgresEncodingError:
            // A value that no column can hold (a time past the year 9999, text with NUL): the
            // caller's input, refused before anything was sent to the database.
            return .badRequest(code: "invalid_value", "A value in the request is out of range or contains a NUL character.")
        case is DecodingError:
            // The decoder's own message can quote the offending value; say only where it failed.
            return .badRequest(code: "invalid_json", "The body is not the JSON this endpoint takes.")
        case let error as AccessLogError:
            // Fail closed: nothing is answered without its access entry.
            context.logger.warning("access log unavailable", metadata: ["itaku.error": "\(error)"])
            return Problem(.serviceUnavailable, code: "access_log_unavailable", title: "Access log unavailable",
                           detail: "The access entry could not be written; nothing was returned.", headers: [.retryAfter: "1"])
        case let error as PostgresError where error.sqlState == PostgresError.SQLState.queryCanceled:
            // db.statementTimeoutSeconds ended the statement: nothing of it took effect.
            context.logger.warning("database statement timed out", metadata: ["itaku.error": "\(error)"])
            return Problem(.serviceUnavailable, code: "database_timeout", title: "Database timeout",
                           detail: "The database did not answer in time; nothing was read or written.", headers: [.retryAfter: "1"])
        case let error as PostgresError
        where [PostgresError.SQLState.uniqueViolation, PostgresError.SQLState.serializationFailure, PostgresError.SQLState.deadlockDetected]
            .contains(error.sqlState ?? ""):
            // Two changes of the same thing at the same moment (two requests creating one dataset,
            // two imports of one key): the other committed first, this one rolled back whole.
            return Problem(.conflict, code: "concurrent_change", title: "Conflict",
                           detail: "Another change of the same item was made at the same moment; nothing of this one was written. Try again.")
        case DataKeys.KeyError.destroyed:
            // The tenant's data key is gone (its contract ended): its records are disposed of.
            return .conflict(code: "tenant_ended", "The tenant's contract ended and its data was disposed of.")
        case let error as DataKeys.KeyError:
            // The tenant's key file is there, but this instance's keyring cannot unwrap it (a
            // keyring other than the one that made it, or a damaged file): an operator's fault,
            // said in the log with the tenant's id; the caller gets no data and a stable code.
            context.logger.error("data key unreadable", metadata: ["itaku.error": "\(error)"])
            return .dataKeyUnavailable
        case let error as PostgresError where error.isConnectionError || error.kind == .unsafeSession:
            context.logger.warning("database unavailable", metadata: ["itaku.error": "\(error)"])
            return .databaseUnavailable
        default:
            context.logger.error("unhandled error", metadata: ["itaku.error.type": "\(type(of: error))"])
            return .internalError
        }
    }
}
