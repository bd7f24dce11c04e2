import Foundation
import Hummingbird
import ItakuRegistry
import Logging

/// The request context of the agent data API's routes, made from `ItakuRequestContext` by the
/// route group: the caller is an integration, with its principal and integration known at
/// compile time. A caller that is not becomes 401 or 403 before any handler runs.
struct IntegrationRequestContext: ChildRequestContext, BodyLimitedContext {
    var coreContext: CoreRequestContextStorage
    let principal: Principal
    let integrationID: UUID
    let snapshot: RegistrySnapshot
    let requestID: String
    let clientAddress: String?
    var maxUploadSize: Int

    init(context: ItakuRequestContext) throws {
        guard let principal = context.principal, let snapshot = context.snapshot else {
            throw Problem(.unauthorized, code: "unauthenticated", title: "Unauthenticated")
        }
        guard principal.role == .integration, let integrationID = principal.integrationID else { throw Problem.forbidden }
        self.coreContext = context.coreContext
        self.principal = principal
        self.integrationID = integrationID
        self.snapshot = snapshot
        self.requestID = context.requestID
        self.clientAddress = context.clientAddress
        self.maxUploadSize = context.maxUploadSize
    }
}
