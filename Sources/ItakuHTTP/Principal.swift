import Foundation
import HTTPTypes
import Hummingbird
import ItakuRegistry
import Logging

/// Who is calling: the key's role and what it is bound to.
public struct Principal: Sendable, Equatable {
    public var keyID: UUID
    public var role: Role
    public var tenantID: UUID?
    public var integrationID: UUID?
}

/// Authenticates `/v1` calls with `Authorization: Bearer itk_…` against the request's registry
/// snapshot and puts the principal and the snapshot into the context.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ItakuRequestContext
    let registry: Registry

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // By the path's first segment, as the router reads it (it skips empty segments: `//v1/…`
        // is routed like `/v1/…` and so is authenticated like it).
        guard request.uri.path.split(separator: "/").first == "v1" else { return try await next(request, context) }
        var context = context
        // Fail closed: a registry this instance could not read for too long may still hold keys
        // revoked, agents deactivated or assignments ended since.
        guard registry.isFresh else { throw Problem.registryUnavailable }
        let snapshot = registry.snapshot
        context.snapshot = snapshot
        guard let header = request.headers.value(.authorization), header.hasPrefix("Bearer "),
            let key = APIKeys.authenticate(String(header.dropFirst(7)), in: snapshot)
        else {
            throw Problem(
                .unauthorized, code: "unauthenticated", title: "Unauthenticated",
                detail: "Send a valid key as Authorization: Bearer itk_…", headers: [.wwwAuthenticate: "Bearer"]
            )
        }
        context.principal = Principal(keyID: key.id, role: key.role, tenantID: key.tenantID, integrationID: key.integrationID)
        context.logger[metadataKey: "itaku.role"] = .string(key.role.rawValue)
        return try await next(request, context)
    }
}
