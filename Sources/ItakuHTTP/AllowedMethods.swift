import HTTPTypes
import Hummingbird
import Synchronization

/// The methods each path template takes, filled by `RouteTable` as routes are registered.
/// `MethodNotAllowedMiddleware` reads it for requests no route matched: a known path asked with
/// any other method (QUERY, CONNECT, a made-up one) answers 405 with `Allow`, not 404.
final class AllowedMethods: Sendable {
    private let templates = Mutex<[(segments: [Substring], methods: [HTTPRequest.Method])]>([])

    func add(_ path: String, _ method: HTTPRequest.Method) {
        let segments = path.split(separator: "/")
        templates.withLock { templates in
            if let index = templates.firstIndex(where: { $0.segments == segments }) {
                templates[index].methods.append(method)
            } else {
                templates.append((segments, [method]))
            }
        }
    }

    /// The methods `path` takes, or nil when no route has that path (a parameter, `:name`,
    /// matches any one segment).
    func methods(for path: String) -> [HTTPRequest.Method]? {
        let parts = path.split(separator: "/")
        return templates.withLock { templates in
            templates.first { template in
                template.segments.count == parts.count
                    && zip(template.segments, parts).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
            }?.methods
        }
    }
}

struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = ItakuRequestContext
    let allowed: AllowedMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard context.endpointPath == nil || context.endpointPath == "NotFound",
                let methods = allowed.methods(for: request.uri.path), !methods.contains(request.method)
            else { throw error }
            throw Problem.methodNotAllowed(allow: methods)
        }
    }
}
