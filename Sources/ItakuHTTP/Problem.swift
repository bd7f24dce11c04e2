import Foundation
import HTTPTypes
import Hummingbird
import ItakuCore
import NIOCore

/// An RFC 9457 `application/problem+json` error with Itaku's stable `code`.
///
/// Every error a client sees is one of these; `ErrorMiddleware` maps everything else onto one
/// in exactly one place. `detail` is written for the caller and never carries personal data,
/// SQL, or internal error text.
public struct Problem: Error, HTTPResponseError, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var code: String
    public var title: String
    public var detail: String?
    /// For validation errors: where in the request the problem is (`fields[2].category`).
    public var pointer: String?
    /// For agent calls: the access-log entry id to quote to support.
    public var accessID: String?
    /// For validation errors: every issue found, not only the first.
    public var errors: [Issue]?
    public var headers: HTTPFields

    public struct Issue: Sendable, Equatable, Encodable {
        public var code: String
        /// The field (or JSON path) at fault; absent when the whole line is.
        public var pointer: String?
        public var line: Int?
        public init(code: String, pointer: String?, line: Int? = nil) {
            self.code = code
            self.pointer = pointer
            self.line = line
        }

        /// The issue with a name or label people read (`PrintableText.nameProblem`), if any.
        /// `required` is the code for empty text; nil when empty text is allowed.
        public static func name(_ text: String?, pointer: String, required: String? = "name_required") -> Issue? {
            guard let text else { return nil }
            switch PrintableText.nameProblem(text) {
            case nil: return nil
            case .empty: return required.map { Issue(code: $0, pointer: pointer) }
            case let problem?: return Issue(code: problem.rawValue, pointer: pointer)
            }
        }
    }

    public init(
        _ status: HTTPResponse.Status, code: String, title: String, detail: String? = nil,
        pointer: String? = nil, accessID: String? = nil, headers: HTTPFields = [:]
    ) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.pointer = pointer
        self.accessID = accessID
        self.headers = headers
    }

    struct Body: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String?
        var code: String
        var pointer: String?
        var access_id: String?
        var errors: [Issue]?
        var request_id: String?
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let requestID = (context as? ItakuRequestContext)?.requestID
        return render(requestID: requestID)
    }

    func render(requestID: String?) -> Response {
        let body = Body(
            type: "urn:itaku:problem:\(code)", title: title, status: Int(status.code), detail: detail,
            code: code, pointer: pointer, access_id: accessID, errors: errors, request_id: requestID
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(body)) ?? Data()
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

// MARK: - The problems of the HTTP layer itself

extension Problem {
    public static let notFound = Problem(.notFound, code: "not_found", title: "Not found")
    public static func methodNotAllowed(allow: [HTTPRequest.Method]) -> Problem {
        Problem(
            .methodNotAllowed, code: "method_not_allowed", title: "Method not allowed",
            headers: [.allow: allow.map(\.rawValue).joined(separator: ", ")]
        )
    }
    public static func payloadTooLarge(limit: Int) -> Problem {
        Problem(.contentTooLarge, code: "payload_too_large", title: "Request body too large",
                detail: "The body may be at most \(limit) bytes.")
    }
    public static let databaseUnavailable = Problem(
        .serviceUnavailable, code: "database_unavailable", title: "Database unavailable",
        detail: "Itaku cannot reach its database; nothing was read or written.",
        headers: [.retryAfter: "1"]
    )
    /// The tenant's data key cannot be unwrapped with this instance's keyring: no record of the
    /// tenant is opened or sealed until an operator mends the keyring or the key file.
    public static let dataKeyUnavailable = Problem(
        .serviceUnavailable, code: "data_key_unavailable", title: "Data key unavailable",
        detail: "This instance cannot read the tenant's data key; nothing was read or written."
    )
    /// The instance could not read its registry within `registry.maxAgeSeconds`: it does not act
    /// on keys, purposes or assignments that may have changed since.
    public static let registryUnavailable = Problem(
        .serviceUnavailable, code: "registry_unavailable", title: "Registry unavailable",
        detail: "This instance could not read its keys and purposes recently; nothing was read or written.",
        headers: [.retryAfter: "5"]
    )
    public static let internalError = Problem(.internalServerError, code: "internal_error", title: "Internal error")
    public static func badRequest(code: String, _ detail: String, pointer: String? = nil) -> Problem {
        Problem(.badRequest, code: code, title: "Bad request", detail: detail, pointer: pointer)
    }
    public static let forbidden = Problem(.forbidden, code: "forbidden", title: "Forbidden",
                                          detail: "This key's role may not use this endpoint.")
    /// 422 naming the first issue in `code`/`pointer` and listing all of them in `errors`.
    public static func invalid(_ issues: [Issue]) -> Problem {
        var problem = Problem(
            .unprocessableContent, code: issues.first?.code ?? "invalid", title: "Invalid request",
            detail: "The request does not satisfy the rules; see errors.", pointer: issues.first?.pointer
        )
        problem.errors = issues
        return problem
    }
    public static func conflict(code: String, _ detail: String) -> Problem {
        Problem(.conflict, code: code, title: "Conflict", detail: detail)
    }
}
