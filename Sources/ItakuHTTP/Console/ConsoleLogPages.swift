import Crypto
import Foundation
import Hummingbird
import ItakuAccessLog
import ItakuCore
import ItakuRegistry

/// The access log in the console: search with every filter of the API, cursor paging, an
/// entry's page, the exports and (for reviewers) verification. Each goes through the API's own
/// functions, so the same principals see the same entries and every view writes the same
/// `review` entry as the API call would.
struct ConsoleLogPages: Sendable {
    let admin: Admin
    let accessLog: AccessLogController

    static let filters = [
        "agent", "integration", "purpose", "operation", "decision", "reason", "from", "to", "lookup_kind", "lookup_value", "record",
        "case", "subject",
    ]

    /// Filters that name a person: a lookup value (a phone number, an e-mail address) and a
    /// record's key. They never appear in a URL the console makes (see `sealed`).
    static let personal = ["lookup_value", "subject"]

    func addRoutes(to routes: inout RouteTable, console: ConsoleController) {
        console.page(&routes, "/console/access-log", .get) { request, context, view in
            try await search(request, context, view, scoped: false)
        }
        console.page(&routes, "/console/tenants/:tenant/access-log", .get) { request, context, view in
            try await search(request, context, view, scoped: true)
        }
        // The search form posts its filters, and is sent on to the page's address, where the
        // filters that name a person are sealed: typed into the form, a phone number reaches
        // no address bar, history or proxy log.
        console.page(&routes, "/console/access-log", .post) { _, context, view in
            ConsoleView.redirect(try base(context, view, scoped: false) + query(Self.filters(view.form, scoped: false), view: view))
        }
        console.page(&routes, "/console/tenants/:tenant/access-log", .post) { _, context, view in
            ConsoleView.redirect(try base(context, view, scoped: true) + query(Self.filters(view.form, scoped: true), view: view))
        }
        console.page(&routes, "/console/access-log/entries/:entry", .get) { _, context, view in
            try await entry(context, view, scoped: false)
        }
        console.page(&routes, "/console/tenants/:tenant/access-log/entries/:entry", .get) { _, context, view in
            try await entry(context, view, scoped: true)
        }
        console.page(&routes, "/console/access-log/export", .get) { request, context, view in
            Self.secured(try await accessLog.export(try parameters(request, scoped: false, view: view), RoleContext<Reviewers>(context: context), scoped: false))
        }
        console.page(&routes, "/console/tenants/:tenant/access-log/export", .get) { request, context, view in
            Self.secured(try await accessLog.export(
                try parameters(request, scoped: true, view: view), RoleContext<ClientAdminsAndReviewers>(context: context), scoped: true
            ))
        }
        console.page(&routes, "/console/access-log/verify", .post) { _, context, view in
            try await verify(context, view)
        }
    }

    /// An export as the console sends it: with every page's headers (no caching on a shared
    /// workstation, no sniffing, no framing), its type and file name kept.
    static func secured(_ response: Response) -> Response {
        var response = response
        let type = response.headers[.contentType] ?? "application/octet-stream"
        for field in ConsoleView.securityHeaders(type) { response.headers[field.name] = field.value }
        return response
    }

    /// The page's filters as the API takes them: those of its query, with the sealed ones
    /// opened (`sealed`).
    func parameters(_ request: Request, scoped: Bool, view: ConsoleView) throws -> [String: String] {
        // The raw query, decoded as a form: a browser's GET form sends a space as `+`.
        var parameters = Self.filters(ConsoleForm.parse(request.uri.query ?? ""), scoped: scoped)
        if let token = parameters.removeValue(forKey: "sealed") {
            for (name, value) in try unseal(token, view: view) { parameters[name] = value }
        }
        return parameters
    }

    /// A query string of `parameters` for the console's own links, the filters that name a
    /// person sealed into one `sealed` value.
    func query(_ parameters: [String: String], view: ConsoleView) -> String {
        var plain = parameters.filter { !Self.personal.contains($0.key) }
        let personal = parameters.filter { Self.personal.contains($0.key) }
        if !personal.isEmpty { plain["sealed"] = seal(personal, view: view) }
        return ConsoleView.query(plain.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// Filters that name a person, encrypted (AES-GCM, a key derived from the keyring, so every
    /// instance opens them) and bound to this session (its form token is the associated data):
    /// a link copied out of the console opens nothing in another session, nor after sign-out.
    func seal(_ filters: [String: String], view: ConsoleView) -> String {
        let plain = (try? JSONEncoder().encode(filters)) ?? Data()
        let box = try? AES.GCM.seal(plain, using: accessLog.keyring.consoleFilterKey, authenticating: Data((view.csrf ?? "").utf8))
        return (box?.combined ?? Data()).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    func unseal(_ token: String, view: ConsoleView) throws -> [String: String] {
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard token.utf8.count <= 4096, let data = Data(base64Encoded: base64), let box = try? AES.GCM.SealedBox(combined: data),
            let plain = try? AES.GCM.open(box, using: accessLog.keyring.consoleFilterKey, authenticating: Data((view.csrf ?? "").utf8)),
            let filters = try? JSONDecoder().decode([String: String].self, from: plain)
        else { throw AccessLogController.badParameter("sealed") }
        return filters.filter { Self.personal.contains($0.key) }
    }

    /// The form's filters as the API takes them: empty fields left out (and the form token),
    /// and a time without a zone (what a browser's date-time field sends) read as UTC.
    static func filters(_ form: [String: String], scoped: Bool) -> [String: String] {
        var parameters = form.filter { !$0.value.isEmpty && $0.key != "csrf" }
        if scoped { parameters["tenant"] = nil }
        for name in ["from", "to"] {
            guard let value = parameters[name] else { continue }
            if value.count == 16 { parameters[name] = value + ":00Z" } else if value.count == 19 { parameters[name] = value + "Z" }
        }
        return parameters
    }

    private func base(_ context: ItakuRequestContext, _ view: ConsoleView, scoped: Bool) throws -> String {
        guard scoped else { return "/console/access-log" }
        let (_, tenant) = try admin.tenant(context, [.clientAdmin, .reviewer])
        return ConsoleRegistryPages.base(tenant) + "/access-log"
    }

    // MARK: Search

    /// The API's search, as the API's route admits it: one tenant's log for its client admin and
    /// reviewers, every tenant's for reviewers.
    private func search(
        _ parameters: [String: String], _ context: ItakuRequestContext, scoped: Bool, target: String = "access-log:search"
    ) async throws -> (entries: [AccessEntry], next: AccessLogQuery.Cursor?) {
        if scoped {
            return try await accessLog.search(parameters, RoleContext<ClientAdminsAndReviewers>(context: context), scoped: true, target: target)
        }
        return try await accessLog.search(parameters, RoleContext<Reviewers>(context: context), scoped: false, target: target)
    }

    private func search(_ request: Request, _ context: ItakuRequestContext, _ view: ConsoleView, scoped: Bool) async throws -> Response {
        let base = try base(context, view, scoped: scoped)
        var parameters = try parameters(request, scoped: scoped, view: view)
        if parameters["limit"] == nil { parameters["limit"] = "50" }
        let (entries, next) = try await search(parameters, context, scoped: scoped)
        let codes = view.snapshot.tenants.mapValues(\.code)
        // Every link of the page (the language switch's way back too) carries the filters that
        // name a person sealed, also when they came in the address as typed.
        var view = view
        view.path = base + query(parameters, view: view)

        var main = searchForm(view, base: base, parameters: parameters, scoped: scoped)
        let filterPairs = (Self.filters + (scoped ? [] : ["tenant"])).compactMap { name in parameters[name].map { (name, $0) } }
        main += "<p class=\"toolbar\"><span id=\"result-count\">\(entries.count)</span> \(view.t(.entries)) (\(view.t(.newestFirst)))"
        for format in ["jsonl", "csv", "ocsf"] {
            let href = base + "/export" + query(Dictionary(filterPairs + [("format", format)], uniquingKeysWith: { first, _ in first }), view: view)
            main += " <a id=\"export-\(format)\" href=\"\(HTML.escape(href))\">\(view.t(.export)) \(format.uppercased())</a>"
        }
        main += "</p>"
        if entries.isEmpty { main += "<p>\(view.t(.noEntries))</p>" }
        var header = [view.t(.time)]
        if !scoped { header.append(view.t(.tenant)) }
        header += [view.t(.actor), view.t(.purpose), view.t(.operation), view.t(.decision), view.t(.reason), view.t(.rows)]
        main += ConsoleView.table(id: "entries", header, entries.map { entry in
            let link = "\(base)/entries/\(entry.id.lowercasedString)"
            var cells = ["<td><a class=\"entry-link\" href=\"\(HTML.escape(link))\">\(HTML.escape(Timestamp.iso8601(entry.occurredAt)))</a></td>"]
            if !scoped { cells.append(ConsoleView.cell(entry.tenantID.flatMap { codes[$0] } ?? "—")) }
            cells += [
                ConsoleView.cell(entry.agent.map { "\(entry.actorRole) \($0)" } ?? entry.actorRole),
                ConsoleView.cell(entry.purposeKey.map { "\($0) v\(entry.purposeVersion ?? 0)" } ?? ""),
                ConsoleView.cell(entry.operation.rawValue), ConsoleView.cell(entry.decision.rawValue, class: entry.decision.rawValue),
                ConsoleView.cell(entry.reason), "<td class=\"num\">\(entry.rowsReturned)</td>",
            ]
            return ("entry", cells)
        })
        if let next {
            var nextParameters = parameters
            nextParameters["cursor"] = next.token
            let href = base + query(nextParameters, view: view)
            main += "<p><a id=\"next-page\" href=\"\(HTML.escape(href))\">\(view.t(.nextPage)) →</a></p>"
        }
        if !scoped {
            main += "<h2>\(view.t(.verify))</h2><form id=\"verify\" method=\"post\" action=\"/console/access-log/verify\">\(view.csrfField)"
            main += "<p>\(view.t(.verifyLead))</p><button id=\"verify-button\" type=\"submit\">\(view.t(.verify))</button></form>"
        }
        return view.page(view.t(.accessLog), main)
    }

    private func searchForm(_ view: ConsoleView, base: String, parameters: [String: String], scoped: Bool) -> String {
        func input(_ name: String, _ label: ConsoleText, type: String = "text") -> String {
            "<label>\(view.t(label))<input name=\"\(name)\" type=\"\(type)\" value=\"\(HTML.escape(parameters[name] ?? ""))\"></label>"
        }
        func select(_ name: String, _ label: ConsoleText, _ options: [String]) -> String {
            let chosen = parameters[name] ?? ""
            let items = ([""] + options).map {
                "<option value=\"\(HTML.escape($0))\"\($0 == chosen ? " selected" : "")>\($0.isEmpty ? view.t(.any) : HTML.escape($0))</option>"
            }
            return "<label>\(view.t(label))<select name=\"\(name)\">\(items.joined())</select></label>"
        }
        func time(_ name: String, _ label: ConsoleText) -> String {
            // A date-time field shows minutes; the query keeps what was sent.
            let value = (parameters[name] ?? "").prefix(16)
            return "<label>\(view.t(label)) (UTC)<input name=\"\(name)\" type=\"datetime-local\" value=\"\(HTML.escape(String(value)))\"></label>"
        }
        // The browser keeps no history of what was searched (a phone number, a record key): the
        // next person at a shared desk is not offered it.
        var html = "<form id=\"search\" class=\"filters\" method=\"post\" action=\"\(base)\" autocomplete=\"off\">\(view.csrfField)"
        if !scoped { html += select("tenant", .tenant, view.snapshot.tenants.values.map(\.code).sorted()) }
        html += input("agent", .agent) + input("integration", .integration) + input("purpose", .purpose)
        html += select("operation", .operation, AccessEntry.Operation.allCases.map(\.rawValue))
        html += select("decision", .decision, ["allow", "deny"]) + input("reason", .reason)
        html += time("from", .from) + time("to", .to)
        html += select("lookup_kind", .lookupKind, DatasetSchema.LookupKind.allCases.map(\.rawValue))
        html += input("lookup_value", .lookupValue) + input("record", .record) + input("case", .caseRef)
        html += input("subject", .subject)
        html += input("limit", .limit, type: "number")
        html += "<label>&nbsp;<button id=\"search-button\" type=\"submit\">\(view.t(.search))</button></label></form>"
        return html
    }

    // MARK: One entry

    private func entry(_ context: ItakuRequestContext, _ view: ConsoleView, scoped: Bool) async throws -> Response {
        guard let id = context.parameters.get("entry").flatMap(UUID.init(uuidString:)) else { throw Problem.notFound }
        let base = try base(context, view, scoped: scoped)
        let (entries, _) = try await search(["entry": id.uuidString, "limit": "1"], context, scoped: scoped, target: "access-log:entry")
        guard let entry = entries.first else { throw Problem.notFound }
        var main = "<dl id=\"entry\">"
        if let object = (try? JSONSerialization.jsonObject(with: Data(entry.jsonObject.utf8))) as? [String: Any] {
            for key in object.keys.sorted() {
                main += "<dt>\(HTML.escape(key))</dt><dd>\(HTML.escape(Self.text(object[key] ?? NSNull())))</dd>"
            }
        }
        main += "</dl><p><a href=\"\(base)\">\(view.t(.back))</a></p>"
        return view.page(view.t(.entry), main)
    }

    static func text(_ value: Any) -> String {
        switch value {
        case is NSNull: return "—"
        case let text as String: return text
        case let array as [Any]: return array.map(text).joined(separator: ", ")
        case let number as NSNumber: return number.stringValue
        default:
            guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) else { return "" }
            return String(decoding: data, as: UTF8.self)
        }
    }

    // MARK: Verification

    private func verify(_ context: ItakuRequestContext, _ view: ConsoleView) async throws -> Response {
        let report = try await accessLog.verify(RoleContext<Reviewers>(context: context))
        var main = "<div id=\"verify-result\"><p class=\"\(report.clean ? "allow" : "deny")\">"
        main += report.clean ? "✓ \(view.t(.clean))" : "✗ \(view.t(.notClean))"
        main += " · \(report.complete ? view.t(.complete) : view.t(.incomplete))</p>"
        main += "<p>\(view.t(.checkedEntries)): <strong>\(report.entries)</strong> · \(view.t(.checkpoints)): "
        main += "<strong id=\"checkpoints-checked\">\(report.checkpoints)</strong></p>"
        main += ConsoleView.table(
            id: "verified-streams", [view.t(.stream), view.t(.checkedEntries), view.t(.checkpoints), view.t(.verifiedThrough), view.t(.problems)],
            report.streams.map { stream in
                (stream.problems.isEmpty ? "" : "deny", [
                    ConsoleView.cell(stream.stream), "<td class=\"num\">\(stream.entries)</td>", "<td class=\"num\">\(stream.checkpoints)</td>",
                    "<td class=\"num\">\(stream.verifiedThrough)</td>",
                    ConsoleView.cell(stream.problems.map { "\($0.problem)\($0.seq.map { " #\($0)" } ?? "")" }.joined(separator: ", ")),
                ])
            }
        )
        for weakened in report.schema { main += "<p class=\"deny\">\(HTML.escape(weakened))</p>" }
        if !report.unchained.isEmpty {
            main += "<p class=\"deny\">unchained_entry × \(report.unchained.count)</p>"
        }
        main += "</div><p><a href=\"/console/access-log\">\(view.t(.accessLog))</a></p>"
        return view.page(view.t(.verified), main)
    }
}
