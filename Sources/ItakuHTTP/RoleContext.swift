import Foundation
import Hummingbird
import ItakuRegistry
import Logging

/// The roles a route admits, as a type: the route group of `RoleContext<Allowed>` lets a
/// request through to the handler only with one of them.
protocol AllowedRoles: Sendable {
    static var roles: Set<Role> { get }
}

enum Operators: AllowedRoles { static var roles: Set<Role> { [.operator_] } }
enum ClientAdmins: AllowedRoles { static var roles: Set<Role> { [.clientAdmin] } }
enum Reviewers: AllowedRoles { static var roles: Set<Role> { [.reviewer] } }
enum OperatorsAndReviewers: AllowedRoles { static var roles: Set<Role> { [.operator_, .reviewer] } }
enum OperatorsAndClientAdmins: AllowedRoles { static var roles: Set<Role> { [.operator_, .clientAdmin] } }
enum ClientAdminsAndReviewers: AllowedRoles { static var roles: Set<Role> { [.clientAdmin, .reviewer] } }
enum AdministrativeRoles: AllowedRoles { static var roles: Set<Role> { [.operator_, .clientAdmin, .reviewer] } }

/// What every handler that acts for a caller reads from its context: who, and the request's
/// id and address for the access entry.
protocol ActingContext: RequestContext {
    var actor: Principal? { get }
    var requestID: String { get }
    var clientAddress: String? { get }
    var snapshot: RegistrySnapshot? { get }
}

extension ItakuRequestContext: ActingContext {
    var actor: Principal? { principal }
}

/// The request context of an administration route, made from `ItakuRequestContext` by a
/// Hummingbird route group: its principal is not optional and holds one of `Allowed.roles`.
/// A caller without one is answered 401 or 403 before the handler runs. The console makes the
/// same context from its session to call the same functions, so the same check applies there.
struct RoleContext<Allowed: AllowedRoles>: ChildRequestContext, BodyLimitedContext, ActingContext {
    var coreContext: CoreRequestContextStorage
    let principal: Principal
    /// The registry snapshot the whole request works with (always set; optional in type only,
    /// as `ItakuRequestContext`'s).
    let snapshot: RegistrySnapshot?
    let requestID: String
    let clientAddress: String?
    var maxUploadSize: Int

    var actor: Principal? { principal }

    init(context: ItakuRequestContext) throws {
        guard let principal = context.principal else { throw Problem(.unauthorized, code: "unauthenticated", title: "Unauthenticated") }
        guard Allowed.roles.contains(principal.role) else { throw Problem.forbidden }
        self.coreContext = context.coreContext
        self.principal = principal
        self.snapshot = context.snapshot ?? RegistrySnapshot()
        self.requestID = context.requestID
        self.clientAddress = context.clientAddress
        self.maxUploadSize = context.maxUploadSize
    }
}
