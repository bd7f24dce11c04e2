import Foundation
import HTTPTypes
import Hummingbird
import ItakuCore
import ItakuRegistry
import Logging
import NIOCore

/// `/console/`: the supervision console for client admins, the security team (reviewers) and
/// operators. Server-rendered HTML without scripts. A person signs in with the same key the API
/// takes; each page then acts as that key's principal, through the same authorization checks
/// and the same access-log `review` entries as the API.
struct ConsoleController: Sendable {
    let admin: Admin
    let sessions: ConsoleSessions
    let accessLog: AccessLogController
    let purposes: PurposesController
    let reports: ConsoleReports

    /// The roles that may sign in: an integration's key belongs to a machine, not a person.
    static let roles: Set<Role> = [.clientAdmin, .reviewer, .operator_]
    static let sessionCookie = "itaku_session"
    static let signInCookie = "itaku_sign_in"

    typealias Handler = @Sendable (Request, ItakuRequestContext, ConsoleView) async throws -> Response

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/console/console.css", method: .get) { _, _ in
            var headers = ConsoleView.securityHeaders("text/css; charset=utf-8")
            headers[.cacheControl] = "max-age=3600"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: ConsoleStyle.css)))
        }
        page(&routes, "/console/lang/:language", .get, signedIn: false) { request, context, _ in
            // Back to the page the switch was on: only a console path, never another site.
            let back = request.uri.queryParameters.get("back").map { String($0) } ?? "/console/"
            let safe = back.hasPrefix("/console/") && !back.contains("//") && !back.contains("\\") ? back : "/console/"
            let language = ConsoleLanguage(rawValue: context.parameters.get("language") ?? "") ?? .ja
            return ConsoleView.redirect(safe, cookies: [
                Cookie(name: "itaku_lang", value: language.rawValue, maxAge: 365 * 86400, path: "/console", secure: true, httpOnly: true, sameSite: .strict)
            ])
        }
        addSignInRoutes(to: &routes)
        page(&routes, "/console/", .get) { _, _, view in
            guard let principal = view.principal else { return ConsoleView.redirect("/console/sign-in") }
            if principal.role == .clientAdmin, let tenant = principal.tenantID.flatMap({ view.snapshot.tenants[$0] }) {
                return ConsoleView.redirect("/console/tenants/\(ConsoleView.percentEncoded(tenant.code))/")
            }
            return ConsoleView.redirect("/console/tenants")
        }
        page(&routes, "/console/tenants", .get) { _, _, view in tenants(view) }
        page(&routes, "/console/tenants/:tenant/", .get) { _, context, view in try tenantHome(context, view) }
        ConsoleRegistryPages(admin: admin, purposes: purposes).addRoutes(to: &routes, console: self)
        ConsoleLogPages(admin: admin, accessLog: accessLog).addRoutes(to: &routes, console: self)
        reports.addRoutes(to: &routes, console: self)
    }

    // MARK: Pages and their guard

    /// Registers a console page. With `signedIn`, the session cookie must name a live session
    /// of a key still valid and allowed here (else: to the sign-in page), and every POST must
    /// carry the session's form token (else 403 `csrf_failed`, nothing done). Errors become the
    /// console's error page with the API's status and code.
    func page(_ routes: inout RouteTable, _ path: String, _ method: HTTPRequest.Method, signedIn: Bool = true, _ handler: @escaping Handler) {
        let sessions = self.sessions
        let registry = admin.registry
        routes.on(path, method: method) { request, context in
            var context = context
            let snapshot = registry.snapshot
            context.snapshot = snapshot
            let query = request.uri.query.map { "?" + $0 } ?? ""
            // The page the language switch comes back to, by GET: a verification's result (a
            // POST only) comes back to the access log it was asked from.
            var back = request.uri.path + query
            if method == .post, request.uri.path.hasSuffix("/access-log/verify") { back = String(request.uri.path.dropLast("/verify".count)) }
            var view = ConsoleView(language: .of(request), snapshot: snapshot, path: back)
            do {
                // As the API: no page on a registry this instance could not read recently.
                guard registry.isFresh else { throw Problem.registryUnavailable }
                if signedIn {
                    guard let token = request.cookies[Self.sessionCookie]?.value, let session = try await sessions.find(token: token),
                        let key = snapshot.keys.values.first(where: { $0.id == session.keyID }), Self.roles.contains(key.role)
                    else { return ConsoleView.redirect("/console/sign-in") }
                    let principal = Principal(keyID: key.id, role: key.role, tenantID: key.tenantID, integrationID: key.integrationID)
                    context.principal = principal
                    context.logger[metadataKey: "itaku.role"] = .string(key.role.rawValue)
                    view.principal = principal
                    view.csrf = session.csrf
                    if method == .post {
                        view.form = try await ConsoleForm.read(request, context: context)
                        guard ConsoleSessions.matches(view.form["csrf"], session.csrf) else { throw Self.csrfFailed }
                    }
                }
                return try await handler(request, context, view)
            } catch {
                return view.errorPage(ErrorMiddleware.problem(for: error, context: context))
            }
        }
    }

    static let csrfFailed = Problem(.forbidden, code: "csrf_failed", title: "Form token missing or wrong")

    // MARK: Sign-in and sign-out

    private func addSignInRoutes(to routes: inout RouteTable) {
        page(&routes, "/console/sign-in", .get, signedIn: false) { _, _, view in
            signInPage(view, token: ConsoleSessions.randomToken(), status: .ok)
        }
        page(&routes, "/console/sign-in", .post, signedIn: false) { request, context, view in
            // Before a session exists, the form token is the one this browser's sign-in page set
            // in its own cookie (double submit): another site cannot read it to forge a sign-in.
            let form = try await ConsoleForm.read(request, context: context)
            guard let expected = request.cookies[Self.signInCookie]?.value, ConsoleSessions.matches(form["csrf"], expected) else {
                throw Self.csrfFailed
            }
            guard let presented = form["key"], let key = APIKeys.authenticate(presented, in: view.snapshot), Self.roles.contains(key.role)
            else {
                context.logger.notice("console sign-in refused")
                return signInPage(view, token: ConsoleSessions.randomToken(), status: .unauthorized, failed: true)
            }
            // A browser signing in anew leaves no session behind it (another key's, say).
            if let old = request.cookies[Self.sessionCookie]?.value { try await sessions.end(token: old) }
            let (token, _) = try await sessions.start(keyID: key.id)
            context.logger.info("console sign-in", metadata: ["itaku.key": .string(key.id.lowercasedString), "itaku.role": .string(key.role.rawValue)])
            return ConsoleView.redirect("/console/", cookies: [
                Cookie(
                    name: Self.sessionCookie, value: token, maxAge: Int(sessions.lifetime.components.seconds), path: "/console",
                    secure: true, httpOnly: true, sameSite: .strict
                ),
                Cookie(name: Self.signInCookie, value: "", maxAge: 0, path: "/console/sign-in", secure: true, httpOnly: true, sameSite: .strict),
            ])
        }
        page(&routes, "/console/sign-out", .post) { request, _, _ in
            if let token = request.cookies[Self.sessionCookie]?.value { try await sessions.end(token: token) }
            return ConsoleView.redirect("/console/sign-in", cookies: [
                Cookie(name: Self.sessionCookie, value: "", maxAge: 0, path: "/console", secure: true, httpOnly: true, sameSite: .strict)
            ])
        }
    }

    private func signInPage(_ view: ConsoleView, token: String, status: HTTPResponse.Status, failed: Bool = false) -> Response {
        var main = "<p>\(view.t(.signInLead))</p>"
        if failed { main += "<p class=\"error-code\">invalid_key</p><p class=\"error\">\(view.t(.invalidKey))</p>" }
        main += """
            <form id="sign-in" method="post" action="/console/sign-in">\
            <input type="hidden" name="csrf" value="\(token)">\
            <label for="key">\(view.t(.key))</label>\
            <input id="key" name="key" type="password" autocomplete="off" required>\
            <button id="sign-in-button" type="submit">\(view.t(.signIn))</button></form>
            """
        var response = view.page(view.t(.signIn), main, status: status)
        response.setCookie(Cookie(name: Self.signInCookie, value: token, maxAge: 3600, path: "/console/sign-in", secure: true, httpOnly: true, sameSite: .strict))
        return response
    }

    // MARK: Tenants

    private func tenants(_ view: ConsoleView) -> Response {
        let visible = view.snapshot.tenants.values
            .filter { view.principal?.role != .clientAdmin || $0.id == view.principal?.tenantID }
            .sorted { $0.code < $1.code }
        let rows = visible.map { tenant in
            ("", [
                "<td><a class=\"tenant-link\" href=\"/console/tenants/\(HTML.escape(ConsoleView.percentEncoded(tenant.code)))/\">\(HTML.escape(tenant.code))</a></td>",
                ConsoleView.cell(tenant.name), ConsoleView.cell(tenant.status), ConsoleView.cell(tenant.timeZone),
            ])
        }
        return view.page(view.t(.tenants), ConsoleView.table(id: "tenants", [view.t(.code), view.t(.name), view.t(.status), view.t(.timeZone)], rows))
    }

    private func tenantHome(_ context: ItakuRequestContext, _ view: ConsoleView) throws -> Response {
        let (principal, tenant) = try admin.tenant(context, Self.roles)
        let base = "/console/tenants/\(HTML.escape(ConsoleView.percentEncoded(tenant.code)))"
        var links: [(String, String, ConsoleText)] = []
        if principal.role == .clientAdmin {
            links += [("link-datasets", "datasets", .datasets), ("link-purposes", "purposes", .purposes)]
        }
        if principal.role != .reviewer { links.append(("link-roster", "roster", .roster)) }
        if principal.role != .operator_ {
            links += [("link-access-log", "access-log", .accessLog), ("link-charts", "charts", .charts), ("link-report", "report", .report)]
        }
        var main = "<p class=\"tenant-name\">\(HTML.escape(tenant.name)) (<code>\(HTML.escape(tenant.code))</code>)</p><ul class=\"links\">"
        main += links.map { "<li><a id=\"\($0.0)\" href=\"\(base)/\($0.1)\">\(view.t($0.2))</a></li>" }.joined()
        main += "</ul>"
        return view.page(tenant.name, main)
    }
}

/// An `application/x-www-form-urlencoded` body: the first value of each name.
enum ConsoleForm {
    static func read(_ request: Request, context: ItakuRequestContext) async throws -> [String: String] {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        return parse(String(buffer: buffer))
    }

    static func parse(_ body: String) -> [String: String] {
        var form: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String? { part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let name = parts.first.flatMap(decode), let value = decode(parts.count > 1 ? parts[1] : "") else { continue }
            if form[name] == nil { form[name] = value }
        }
        return form
    }
}
