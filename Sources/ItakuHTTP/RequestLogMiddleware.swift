import Foundation
import HTTPTypes
import Hummingbird
import ItakuCore
import Logging

extension HTTPField.Name {
    static let itakuRequestID = Self("Itaku-Request-Id")!
    static let xForwardedFor = Self("X-Forwarded-For")!
}

/// Outermost middleware: gives the request its id, and after the response writes one
/// structured log line and the HTTP metrics, labelled by route template (never the raw path or
/// query string, which can hold personal data). Body limits belong to the matched route
/// (`RouteTable`); until a route matched, `http.maxBodyBytes` applies.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = ItakuRequestContext

    let metrics: HTTPMetrics
    let maxBodyBytes: Int
    /// `http.trustedProxies`: peers whose `X-Forwarded-For` is believed.
    var trustedProxies: Set<String> = []

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.requestID = Self.requestID(from: request.headers.value(.itakuRequestID))
        // X-Forwarded-For is read only from a trusted proxy.
        if let peer = context.clientAddress, trustedProxies.contains(peer) {
            context.clientAddress = Self.clientAddress(peer: peer, forwardedFor: request.headers[values: .xForwardedFor], trusted: trustedProxies)
        }
        context.maxUploadSize = maxBodyBytes
        context.logger[metadataKey: "itaku.request_id"] = .string(context.requestID)
        let start = ContinuousClock.now

        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = ErrorMiddleware.problem(for: error, context: context).render(requestID: context.requestID)
        }
        response.headers[.itakuRequestID] = context.requestID

        let elapsed = ContinuousClock.now - start
        // The matched route template; anything unmatched shares one label so that raw paths
        // (which may carry phone numbers) never become metric labels or log fields.
        let route = context.endpointPath.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "unmatched"
        metrics.record(method: request.method.rawValue, route: route, status: Int(response.status.code), duration: elapsed)
        // Milliseconds with three decimals, from whole microseconds (no printf on every request).
        let micros = max(0, elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)
        let fraction = String(micros % 1000)
        let milliseconds = "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
        context.logger.info(
            "request",
            metadata: [
                "http.method": .string(request.method.rawValue),
                "http.route": .string(route),
                "http.status": .stringConvertible(Int(response.status.code)),
                "http.duration_ms": .string(milliseconds),
            ]
        )
        return response
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
    /// address in `X-Forwarded-For` that is not itself a trusted proxy. Only text shaped like an
    /// IP address is taken, so the access log never stores caller-chosen text here.
    static func clientAddress(peer: String?, forwardedFor: [String], trusted: Set<String>) -> String? {
        guard let peer, trusted.contains(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() where !trusted.contains(hop) {
            return isAddress(hop) ? hop : peer
        }
        return peer
    }

    /// An IPv4 or IPv6 address as `inet_pton` reads it: never other text (a phone number is
    /// made of digits too).
    static func isAddress(_ text: String) -> Bool {
        guard (2...45).contains(text.utf8.count) else { return false }
        var buffer = in6_addr()
        return inet_pton(AF_INET, text, &buffer) == 1 || inet_pton(AF_INET6, text, &buffer) == 1
    }

    /// A caller's id is kept if it is 1–64 characters of `[A-Za-z0-9._-]` with no run of
    /// `maxDigitRun` + 1 digits, separators aside (unless it is a UUID); anything else is
    /// replaced, so a log line and an access entry never carry free caller text, nor a number
    /// that may be a caller's (a phone number, a postal code, an individual number:
    /// `tel-090-1234-5678`).
    static func requestID(from header: String?) -> String {
        if let header, (1...64).contains(header.utf8.count),
            header.utf8.allSatisfy({ byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x2E || byte == 0x5F
            }),
            longestDigitRun(header) <= maxDigitRun || (header.utf8.count == 36 && UUID(uuidString: header) != nil)
        {
            return header
        }
        return UUID.random().lowercasedString
    }

    /// Digits in a row that a kept request id may have: fewer than a postal code (7).
    static let maxDigitRun = 6

    /// The most digits in a row, the separators `-`, `.` and `_` between them aside, and a
    /// single letter other than a hex digit too (`090-1234-5678` and `090x1234x5678` are runs of
    /// 11). A hex letter ends a run (hex ids, such as a proxy's 32-digit request id, keep
    /// working), and so do two letters of any kind.
    static func longestDigitRun(_ text: String) -> Int {
        var longest = 0, run = 0, letters = 0
        for byte in text.utf8 {
            if byte >= 0x30 && byte <= 0x39 {
                if letters >= 2 { run = 0 }
                letters = 0
                run += 1
            } else if (byte >= 0x61 && byte <= 0x66) || (byte >= 0x41 && byte <= 0x46) {
                run = 0
                letters = 0
            } else if byte != 0x2D && byte != 0x2E && byte != 0x5F {
                letters += 1
            }
            longest = max(longest, run)
        }
        return longest
    }
}
