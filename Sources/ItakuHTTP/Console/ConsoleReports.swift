import Foundation
import Hummingbird
import ItakuAccessLog
import ItakuCore
import ItakuPostgres
import ItakuRegistry
import NIOCore

/// Charts and the handling-status report (取扱状況報告) of one tenant for a period: aggregates of
/// its access log over the agent data operations (lookup, read, update). A client files the
/// report for its supervision duty and PrivacyMark audits; reading either is a `review` entry.
struct ConsoleReports: Sendable {
    let admin: Admin
    let accessLog: AccessLogController

    func addRoutes(to routes: inout RouteTable, console: ConsoleController) {
        console.page(&routes, "/console/tenants/:tenant/charts", .get) { request, context, view in
            try await charts(request, context, view)
        }
        console.page(&routes, "/console/tenants/:tenant/report", .get) { request, context, view in
            try await reportPage(request, context, view)
        }
        console.page(&routes, "/console/tenants/:tenant/report.csv", .get) { request, context, view in
            try await reportCSV(request, context, view)
        }
        console.page(&routes, "/console/tenants/:tenant/report.pdf", .get) { request, context, view in
            try await reportPDF(request, context, view)
        }
    }

    // MARK: The period

    /// Whole UTC days, `from` and `to` inclusive (`YYYY-MM-DD`); by default the last seven days.
    struct Period: Sendable {
        var from: Date
        var to: Date
        var fromDay: String
        var toDay: String
        var days: Int { Int((to.timeIntervalSince(from) / 86400).rounded()) }
        var text: String { "\(fromDay) – \(toDay) (UTC)" }
        var query: String { ConsoleView.query([("from", fromDay), ("to", toDay)]) }
    }

    static let maxDays = 92

    static func period(_ request: Request) throws -> Period {
        let parameters = request.uri.queryParameters
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
        let today = calendar.startOfDay(for: Date())
        func day(_ name: String) throws -> Date? {
            guard let value = parameters.get(name).map({ String($0) }), !value.isEmpty else { return nil }
            let parts = value.split(separator: "-").compactMap { Int($0) }
            guard value.count == 10, parts.count == 3,
                let date = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2])),
                (1970...9998).contains(parts[0])
            else { throw AccessLogController.badParameter(name) }
            return date
        }
        let last = try day("to") ?? today
        let first = try day("from") ?? last.addingTimeInterval(-6 * 86400)
        let end = last.addingTimeInterval(86400)
        guard first < end, end.timeIntervalSince(first) <= Double(maxDays) * 86400 else { throw AccessLogController.badParameter("from") }
        let format = { (date: Date) -> String in String(Timestamp.iso8601(date).prefix(10)) }
        return Period(from: first, to: end, fromDay: format(first), toDay: format(last))
    }

    private func periodForm(_ view: ConsoleView, action: String, _ period: Period) -> String {
        """
        <form id="period" class="toolbar" method="get" action="\(action)">\
        <label>\(view.t(.from)) <input type="date" name="from" value="\(period.fromDay)"></label>\
        <label>\(view.t(.to)) <input type="date" name="to" value="\(period.toDay)"></label>\
        <button id="period-button" type="submit">\(view.t(.show))</button></form>
        """
    }

    // MARK: Reading the log

    /// Runs `body` as the runtime role under the tenant's row-level security: a client admin
    /// and a reviewer alike see only that tenant's entries.
    private func read<T: Sendable>(_ tenant: Tenant, _ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await admin.database.withTransaction { connection in
            // One snapshot for every table of a page: entries committed while it is made appear
            // in all of its tables or in none, so its totals agree.
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try await RegistryStore.setTenant(tenant.id, on: connection)
            return try await body(connection)
        }
    }

    static let dataOperations = "operation IN ('lookup', 'read', 'update')"

    private func scope(_ tenant: Tenant, _ period: Period) -> (String, PostgresBindings) {
        var binds = PostgresBindings()
        binds.append(tenant.id)
        binds.append(period.from)
        binds.append(period.to)
        return ("tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND \(Self.dataOperations)", binds)
    }

    /// Counts by one column, largest first: the first `limit` (a chart's bars), or all (a report).
    private func counts(
        _ tenant: Tenant, _ period: Period, column: String, value: String = "count(*)", extra: String = "", limit: Int? = 12,
        on connection: PostgresConnection
    ) async throws -> [(String, Int)] {
        let (filter, binds) = scope(tenant, period)
        let sql = "SELECT \(column), \(value)::bigint FROM itaku.access_log WHERE \(filter) \(extra) AND \(column) IS NOT NULL "
            + "GROUP BY 1 ORDER BY 2 DESC, 1" + (limit.map { " LIMIT \($0)" } ?? "")
        return try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds)).map { (try $0.decode(0, as: String.self), try $0.decode(1, as: Int.self)) }
    }

    // MARK: Charts

    private func charts(_ request: Request, _ context: ItakuRequestContext, _ view: ConsoleView) async throws -> Response {
        let (principal, tenant) = try admin.tenant(context, [.clientAdmin, .reviewer])
        let period = try Self.period(request)
        let hourly = period.days <= 3
        let (filter, binds) = scope(tenant, period)
        let unit = hourly ? "hour" : "day"
        let (buckets, denials, agents, purposes) = try await read(tenant) { connection in
            let buckets = try await connection.query(PostgresQuery(
                unsafeSQL: """
                    SELECT date_trunc('\(unit)', occurred_at), count(*) FILTER (WHERE decision = 'allow')::bigint,
                           count(*) FILTER (WHERE decision = 'deny')::bigint
                    FROM itaku.access_log WHERE \(filter) GROUP BY 1 ORDER BY 1
                    """,
                binds: binds
            )).map { (try $0.decode(0, as: Date.self), try $0.decode(1, as: Int.self), try $0.decode(2, as: Int.self)) }
            return (
                buckets,
                try await counts(tenant, period, column: "reason", extra: "AND decision = 'deny'", on: connection),
                try await counts(tenant, period, column: "agent", value: "sum(rows_returned)", on: connection),
                try await counts(tenant, period, column: "purpose_key", on: connection)
            )
        }
        // Every bucket of the period, the empty ones too, so time reads evenly left to right.
        let step: TimeInterval = hourly ? 3600 : 86400
        var byStart: [Date: (Int, Int)] = [:]
        for (start, allow, deny) in buckets { byStart[start] = (allow, deny) }
        var columns: [(label: String, values: [Int])] = []
        var start = period.from
        while start < period.to {
            let label = Timestamp.iso8601(start)
            let (allow, deny) = byStart[start] ?? (0, 0)
            columns.append((hourly ? String(label.dropFirst(5).prefix(11)).replacingOccurrences(of: "T", with: " ") : String(label.prefix(10)), [allow, deny]))
            start = start.addingTimeInterval(step)
        }
        try await accessLog.review(principal, context, target: "access-log:charts", rows: buckets.count, tenantID: tenant.id)

        let series = [ChartSeries(name: ConsoleText.allow(view.language), color: "#2e7d32"), ChartSeries(name: ConsoleText.deny(view.language), color: "#b3261e")]
        let empty = ConsoleText.noData(view.language)
        let title = hourly ? ConsoleText.hourly(view.language) : ConsoleText.hourly(view.language).replacingOccurrences(of: "時間別", with: "日別")
            .replacingOccurrences(of: "per hour", with: "per day")
        var main = periodForm(view, action: ConsoleRegistryPages.base(tenant) + "/charts", period)
        main += "<p>\(HTML.escape(tenant.name)) · \(HTML.escape(period.text))</p><div class=\"charts\">"
        main += SVGChart.stackedColumns(id: "chart-hourly", title: title, buckets: columns, series: series, emptyText: empty)
        main += SVGChart.horizontalBars(id: "chart-denials", title: ConsoleText.denials(view.language), bars: denials.map { ($0.0, $0.1) }, color: "#b3261e", emptyText: empty)
        main += SVGChart.horizontalBars(
            id: "chart-agents", title: ConsoleText.topAgents(view.language),
            bars: agents.map { (agentLabel($0.0, view.snapshot), $0.1) }, color: "#1f5f8b", emptyText: empty
        )
        main += SVGChart.horizontalBars(id: "chart-purposes", title: ConsoleText.perPurpose(view.language), bars: purposes.map { ($0.0, $0.1) }, color: "#6a4c93", emptyText: empty)
        main += "</div>"
        return view.page("\(view.t(.charts)) — \(tenant.name)", main)
    }

    private func agentLabel(_ employeeID: String, _ snapshot: RegistrySnapshot) -> String {
        snapshot.agent(employeeID: employeeID).map { "\(employeeID) \($0.name)" } ?? employeeID
    }

    // MARK: The report

    struct AgentLine: Sendable {
        var agent: String
        var lookups, reads, updates, denials, records, special: Int
    }

    struct Report: Sendable {
        var tenant: Tenant
        var period: Period
        var agents: [AgentLine]
        var purposes: [(String, Int)]
        var denials: [(String, Int)]
        var total: AgentLine {
            agents.reduce(AgentLine(agent: "Σ", lookups: 0, reads: 0, updates: 0, denials: 0, records: 0, special: 0)) {
                AgentLine(agent: "Σ", lookups: $0.lookups + $1.lookups, reads: $0.reads + $1.reads, updates: $0.updates + $1.updates,
                          denials: $0.denials + $1.denials, records: $0.records + $1.records, special: $0.special + $1.special)
            }
        }
    }

    private func report(_ request: Request, _ context: ItakuRequestContext, target: String) async throws -> Report {
        let (principal, tenant) = try admin.tenant(context, [.clientAdmin, .reviewer])
        let period = try Self.period(request)
        var (filter, binds) = scope(tenant, period)
        // An access touched a special category (要配慮, 個人番号) when a field of that category
        // of its dataset left the gateway other than redacted (the entry names the fields and
        // their transforms), on a record that went out, or was updated.
        var special: [String] = []
        for dataset in (context.snapshot?.datasets[tenant.id] ?? [:]).values {
            let names = dataset.schema.fields.filter { $0.category == .sensitive || $0.category == .individualNumber }.map(\.name)
            guard !names.isEmpty else { continue }
            binds.append(dataset.name)
            binds.append(names)
            special.append(
                "(dataset = $\(binds.count - 1) AND EXISTS (SELECT 1 FROM jsonb_each_text(fields) f "
                    + "WHERE f.key = ANY ($\(binds.count)::text[]) AND f.value <> 'redact'))"
            )
        }
        let specialCondition = special.isEmpty ? "false" : special.joined(separator: " OR ")
        // Entries without an established agent (unverified or unknown) are a row of their own,
        // so the totals are the tenant's.
        let sql = """
            SELECT coalesce(agent, ''), count(*) FILTER (WHERE operation = 'lookup')::bigint, count(*) FILTER (WHERE operation = 'read')::bigint,
                   count(*) FILTER (WHERE operation = 'update')::bigint, count(*) FILTER (WHERE decision = 'deny')::bigint,
                   coalesce(sum(rows_returned), 0)::bigint,
                   count(*) FILTER (WHERE decision = 'allow' AND (operation = 'update' OR rows_returned > 0) AND (\(specialCondition)))::bigint
            FROM itaku.access_log WHERE \(filter) GROUP BY 1 ORDER BY 1
            """
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        let (agents, purposes, denials) = try await read(tenant) { connection in
            let agents = try await connection.query(query).map {
                AgentLine(agent: try $0.decode(0), lookups: try $0.decode(1), reads: try $0.decode(2), updates: try $0.decode(3),
                          denials: try $0.decode(4), records: try $0.decode(5), special: try $0.decode(6))
            }
            return (
                agents,
                try await counts(tenant, period, column: "purpose_key", limit: nil, on: connection),
                try await counts(tenant, period, column: "reason", extra: "AND decision = 'deny'", limit: nil, on: connection)
            )
        }
        try await accessLog.review(principal, context, target: target, rows: agents.count, tenantID: tenant.id)
        return Report(tenant: tenant, period: period, agents: agents, purposes: purposes, denials: denials)
    }

    private func agentRow(_ line: AgentLine, _ snapshot: RegistrySnapshot) -> [String] {
        let name = line.agent.isEmpty ? "(agent not established)" : snapshot.agent(employeeID: line.agent)?.name ?? ""
        return [line.agent, name] + [line.lookups, line.reads, line.updates, line.denials, line.records, line.special].map(String.init)
    }

    private func agentHeader(_ language: ConsoleLanguage) -> [String] {
        [ConsoleText.employeeID, .name, .lookups, .reads, .updates, .denied, .recordsReturned, .specialAccesses].map { $0(language) }
    }

    private func reportPage(_ request: Request, _ context: ItakuRequestContext, _ view: ConsoleView) async throws -> Response {
        let report = try await report(request, context, target: "access-log:report")
        let base = ConsoleRegistryPages.base(report.tenant)
        var main = periodForm(view, action: base + "/report", report.period)
        main += "<p>\(view.t(.reportLead))</p><p><strong>\(HTML.escape(report.tenant.name))</strong> (<code>\(HTML.escape(report.tenant.code))</code>) · "
        main += "\(view.t(.period)): \(HTML.escape(report.period.text))</p>"
        main += "<p class=\"toolbar\"><a id=\"report-pdf\" href=\"\(base)/report.pdf\(HTML.escape(report.period.query))\">\(view.t(.downloadPDF))</a>"
        main += "<a id=\"report-csv\" href=\"\(base)/report.csv\(HTML.escape(report.period.query))\">\(view.t(.downloadCSV))</a></p>"
        func numbers(_ cells: [String], from index: Int) -> [String] {
            cells.enumerated().map { $0.offset >= index ? "<td class=\"num\">\(HTML.escape($0.element))</td>" : ConsoleView.cell($0.element) }
        }
        main += "<h2>\(view.t(.agent))</h2>"
        main += ConsoleView.table(
            id: "report-agents", agentHeader(view.language).map(HTML.escape),
            report.agents.map { ("", numbers(agentRow($0, view.snapshot), from: 2)) }
                + [("total", numbers(agentRow(report.total, view.snapshot).enumerated().map { $0.offset == 0 ? "Σ" : $0.element }, from: 2))]
        )
        main += "<h2>\(view.t(.purposes))</h2>"
        main += ConsoleView.table(id: "report-purposes", [view.t(.purpose), view.t(.accesses)], report.purposes.map { ("", numbers([$0.0, String($0.1)], from: 1)) })
        main += "<h2>\(view.t(.denials))</h2>"
        main += ConsoleView.table(id: "report-denials", [view.t(.reason), view.t(.accesses)], report.denials.map { ("", numbers([$0.0, String($0.1)], from: 1)) })
        return view.page("\(view.t(.reportTitle)) — \(report.tenant.name)", main)
    }

    private func reportCSV(_ request: Request, _ context: ItakuRequestContext, _ view: ConsoleView) async throws -> Response {
        let report = try await report(request, context, target: "access-log:report:csv")
        var csv = "section,key,name,accesses,lookups,reads,updates,denials,records_returned,special_category_accesses\n"
        func line(_ cells: [String]) { csv += cells.map(AccessEntry.csvCell).joined(separator: ",") + "\n" }
        func agentLine(_ section: String, _ agent: AgentLine) {
            var cells = agentRow(agent, view.snapshot)
            cells.insert(String(agent.lookups + agent.reads + agent.updates), at: 2)
            line([section] + cells)
        }
        for agent in report.agents { agentLine("agent", agent) }
        agentLine("total", report.total)
        for (purpose, count) in report.purposes { line(["purpose", purpose, "", String(count), "", "", "", "", "", ""]) }
        for (reason, count) in report.denials { line(["denial", reason, "", String(count), "", "", "", String(count), "", ""]) }
        var headers = ConsoleView.securityHeaders("text/csv; charset=utf-8")
        headers[.contentDisposition] = "attachment; filename=\"handling-report-\(report.tenant.code)-\(report.period.fromDay)-\(report.period.toDay).csv\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: csv)))
    }

    private func reportPDF(_ request: Request, _ context: ItakuRequestContext, _ view: ConsoleView) async throws -> Response {
        let report = try await report(request, context, target: "access-log:report:pdf")
        let language = view.language
        let document = PDFReport(
            title: language == .ja ? "取扱状況報告" : "Handling-status report (取扱状況報告)",
            subtitle: "\(report.tenant.name) (\(report.tenant.code)) · \(report.period.text) · \(Timestamp.iso8601(Date()).prefix(19))Z",
            sections: [
                .init(heading: ConsoleText.agent(language), columns: agentHeader(language),
                      rows: report.agents.map { agentRow($0, view.snapshot) } + [["Σ"] + agentRow(report.total, view.snapshot).dropFirst()]),
                .init(heading: ConsoleText.purposes(language), columns: [ConsoleText.purpose(language), ConsoleText.accesses(language)],
                      rows: report.purposes.map { [$0.0, String($0.1)] }),
                .init(heading: ConsoleText.denials(language), columns: [ConsoleText.reason(language), ConsoleText.accesses(language)],
                      rows: report.denials.map { [$0.0, String($0.1)] }),
            ]
        )
        var headers = ConsoleView.securityHeaders("application/pdf")
        headers[.contentDisposition] = "attachment; filename=\"handling-report-\(report.tenant.code)-\(report.period.fromDay)-\(report.period.toDay).pdf\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: document.render())))
    }
}
