import Foundation
import Hummingbird
import ItakuAccessLog
import ItakuCore
import ItakuPostgres
import ItakuRegistry
import NIOCore

/// The client admin's pages: datasets with their field categories, purposes with their versions,
/// a side-by-side diff and the edit form; and the roster of agents assigned to the tenant
/// (取扱者リスト), which operators see too. Each checks the same roles as its API endpoint.
struct ConsoleRegistryPages: Sendable {
    /// A purpose's versions its page lists: the newest (the comparison takes any version).
    static let listedVersions = 50

    let admin: Admin
    let purposes: PurposesController

    func addRoutes(to routes: inout RouteTable, console: ConsoleController) {
        console.page(&routes, "/console/tenants/:tenant/datasets", .get) { _, context, view in try datasets(context, view) }
        console.page(&routes, "/console/tenants/:tenant/purposes", .get) { _, context, view in try await purposeList(context, view) }
        console.page(&routes, "/console/tenants/:tenant/purposes/:purpose", .get) { request, context, view in
            try await purposePage(request, context, view)
        }
        console.page(&routes, "/console/tenants/:tenant/purposes/:purpose/edit", .get) { _, context, view in
            let (_, tenant) = try admin.tenant(context, [.clientAdmin])
            guard let purpose = context.parameters.get("purpose").flatMap({ view.snapshot.purposes[tenant.id]?[$0] }) else {
                throw Problem.notFound
            }
            return editPage(view, tenant: tenant, key: purpose.key, version: purpose.version, text: Self.pretty(purpose.definition))
        }
        console.page(&routes, "/console/tenants/:tenant/purposes/:purpose/edit", .post) { _, context, view in
            try await saveEdit(context, view)
        }
        console.page(&routes, "/console/tenants/:tenant/roster", .get) { _, context, view in try roster(context, view) }
        console.page(&routes, "/console/tenants/:tenant/roster.csv", .get) { _, context, view in try rosterCSV(context, view) }
    }

    static func base(_ tenant: Tenant) -> String {
        "/console/tenants/\(HTML.escape(ConsoleView.percentEncoded(tenant.code)))"
    }

    // MARK: Datasets

    private func datasets(_ context: ItakuRequestContext, _ view: ConsoleView) throws -> Response {
        let (_, tenant) = try admin.tenant(context, [.clientAdmin])
        var main = ""
        for dataset in (view.snapshot.datasets[tenant.id] ?? [:]).values.sorted(by: { $0.name < $1.name }) {
            let schema = dataset.schema
            main += "<h2>\(HTML.escape(dataset.name)) <small>v\(dataset.version)</small></h2>"
            main += "<p>\(view.t(.keyField)): <code>\(HTML.escape(schema.keyField))</code> · \(view.t(.retentionDays)): "
            main += "\(schema.retentionDays.map(String.init) ?? "—")</p>"
            let rows = schema.fields.map { field -> (String, [String]) in
                var category = HTML.escape(field.category.rawValue)
                switch field.category {
                case .sensitive: category += "<span class=\"special\">\(view.language == .ja ? "要配慮" : "special care (要配慮)")</span>"
                case .individualNumber: category += "<span class=\"special\">\(view.language == .ja ? "個人番号" : "Individual Number (個人番号)")</span>"
                default: break
                }
                return ("field", [
                    ConsoleView.cell(field.name), ConsoleView.cell(field.type.rawValue), "<td class=\"category\">\(category)</td>",
                    ConsoleView.cell(field.lookup?.rawValue ?? ""), ConsoleView.cell(field.required == true ? "✓" : ""),
                ])
            }
            main += ConsoleView.table(
                id: "dataset-\(HTML.escape(dataset.name))", class: "dataset",
                [view.t(.field), view.t(.type), view.t(.category), view.t(.lookup), view.t(.required)], rows
            )
        }
        return view.page(view.t(.datasets), main)
    }

    // MARK: Purposes

    private func purposeList(_ context: ItakuRequestContext, _ view: ConsoleView) async throws -> Response {
        let (_, tenant) = try admin.tenant(context, [.clientAdmin])
        let rows = (view.snapshot.purposes[tenant.id] ?? [:]).values.sorted { $0.key < $1.key }.map { purpose -> (String, [String]) in
            ("", [
                "<td><a class=\"purpose-link\" href=\"\(Self.base(tenant))/purposes/\(HTML.escape(ConsoleView.percentEncoded(purpose.key)))\">\(HTML.escape(purpose.key))</a></td>",
                ConsoleView.cell(purpose.definition.name), "<td class=\"num\">\(purpose.version)</td>",
                ConsoleView.cell(ConsoleView.time(purpose.createdAt)),
            ])
        }
        return view.page(
            view.t(.purposes),
            ConsoleView.table(id: "purposes", [view.t(.purpose), view.t(.name), view.t(.currentVersion), view.t(.created)], rows)
        )
    }

    private func purposePage(_ request: Request, _ context: ItakuRequestContext, _ view: ConsoleView) async throws -> Response {
        let (_, tenant) = try admin.tenant(context, [.clientAdmin])
        guard let key = context.parameters.get("purpose"), let current = view.snapshot.purposes[tenant.id]?[key] else {
            throw Problem.notFound
        }
        let parameters = request.uri.queryParameters
        let a = parameters.get("a").flatMap { Int($0) } ?? max(1, current.version - 1)
        let b = parameters.get("b").flatMap { Int($0) } ?? current.version
        // The newest versions, and the two compared (which may be older).
        let (versions, left, right) = try await admin.database.withTransaction { connection in
            (
                try await RegistryStore.purposeVersions(tenantID: tenant.id, key: key, latest: Self.listedVersions, on: connection)
                    .map(\.purpose).sorted { $0.version > $1.version },
                try await RegistryStore.purposeVersion(tenantID: tenant.id, key: key, version: a, on: connection),
                try await RegistryStore.purposeVersion(tenantID: tenant.id, key: key, version: b, on: connection)
            )
        }
        let link = "\(Self.base(tenant))/purposes/\(HTML.escape(ConsoleView.percentEncoded(key)))"
        var main = "<p>\(view.t(.currentVersion)): <strong id=\"current-version\">\(current.version)</strong> · "
        main += "<a id=\"edit-purpose\" href=\"\(link)/edit\">\(view.t(.edit))</a></p>"
        main += ConsoleView.table(id: "versions", [view.t(.version), view.t(.created), view.t(.name)], versions.map {
            ("", ["<td class=\"num\">\($0.version)</td>", ConsoleView.cell(ConsoleView.time($0.createdAt)), ConsoleView.cell($0.definition.name)])
        })
        // The diff: two versions side by side, the newest against the one before by default.
        func options(_ selected: Int) -> String {
            let shown = versions.map(\.version) + ([selected].filter { selected in (1...current.version).contains(selected) && !versions.contains { $0.version == selected } })
            return shown.map { "<option value=\"\($0)\"\($0 == selected ? " selected" : "")>v\($0)</option>" }.joined()
        }
        main += "<h2>\(view.t(.diff))</h2><form id=\"diff-form\" class=\"toolbar\" method=\"get\" action=\"\(link)\">"
        main += "<select name=\"a\">\(options(a))</select> → <select name=\"b\">\(options(b))</select>"
        main += "<button id=\"diff-button\" type=\"submit\">\(view.t(.compare))</button></form>"
        if let left, let right {
            let lines = LineDiff.sideBySide(Self.pretty(left.definition), Self.pretty(right.definition))
            if !lines.contains(where: \.changed) { main += "<p>\(view.t(.noChanges))</p>" }
            main += ConsoleView.table(id: "diff", ["v\(a) (\(view.t(.before)))", "v\(b) (\(view.t(.after)))"], lines.map {
                ($0.changed ? "changed" : "", [ConsoleView.cell($0.before ?? "", class: "before"), ConsoleView.cell($0.after ?? "", class: "after")])
            })
        }
        return view.page("\(view.t(.purpose)): \(key)", main)
    }

    private func editPage(
        _ view: ConsoleView, tenant: Tenant, key: String, version: Int, text: String, problem: Problem? = nil
    ) -> Response {
        var main = ""
        if let problem {
            main += "<p class=\"error-code\">\(HTML.escape(problem.code))</p><p class=\"error\">\(HTML.escape(problem.title))</p>"
            let issues = problem.errors ?? (problem.pointer.map { [Problem.Issue(code: problem.code, pointer: $0)] } ?? [])
            if !issues.isEmpty {
                main += "<ul id=\"problems\">" + issues.map {
                    "<li><code>\(HTML.escape($0.code))</code>" + ($0.pointer.map { " — <code>\(HTML.escape($0))</code>" } ?? "") + "</li>"
                }.joined() + "</ul>"
            }
        }
        let action = "\(Self.base(tenant))/purposes/\(HTML.escape(ConsoleView.percentEncoded(key)))/edit"
        main += "<form id=\"purpose-form\" method=\"post\" action=\"\(action)\">\(view.csrfField)"
        main += "<input type=\"hidden\" name=\"version\" value=\"\(version)\">"
        main += "<label for=\"definition\">\(view.t(.definition)) — v\(version)</label>"
        main += "<textarea id=\"definition\" name=\"definition\" spellcheck=\"false\">\(HTML.escape(text))</textarea>"
        main += "<p><button id=\"save-purpose\" type=\"submit\">\(view.t(.save))</button></p></form>"
        return view.page("\(view.t(.edit)): \(key)", main, status: problem?.status ?? .ok)
    }

    /// The form makes the API's PUT: If-Match with the version the form was opened at, so an
    /// edit over someone else's newer version is refused (412), never silently merged.
    private func saveEdit(_ context: ItakuRequestContext, _ view: ConsoleView) async throws -> Response {
        let (_, tenant) = try admin.tenant(context, [.clientAdmin])
        guard let key = context.parameters.get("purpose"), view.snapshot.purposes[tenant.id]?[key] != nil else { throw Problem.notFound }
        let text = view.form["definition"] ?? ""
        let version = view.form["version"].flatMap { Int($0) } ?? 0
        do {
            // Read as the API reads it: a misspelt member is refused, not dropped.
            _ = try await purposes.save(RoleContext<ClientAdmins>(context: context), ifMatch: PurposesController.etag(version)) {
                try Admin.decode(PurposeDefinition.self, from: ByteBuffer(string: text))
            }
        } catch let problem as Problem where problem.status.code < 500 {
            return editPage(view, tenant: tenant, key: key, version: version, text: text, problem: problem)
        }
        return ConsoleView.redirect("\(Self.base(tenant))/purposes/\(ConsoleView.percentEncoded(key))")
    }

    static func pretty(_ definition: PurposeDefinition) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(definition)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    // MARK: Roster

    struct RosterLine {
        var employeeID, name, site: String
        var active: Bool
        var purposes: [String]
        var validFrom, validUntil: Date
        var state: ConsoleText
    }

    private func rosterLines(_ context: ItakuRequestContext, _ view: ConsoleView) throws -> (Tenant, [RosterLine]) {
        let (_, tenant) = try admin.tenant(context, [.clientAdmin, .operator_])
        let now = Date()
        let lines = (view.snapshot.assignments[tenant.id] ?? [:]).values.compactMap { assignment -> RosterLine? in
            guard let agent = view.snapshot.agents[assignment.agentID] else { return nil }
            let state: ConsoleText = now < assignment.validFrom ? .upcoming : (now >= assignment.validUntil ? .expired : .current)
            return RosterLine(
                employeeID: agent.employeeID, name: agent.name, site: agent.site, active: agent.active,
                purposes: assignment.purposes.sorted(), validFrom: assignment.validFrom, validUntil: assignment.validUntil, state: state
            )
        }.sorted { $0.employeeID < $1.employeeID }
        return (tenant, lines)
    }

    private func roster(_ context: ItakuRequestContext, _ view: ConsoleView) throws -> Response {
        let (tenant, lines) = try rosterLines(context, view)
        var main = "<p class=\"toolbar\"><a id=\"roster-csv\" href=\"\(Self.base(tenant))/roster.csv\">\(view.t(.downloadCSV))</a></p>"
        main += ConsoleView.table(
            id: "roster",
            [
                view.t(.employeeID), view.t(.name), view.t(.site), view.t(.active), view.t(.assignedPurposes),
                "\(view.t(.validFrom)) (\(HTML.escape(tenant.timeZone)))", "\(view.t(.validUntil)) (\(HTML.escape(tenant.timeZone)))",
                view.t(.status),
            ],
            lines.map { line in
                ("assignment", [
                    ConsoleView.cell(line.employeeID, class: "employee-id"), ConsoleView.cell(line.name, class: "agent-name"),
                    ConsoleView.cell(line.site, class: "site"), ConsoleView.cell(line.active ? "✓" : "—"),
                    ConsoleView.cell(line.purposes.joined(separator: ", ")),
                    ConsoleView.cell(ConsoleView.local(line.validFrom, timeZone: tenant.timeZone)),
                    ConsoleView.cell(ConsoleView.local(line.validUntil, timeZone: tenant.timeZone)), ConsoleView.cell(line.state(view.language)),
                ])
            }
        )
        return view.page("\(view.t(.roster)) — \(tenant.name)", main)
    }

    private func rosterCSV(_ context: ItakuRequestContext, _ view: ConsoleView) throws -> Response {
        let (tenant, lines) = try rosterLines(context, view)
        var csv = "employee_id,name,site,active,purposes,valid_from,valid_until,status\n"
        for line in lines {
            let cells = [
                line.employeeID, line.name, line.site, line.active ? "true" : "false", line.purposes.joined(separator: " "),
                Timestamp.iso8601(line.validFrom), Timestamp.iso8601(line.validUntil), line.state(.en),
            ]
            csv += cells.map(AccessEntry.csvCell).joined(separator: ",") + "\n"
        }
        var headers = ConsoleView.securityHeaders("text/csv; charset=utf-8")
        headers[.contentDisposition] = "attachment; filename=\"roster-\(tenant.code).csv\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: csv)))
    }
}

/// A line diff of two texts for the side-by-side view (longest common subsequence).
enum LineDiff {
    struct Line: Equatable {
        var before: String?
        var after: String?
        var changed: Bool
    }

    /// The largest table of the common subsequence (lines before × lines after, once the common
    /// start and end are set aside): about 2 MB. Past it, the changed middle is shown as removed
    /// then added, so a very long definition costs time and memory in proportion to its length.
    static let maxTable = 250_000

    static func sideBySide(_ left: String, _ right: String) -> [Line] {
        let allBefore = left.components(separatedBy: "\n"), allAfter = right.components(separatedBy: "\n")
        var start = 0
        while start < allBefore.count, start < allAfter.count, allBefore[start] == allAfter[start] { start += 1 }
        var end = 0
        while end < allBefore.count - start, end < allAfter.count - start,
            allBefore[allBefore.count - 1 - end] == allAfter[allAfter.count - 1 - end]
        {
            end += 1
        }
        let same = { (line: String) in Line(before: line, after: line, changed: false) }
        let head = allBefore[..<start].map(same), tail = allBefore[(allBefore.count - end)...].map(same)
        let a = Array(allBefore[start..<(allBefore.count - end)]), b = Array(allAfter[start..<(allAfter.count - end)])
        let (cells, overflow) = (a.count + 1).multipliedReportingOverflow(by: b.count + 1)
        guard !overflow, cells <= maxTable else {
            let changed = (0..<max(a.count, b.count)).map {
                Line(before: $0 < a.count ? a[$0] : nil, after: $0 < b.count ? b[$0] : nil, changed: true)
            }
            return head + changed + tail
        }
        return head + middle(a, b) + tail
    }

    /// The side-by-side lines of `a` and `b` (longest common subsequence).
    private static func middle(_ a: [String], _ b: [String]) -> [Line] {
        // lengths[i][j]: the LCS length of a[i...] and b[j...].
        var lengths = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                lengths[i][j] = a[i] == b[j] ? lengths[i + 1][j + 1] + 1 : max(lengths[i + 1][j], lengths[i][j + 1])
            }
        }
        var lines: [Line] = []
        var removed: [String] = [], added: [String] = []
        func flush() {
            for index in 0..<max(removed.count, added.count) {
                lines.append(Line(before: index < removed.count ? removed[index] : nil, after: index < added.count ? added[index] : nil, changed: true))
            }
            removed = []
            added = []
        }
        var i = 0, j = 0
        while i < a.count || j < b.count {
            if i < a.count, j < b.count, a[i] == b[j] {
                flush()
                lines.append(Line(before: a[i], after: b[j], changed: false))
                i += 1
                j += 1
            } else if j < b.count, i == a.count || lengths[i][j + 1] >= lengths[i + 1][j] {
                added.append(b[j])
                j += 1
            } else {
                removed.append(a[i])
                i += 1
            }
        }
        flush()
        return lines
    }
}
