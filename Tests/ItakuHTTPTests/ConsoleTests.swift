import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuPostgres
import ItakuTestSupport
import NIOCore
import Testing

/// The supervision console over real HTTP and a real database: signing in and out, the form
/// token, tenant isolation, escaping, and that viewing the log is itself logged. The browser
/// run (`./Deploy/console`, in `./Deploy/test`) drives the same pages in Chromium.
@Suite("Console", .serialized)
struct ConsoleTests {
    struct Page {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var html: String
        /// The `<main>` element: what differs between pages, without the layout around it.
        var main: String {
            guard let start = html.range(of: "<main"), let end = html.range(of: "</main>") else { return "" }
            return String(html[start.lowerBound..<end.upperBound])
        }
        var location: String? { headers[.location] }
        var csrf: String? {
            guard let range = html.range(of: "name=\"csrf\" value=\"") else { return nil }
            return String(html[range.upperBound...].prefix { $0 != "\"" })
        }
        /// `name=value` of a cookie this response sets.
        func cookie(_ name: String) -> String? {
            headers[values: .setCookie].first { $0.hasPrefix(name + "=") }.map { String($0.prefix { $0 != ";" }) }
        }
    }

    func get(_ client: some TestClientProtocol, _ path: String, cookie: String?) async throws -> Page {
        var headers: HTTPFields = [:]
        if let cookie { headers[.cookie] = cookie }
        return try await client.execute(uri: path, method: .get, headers: headers) {
            Page(status: $0.status, headers: $0.headers, html: String(buffer: $0.body))
        }
    }

    func post(_ client: some TestClientProtocol, _ path: String, cookie: String?, form: [(String, String)]) async throws -> Page {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        if let cookie { headers[.cookie] = cookie }
        let body = form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
        return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body)) {
            Page(status: $0.status, headers: $0.headers, html: String(buffer: $0.body))
        }
    }

    /// Signs in as the sign-in page does: its own form token, then the key. Returns the response.
    func signIn(_ client: some TestClientProtocol, key: String) async throws -> Page {
        let form = try await get(client, "/console/sign-in", cookie: nil)
        let token = try #require(form.csrf)
        return try await post(client, "/console/sign-in", cookie: form.cookie("itaku_sign_in"), form: [("csrf", token), ("key", key)])
    }

    func session(_ client: some TestClientProtocol, key: String) async throws -> (cookie: String, csrf: String) {
        let signedIn = try await signIn(client, key: key)
        let cookie = try #require(signedIn.cookie("itaku_session"))
        let home = try await get(client, "/console/tenants", cookie: cookie)
        return (cookie, try #require(home.csrf))
    }

    @Test("the language switch on a verification's result comes back to the access log by GET, not to the verification, which takes POST only")
    func languageSwitchAfterVerification() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let reviewer = try #require(try await client.call(.post, "/v1/keys", key: fixture.operatorKey, json: ["role": "reviewer"])["key"] as? String)
            let signedIn = try await signIn(client, key: reviewer)
            let cookie = try #require(signedIn.cookie("itaku_session"))
            let log = try await get(client, "/console/access-log", cookie: cookie)
            let verified = try await post(client, "/console/access-log/verify", cookie: cookie, form: [("csrf", try #require(log.csrf))])
            #expect(verified.status == .ok)
            #expect(verified.html.contains("href=\"/console/lang/en?back=/console/access-log\""), "\(verified.html)")
            #expect(try await get(client, "/console/access-log", cookie: cookie).status == .ok)
        }
    }

    @Test("sign-in takes a person's key into a Secure HttpOnly SameSite=Strict session; sign-out ends it everywhere")
    func signInAndOut() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let adminKey = try await client.setUpTenant("acme", operatorKey: fixture.operatorKey)
            let integration = try await client.call(.post, "/v1/integrations", key: fixture.operatorKey, json: ["name": "desk", "trust_mode": "verified", "tenants": ["acme"]])
            let integrationKey = try await client.call(
                .post, "/v1/keys", key: fixture.operatorKey, json: ["role": "integration", "integration": integration["id"] as? String ?? ""]
            )["key"] as? String ?? "itk_none"

            // Without a session every page leads to the sign-in page.
            #expect(try await get(client, "/console/tenants", cookie: nil).location == "/console/sign-in")
            // A wrong key, and a machine's key, are refused alike.
            for key in ["itk_wrong", integrationKey] {
                let refused = try await signIn(client, key: key)
                #expect(refused.status == .unauthorized)
                #expect(refused.html.contains("invalid_key"))
                #expect(refused.cookie("itaku_session") == nil)
            }
            // A sign-in form posted without this browser's own token is refused.
            let forged = try await post(client, "/console/sign-in", cookie: nil, form: [("csrf", "x"), ("key", adminKey)])
            #expect(forged.status == .forbidden)
            #expect(forged.html.contains("csrf_failed"))

            let signedIn = try await signIn(client, key: adminKey)
            #expect(signedIn.status == .seeOther)
            let setCookie = signedIn.headers[values: .setCookie].first { $0.hasPrefix("itaku_session=") } ?? ""
            for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] { #expect(setCookie.contains(attribute)) }
            let cookie = try #require(signedIn.cookie("itaku_session"))
            // The client admin lands on its tenant; the cookie holds no key.
            #expect(try await get(client, "/console/", cookie: cookie).location == "/console/tenants/acme/")
            #expect(!setCookie.contains(adminKey))
            let home = try await get(client, "/console/tenants/acme/", cookie: cookie)
            #expect(home.status == .ok)
            #expect(home.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
            let csrf = try #require(home.csrf)

            // Signing out needs the form token too; then the cookie opens nothing.
            #expect(try await post(client, "/console/sign-out", cookie: cookie, form: []).status == .forbidden)
            #expect(try await get(client, "/console/tenants/acme/", cookie: cookie).status == .ok)
            #expect(try await post(client, "/console/sign-out", cookie: cookie, form: [("csrf", csrf)]).location == "/console/sign-in")
            #expect(try await get(client, "/console/tenants/acme/", cookie: cookie).location == "/console/sign-in")

            // Signing in anew in a browser that has a session ends that session.
            let first = try #require(try await signIn(client, key: adminKey).cookie("itaku_session"))
            let form = try await get(client, "/console/sign-in", cookie: nil)
            let both = [form.cookie("itaku_sign_in"), first].compactMap { $0 }.joined(separator: "; ")
            let second = try await post(client, "/console/sign-in", cookie: both, form: [("csrf", try #require(form.csrf)), ("key", adminKey)])
            #expect(second.status == .seeOther)
            #expect(try await get(client, "/console/tenants/acme/", cookie: first).location == "/console/sign-in")
            #expect(try await get(client, "/console/tenants/acme/", cookie: second.cookie("itaku_session")).status == .ok)
        }
    }

    @Test("a session ends when idle too long, at its end, and when its key is revoked")
    func sessionsExpire() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let owner = fixture.database.makeClient(role: .owner, maximumConnections: 1)
        defer { Task { await owner.shutdown() } }
        try await app.test(.live) { client in
            let adminKey = try await client.setUpTenant("acme", operatorKey: fixture.operatorKey)
            // Idle for 31 minutes (console.idleMinutes is 30): the next page asks to sign in again.
            let (idle, _) = try await session(client, key: adminKey)
            try await owner.query("UPDATE itaku.console_sessions SET last_seen = now() - interval '31 minutes'")
            #expect(try await get(client, "/console/tenants/acme/", cookie: idle).location == "/console/sign-in")
            // Past its end (console.sessionMinutes), however active.
            let (old, _) = try await session(client, key: adminKey)
            try await owner.query("UPDATE itaku.console_sessions SET expires_at = now() - interval '1 second'")
            #expect(try await get(client, "/console/tenants/acme/", cookie: old).location == "/console/sign-in")
            // A revoked key's session ends with it.
            let second = try await client.call(.post, "/v1/keys", key: fixture.operatorKey, json: ["role": "client_admin", "tenant": "acme"])
            let keyID = second["id"] as? String ?? ""
            let (live, _) = try await session(client, key: second["key"] as? String ?? "")
            #expect(try await get(client, "/console/tenants/acme/", cookie: live).status == .ok)
            #expect(try await client.call(.delete, "/v1/keys/\(keyID)", key: fixture.operatorKey).status == .noContent)
            #expect(try await get(client, "/console/tenants/acme/", cookie: live).location == "/console/sign-in")
        }
    }

    @Test("a client admin sees only its tenant: a foreign tenant's page is the same 404 page as a missing one")
    func tenantIsolation() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let adminKey = try await client.setUpTenant("acme", operatorKey: fixture.operatorKey)
            _ = try await client.setUpTenant("kobe", operatorKey: fixture.operatorKey)
            let (cookie, _) = try await session(client, key: adminKey)
            let tenants = try await get(client, "/console/tenants", cookie: cookie)
            #expect(tenants.html.contains("/console/tenants/acme/"))
            #expect(!tenants.html.contains("kobe"))
            for page in ["", "purposes", "datasets", "roster", "access-log", "charts", "report", "report.pdf"] {
                let foreign = try await get(client, "/console/tenants/kobe/\(page)", cookie: cookie)
                let missing = try await get(client, "/console/tenants/nowhere/\(page)", cookie: cookie)
                #expect(foreign.status == .notFound, "\(page)")
                #expect(missing.status == .notFound, "\(page)")
                #expect(foreign.main == missing.main, "\(page)")
                #expect(!foreign.main.contains("kobe"))
            }
        }
    }

    @Test("the purpose form makes a new version only with the session's form token, and the diff shows the change")
    func purposeEdit() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let adminKey = try await client.setUpTenant("acme", operatorKey: fixture.operatorKey)
            _ = try await client.call(.put, "/v1/tenants/acme/purposes/support", key: adminKey, json: purpose())
            let (cookie, csrf) = try await session(client, key: adminKey)
            var changed = purpose()
            changed["name"] = "Order support (extended)"
            let form = [("version", "1"), ("definition", jsonText(changed))]

            for token in [nil, "wrong"] as [String?] {
                let refused = try await post(client, "/console/tenants/acme/purposes/support/edit", cookie: cookie, form: form + (token.map { [("csrf", $0)] } ?? []))
                #expect(refused.status == .forbidden)
                #expect(refused.html.contains("csrf_failed"))
            }
            let unchanged = try await client.call(.get, "/v1/tenants/acme/purposes/support", key: adminKey)
            #expect(unchanged["version"] as? Int == 1)

            let saved = try await post(client, "/console/tenants/acme/purposes/support/edit", cookie: cookie, form: form + [("csrf", csrf)])
            #expect(saved.location == "/console/tenants/acme/purposes/support")
            let now = try await client.call(.get, "/v1/tenants/acme/purposes/support", key: adminKey)
            #expect(now["version"] as? Int == 2)
            // The same form again is stale: If-Match named version 1.
            let stale = try await post(client, "/console/tenants/acme/purposes/support/edit", cookie: cookie, form: form + [("csrf", csrf)])
            #expect(stale.status == .preconditionFailed)
            // Not JSON: the form comes back with the problem, nothing stored.
            let broken = try await post(client, "/console/tenants/acme/purposes/support/edit", cookie: cookie, form: [("version", "2"), ("definition", "{"), ("csrf", csrf)])
            #expect(broken.status == .badRequest)
            #expect(broken.html.contains("invalid_json"))
            // A misspelt member is refused and named, not dropped (the purpose would be open
            // around the clock): nothing stored.
            var misspelt = purpose()
            misspelt["bussiness_hours"] = ["days": ["mon"], "start": "09:00", "end": "18:00"]
            let typo = try await post(client, "/console/tenants/acme/purposes/support/edit", cookie: cookie, form: [("version", "2"), ("definition", jsonText(misspelt)), ("csrf", csrf)])
            #expect(typo.status == .unprocessableContent)
            #expect(typo.html.contains("unknown_member") && typo.html.contains("bussiness_hours"), "\(typo.html)")
            #expect(try await client.call(.get, "/v1/tenants/acme/purposes/support", key: adminKey)["version"] as? Int == 2)

            let page = try await get(client, "/console/tenants/acme/purposes/support?a=1&b=2", cookie: cookie)
            #expect(page.html.contains("id=\"current-version\">2<"))
            #expect(page.html.contains("<tr class=\"changed\">"))
            #expect(page.html.contains("Order support (extended)"))
        }
    }

    @Test("every page escapes what it shows: an agent named <script> is text in the roster and its CSV")
    func escaping() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let adminKey = try await client.setUpTenant("acme", operatorKey: fixture.operatorKey)
            _ = try await client.call(.put, "/v1/tenants/acme/purposes/support", key: adminKey, json: purpose())
            _ = try await client.call(.post, "/v1/agents", key: fixture.operatorKey, json: ["employee_id": "A9", "name": "<script>alert(1)</script>", "site": "\"><img src=x>"])
            let assigned = try await client.call(.put, "/v1/tenants/acme/assignments/A9", key: fixture.operatorKey, json: [
                "purposes": ["support"], "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
            ])
            #expect(assigned.status == .created)
            let (cookie, _) = try await session(client, key: adminKey)
            let roster = try await get(client, "/console/tenants/acme/roster", cookie: cookie)
            #expect(roster.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(roster.html.contains("&quot;&gt;&lt;img src=x&gt;"))
            #expect(!roster.html.contains("<script>"))
            #expect(!roster.html.contains("<img"))
            let csv = try await get(client, "/console/tenants/acme/roster.csv", cookie: cookie)
            #expect(csv.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(csv.html.contains("A9,<script>alert(1)</script>,"))
        }
    }

    @Test("viewing the log in the console writes the review entries the API writes")
    func viewingIsLogged() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let adminKey = try await client.setUpTenant("acme", operatorKey: fixture.operatorKey)
            let (cookie, csrf) = try await session(client, key: adminKey)
            for page in ["access-log", "charts", "report", "report.csv"] {
                #expect(try await get(client, "/console/tenants/acme/\(page)", cookie: cookie).status == .ok, "\(page)")
            }
            let unreadable = try await get(client, "/console/tenants/acme/access-log?from=not-a-time", cookie: cookie)
            #expect(unreadable.status == .badRequest)
            // The error page says which input to mend.
            #expect(unreadable.html.contains("<ul id=\"problems\"><li><code>invalid_parameter</code> — <code>from</code></li></ul>"), "\(unreadable.html)")
            // A browser's GET form sends spaces as `+` and a plus as `%2B`: the search gets the value as typed.
            let typed = try await get(client, "/console/tenants/acme/access-log?lookup_kind=phone&lookup_value=%2B81+90+1234+5678", cookie: cookie)
            #expect(typed.status == .ok)
            #expect(typed.html.contains("name=\"lookup_value\" type=\"text\" value=\"+81 90 1234 5678\""))
            // No link of the page carries the number, not even the language switch's way back.
            let hrefs = typed.html.components(separatedBy: "href=\"").dropFirst().map { $0.prefix { $0 != "\"" } }
            #expect(!hrefs.isEmpty && hrefs.allSatisfy { !$0.contains("1234") && !$0.contains("lookup_value") }, "\(hrefs)")
            #expect(hrefs.contains { $0.contains("sealed=") })
            // The form posts; the page it leads to has the number sealed in its address.
            let posted = try await post(
                client, "/console/tenants/acme/access-log", cookie: cookie,
                form: [("csrf", csrf), ("lookup_kind", "phone"), ("lookup_value", "+81 90 1234 5678"), ("operation", "lookup")]
            )
            #expect(posted.status == .seeOther)
            let location = try #require(posted.location)
            #expect(location.hasPrefix("/console/tenants/acme/access-log?") && location.contains("sealed=") && location.contains("operation=lookup"))
            #expect(!location.contains("1234") && !location.contains("lookup_value"), "\(location)")
            let sealed = try await get(client, location, cookie: cookie)
            #expect(sealed.status == .ok)
            #expect(sealed.html.contains("name=\"lookup_value\" type=\"text\" value=\"+81 90 1234 5678\""))
            // Without this form token the post is refused; in another session the address opens nothing.
            #expect(try await post(client, "/console/tenants/acme/access-log", cookie: cookie, form: [("lookup_value", "x")]).status == .forbidden)
            let (otherCookie, _) = try await session(client, key: adminKey)
            #expect(try await get(client, location, cookie: otherCookie).status == .badRequest)
            // An export carries the console's headers: not kept in a shared workstation's cache.
            let export = try await get(client, "/console/tenants/acme/access-log/export?format=csv", cookie: cookie)
            #expect(export.status == .ok)
            #expect(export.headers[.cacheControl] == "no-store")
            #expect(export.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            #expect(export.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(export.headers[.contentDisposition]?.contains("attachment") == true)
            let reviews = try await client.call(.get, "/v1/tenants/acme/access-log?operation=review&limit=100", key: adminKey)
            let targets = Set(((reviews["entries"] as? [[String: Any]]) ?? []).compactMap { $0["target"] as? String })
            for target in ["access-log:search", "access-log:charts", "access-log:report", "access-log:report:csv"] {
                #expect(targets.contains(target), "\(target)")
            }
        }
    }

    @Test("the report counts a special-category access only when such a field left the gateway on a record, not redacted")
    func specialCategoryAccesses() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 30, policyholders: 3)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let adminKey = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"]), operatorKey = try #require(credentials["ITAKU_OPERATOR_KEY"])
        let integration = try #require(credentials["ITAKU_INTEGRATION_KEY"]), token = try #require(credentials["ITAKU_AGENT_TOKEN"])
        let phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        try await app.test(.live) { client in
            for (key, transform) in [("health-plain", "plain"), ("health-redacted", "redact")] {
                var definition = purpose(fields: ["name": "plain", "health_note": transform])
                definition["name"] = key
                let put = try await client.call(.put, "/v1/tenants/acme-retail/purposes/\(key)", key: adminKey, json: definition)
                #expect(put.status == .created, "\(put.text)")
            }
            let assigned = try await client.call(.put, "/v1/tenants/acme-retail/assignments/A0001", key: operatorKey, json: [
                "purposes": ["order-support", "health-plain", "health-redacted"], "valid_from": "2020-01-01T00:00:00Z",
                "valid_until": "2099-01-01T00:00:00Z",
            ])
            #expect(assigned.status == .ok, "\(assigned.text)")
            func lookup(_ purpose: String, _ value: String) async throws -> Int {
                let headers: HTTPFields = [.init("Itaku-Agent")!: token, .init("Itaku-Purpose")!: purpose, .init("Itaku-Case")!: "CALL-77"]
                let answer = try await client.call(
                    .post, "/v1/tenants/acme-retail/datasets/customers/lookup", key: integration, json: ["by": "phone", "value": value],
                    headers: headers
                )
                #expect(answer.status == .ok, "\(answer.text)")
                return (answer["records"] as? [[String: Any]])?.count ?? -1
            }
            #expect(try await lookup("health-plain", phone) == 1)  // counted
            #expect(try await lookup("health-plain", "090-0000-0001") == 0)  // nothing went out
            #expect(try await lookup("health-redacted", phone) == 1)  // went out redacted
            #expect(try await lookup("order-support", phone) == 1)  // no special field

            let (cookie, _) = try await session(client, key: adminKey)
            let csv = try await get(client, "/console/tenants/acme-retail/report.csv", cookie: cookie)
            let line = try #require(csv.html.split(separator: "\n").first { $0.hasPrefix("agent,A0001,") })
            let cells = line.split(separator: ",", omittingEmptySubsequences: false)
            // section,key,name,accesses,lookups,reads,updates,denials,records_returned,special_category_accesses
            #expect(cells[4] == "4")
            #expect(cells[8] == "3")
            #expect(cells[9] == "1")
        }
    }
}
