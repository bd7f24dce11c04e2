import Hummingbird
import Logging
import NIOCore

/// The request context of every Itaku route: Hummingbird's core storage plus the request id
/// and the body limit the request was admitted under.
public struct ItakuRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// `Itaku-Request-Id`: taken from the caller when well-formed, otherwise generated.
    public var requestID: String
    public var maxUploadSize: Int

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.requestID = ""
        self.maxUploadSize = 1 << 20
    }
}
