import HTTPTypes
import Hummingbird

/// Registers routes and, for every path, answers the methods it does not take with 405 and an
/// `Allow` header instead of Hummingbird's 404.
struct RouteTable {
    private(set) var router: Router<ItakuRequestContext>
    private var methods: [String: [HTTPRequest.Method]] = [:]
    private var order: [String] = []

    init(router: Router<ItakuRequestContext>) {
        self.router = router
    }

    mutating func on(
        _ path: String, method: HTTPRequest.Method,
        use handler: @escaping @Sendable (Request, ItakuRequestContext) async throws -> Response
    ) {
        router.on(RouterPath(path), method: method, use: handler)
        if methods[path] == nil { order.append(path) }
        methods[path, default: []].append(method)
    }

    /// Adds the 405 responders; call once after every route is registered.
    mutating func finish() -> Router<ItakuRequestContext> {
        let all: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]
        for path in order {
            let allowed = methods[path] ?? []
            for method in all where !allowed.contains(method) {
                router.on(RouterPath(path), method: method) { _, _ -> Response in
                    throw Problem.methodNotAllowed(allow: allowed)
                }
            }
        }
        return router
    }
}
