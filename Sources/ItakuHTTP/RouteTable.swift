import HTTPTypes
import Hummingbird

/// Registers routes and, for every path, answers the methods it does not take with 405 and an
/// `Allow` header instead of Hummingbird's 404. Each route admits bodies up to its own limit:
/// `http.maxBodyBytes`, or a larger one that the route itself asks for (record imports).
struct RouteTable {
    private(set) var router: Router<ItakuRequestContext>
    private var methods: [String: [HTTPRequest.Method]] = [:]
    private var order: [String] = []
    let maxBodyBytes: Int
    /// Shared with `MethodNotAllowedMiddleware`, for methods no responder below covers.
    let allowed: AllowedMethods

    init(router: Router<ItakuRequestContext>, maxBodyBytes: Int = 1 << 20, allowed: AllowedMethods = AllowedMethods()) {
        self.router = router
        self.maxBodyBytes = maxBodyBytes
        self.allowed = allowed
    }

    mutating func on(
        _ path: String, method: HTTPRequest.Method, maxBodyBytes: Int? = nil,
        use handler: @escaping @Sendable (Request, ItakuRequestContext) async throws -> Response
    ) {
        router.on(RouterPath(path), method: method, use: Self.limited(to: maxBodyBytes ?? self.maxBodyBytes, handler))
        if methods[path] == nil { order.append(path) }
        methods[path, default: []].append(method)
        allowed.add(path, method)
    }

    /// Registers a route whose handler gets a child context (`IntegrationRequestContext`): made
    /// by a Hummingbird route group, so the handler's principal is checked before it runs.
    mutating func on<Child: ChildRequestContext & BodyLimitedContext>(
        _ path: String, method: HTTPRequest.Method, context: Child.Type, maxBodyBytes: Int? = nil,
        use handler: @escaping @Sendable (Request, Child) async throws -> Response
    ) where Child.ParentContext == ItakuRequestContext {
        let limit = maxBodyBytes ?? self.maxBodyBytes
        router.group(context: Child.self).on(RouterPath(path), method: method) { request, context in
            if let length = request.headers.value(.contentLength).flatMap(Int.init), length > limit {
                throw Problem.payloadTooLarge(limit: limit)
            }
            var context = context
            context.maxUploadSize = limit
            return try await handler(request, context)
        }
        if methods[path] == nil { order.append(path) }
        methods[path, default: []].append(method)
        allowed.add(path, method)
    }

    /// The limit belongs to the matched route; a declared length above it is refused before a
    /// byte of the body is read, and reading past it fails with 413.
    private static func limited(
        to limit: Int, _ handler: @escaping @Sendable (Request, ItakuRequestContext) async throws -> Response
    ) -> @Sendable (Request, ItakuRequestContext) async throws -> Response {
        { request, context in
            if let length = request.headers.value(.contentLength).flatMap(Int.init), length > limit {
                throw Problem.payloadTooLarge(limit: limit)
            }
            var context = context
            context.maxUploadSize = limit
            return try await handler(request, context)
        }
    }

    /// Adds the 405 responders; call once after every route is registered.
    mutating func finish() -> Router<ItakuRequestContext> {
        let all: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete, .options, .trace]
        for path in order {
            let allowed = methods[path] ?? []
            for method in all where !allowed.contains(method) {
                router.on(RouterPath(path), method: method, use: Self.limited(to: maxBodyBytes) { _, _ -> Response in
                    throw Problem.methodNotAllowed(allow: allowed)
                })
            }
        }
        return router
    }
}

/// A request context whose body limit the matched route sets.
protocol BodyLimitedContext: RequestContext {
    var maxUploadSize: Int { get set }
}

extension ItakuRequestContext: BodyLimitedContext {}
