import Foundation
import HTTPTypes
import Hummingbird
import ItakuCore
import ItakuRegistry
import NIOCore

/// What a console page is rendered with: the language, the signed-in principal (nil on the
/// sign-in page) and its session's form token, and the page's own path (for the language switch).
struct ConsoleView: Sendable {
    var language: ConsoleLanguage
    var principal: Principal? = nil
    var csrf: String? = nil
    var snapshot: RegistrySnapshot
    /// The path and query of this page, for the language switch to come back to.
    var path: String
    /// A POST's form fields (its token already checked).
    var form: [String: String] = [:]

    func t(_ text: ConsoleText) -> String { HTML.escape(text(language)) }

    /// A hidden form field carrying the session's form token.
    var csrfField: String {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(HTML.escape(csrf ?? ""))\">"
    }

    // MARK: Responses

    /// Every console response is uncacheable, unframeable and runs no script from anywhere.
    static func securityHeaders(_ contentType: String) -> HTTPFields {
        [
            .contentType: contentType,
            .cacheControl: "no-store",
            .contentSecurityPolicy:
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            HTTPField.Name("X-Frame-Options")!: "DENY",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
        ]
    }

    /// A whole page: the layout around `main`, whose HTML the caller has already escaped.
    func page(_ title: String, _ main: String, status: HTTPResponse.Status = .ok) -> Response {
        var html = "<!DOCTYPE html>\n<html lang=\"\(language.rawValue)\"><head><meta charset=\"utf-8\">"
        html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        html += "<title>\(HTML.escape(title)) · \(t(.appName))</title>"
        html += "<link rel=\"stylesheet\" href=\"/console/console.css\"></head><body>"
        html += "<header><a class=\"brand\" href=\"/console/\">\(t(.appName))</a>"
        if let principal {
            html += "<nav id=\"nav\"><a href=\"/console/tenants\">\(t(.tenants))</a>"
            if principal.role == .reviewer { html += "<a href=\"/console/access-log\">\(t(.accessLog))</a>" }
            html += "<span class=\"who\">\(HTML.escape(principal.role.rawValue))</span>"
            html += "<form id=\"sign-out\" method=\"post\" action=\"/console/sign-out\">\(csrfField)"
            html += "<button id=\"sign-out-button\" type=\"submit\">\(t(.signOut))</button></form></nav>"
        }
        let back = HTML.escape(Self.percentEncoded(path))
        html += "<span class=\"languages\"><a id=\"lang-ja\" href=\"/console/lang/ja?back=\(back)\">日本語</a>"
        html += "<a id=\"lang-en\" href=\"/console/lang/en?back=\(back)\">English</a></span></header>"
        html += "<main id=\"main\"><h1>\(HTML.escape(title))</h1>\(main)</main></body></html>\n"
        return Response(status: status, headers: Self.securityHeaders("text/html; charset=utf-8"), body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// The page of an error: its stable code and a sentence, never the path or a value asked for
    /// (a foreign tenant's page and a missing one are the same page).
    func errorPage(_ problem: Problem) -> Response {
        let title: String
        let sentence: String
        switch problem.code {
        case "not_found": (title, sentence) = (t(.notFound), "")
        case "forbidden": (title, sentence) = (t(.forbidden), "")
        case "csrf_failed": (title, sentence) = (t(.error), t(.csrfFailed))
        case "invalid_key": (title, sentence) = (t(.signIn), t(.invalidKey))
        default: (title, sentence) = (t(.error), HTML.escape(problem.title))
        }
        var main = "<p class=\"error-code\">\(HTML.escape(problem.code))</p>"
        if !sentence.isEmpty { main += "<p class=\"error\">\(sentence)</p>" }
        // What the caller can mend: the problem's own sentence (a fixed text, never a value) and
        // which input it is about.
        if problem.status.code < 500, let detail = problem.detail { main += "<p class=\"error-detail\">\(HTML.escape(detail))</p>" }
        let issues = problem.errors ?? problem.pointer.map { [Problem.Issue(code: problem.code, pointer: $0)] }
        if let issues, !issues.isEmpty {
            main += "<ul id=\"problems\">" + issues.map {
                "<li><code>\(HTML.escape($0.code))</code>" + ($0.pointer.map { " — <code>\(HTML.escape($0))</code>" } ?? "") + "</li>"
            }.joined() + "</ul>"
        }
        main += "<p><a href=\"/console/\">\(t(.home))</a></p>"
        return page(title, main, status: problem.status)
    }

    static func redirect(_ location: String, cookies: [Cookie] = []) -> Response {
        var headers = securityHeaders("text/plain; charset=utf-8")
        headers[.location] = location
        var response = Response(status: .seeOther, headers: headers)
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    // MARK: Building blocks

    /// A table: header cells and rows of already-escaped cell HTML.
    static func table(id: String? = nil, class className: String? = nil, _ header: [String], _ rows: [(String, [String])]) -> String {
        var html = "<table" + (id.map { " id=\"\($0)\"" } ?? "") + (className.map { " class=\"\($0)\"" } ?? "") + "><thead><tr>"
        html += header.map { "<th>\($0)</th>" }.joined() + "</tr></thead><tbody>"
        for (rowClass, cells) in rows {
            html += "<tr" + (rowClass.isEmpty ? "" : " class=\"\(rowClass)\"") + ">" + cells.joined() + "</tr>"
        }
        return html + "</tbody></table>"
    }

    static func cell(_ text: String, class className: String? = nil) -> String {
        "<td" + (className.map { " class=\"\($0)\"" } ?? "") + ">\(HTML.escape(text))</td>"
    }

    /// Percent-encodes everything but unreserved characters and `/`: safe in a query value.
    static func percentEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(128)))
        allowed.insert(charactersIn: "-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// A query string of the given parameters (empty values left out), each percent-encoded.
    static func query(_ parameters: [(String, String)]) -> String {
        let pairs = parameters.filter { !$0.1.isEmpty }.map { "\(percentEncoded($0.0))=\(percentEncoded($0.1))" }
        return pairs.isEmpty ? "" : "?" + pairs.joined(separator: "&")
    }

    static func time(_ date: Date) -> String {
        Timestamp.iso8601(date)
    }

    /// A moment as the tenant's people read it: `YYYY-MM-DD HH:MM` in its time zone.
    static func local(_ date: Date, timeZone identifier: String) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: identifier) ?? TimeZone(identifier: "UTC") ?? .current
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        func two(_ value: Int?) -> String { (value ?? 0) < 10 ? "0\(value ?? 0)" : String(value ?? 0) }
        return "\(parts.year ?? 0)-\(two(parts.month))-\(two(parts.day)) \(two(parts.hour)):\(two(parts.minute))"
    }
}
