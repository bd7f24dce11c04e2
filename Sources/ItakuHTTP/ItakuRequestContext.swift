import Hummingbird
import ItakuRegistry
import Logging
import NIOCore

/// The request context of every Itaku route: Hummingbird's core storage plus the request id
/// and the body limit the request was admitted under.
public struct ItakuRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// `Itaku-Request-Id`: taken from the caller when well-formed, otherwise generated.
    public var requestID: String
    public var maxUploadSize: Int
    /// Set by `AuthMiddleware` on `/v1` routes.
    public var principal: Principal?
    /// The registry snapshot the whole request works with.
    public var snapshot: RegistrySnapshot?
    /// The peer's address (IP only, no port), as the connection saw it; `RequestLogMiddleware`
    /// replaces it with the trusted proxy's `X-Forwarded-For` when `http.trustedProxies` names
    /// the peer.
    public var clientAddress: String?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.requestID = ""
        self.maxUploadSize = 1 << 20
        self.clientAddress = source.channel.remoteAddress?.ipAddress
    }
}
