import Foundation
import HTTPTypes
import Hummingbird

/// The console's two languages. Chosen by the `itaku_lang` cookie (the switch on every page),
/// else by `Accept-Language`, else Japanese: the clients and auditors Itaku serves read Japanese.
enum ConsoleLanguage: String, Sendable {
    case ja, en

    static func of(_ request: Request) -> ConsoleLanguage {
        if let chosen = request.cookies["itaku_lang"].flatMap({ ConsoleLanguage(rawValue: $0.value) }) { return chosen }
        guard let header = request.headers[.acceptLanguage] else { return .ja }
        // The first listed of ja and en wins; quality values are rare enough in practice.
        for part in header.split(separator: ",") {
            let tag = part.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            if tag.hasPrefix("ja") { return .ja }
            if tag.hasPrefix("en") { return .en }
        }
        return .ja
    }
}

/// Every text the console shows, in both languages. A key missing here is a compile error.
enum ConsoleText: String {
    case appName, signIn, signInLead, key, signOut, tenants, tenant, code, name, status, timeZone
    case datasets, purposes, roster, accessLog, charts, report, home
    case field, type, category, lookup, keyField, retentionDays, required, special
    case currentVersion, version, created, versions, edit, save, definition, diff, compare, before, after, noChanges
    case employeeID, site, active, validFrom, validUntil, assignedPurposes, current, expired, upcoming, downloadCSV
    case search, agent, integration, subject, purpose, operation, decision, reason, from, to, lookupKind, lookupValue, record, caseRef, limit
    case any, time, actor, rows, entries, nextPage, export, verify, verifyLead, entry, noEntries, newestFirst
    case streams, stream, verifiedThrough, clean, notClean, checkedEntries, checkpoints, complete, incomplete, verified, problems
    case period, show, hourly, denials, topAgents, perPurpose, noData, allow, deny
    case reportTitle, reportLead, denied, accesses, recordsReturned, specialAccesses, lookups, reads, updates, downloadPDF
    case notFound, forbidden, csrfFailed, invalidKey, signedOut, error, back, utcNote

    func callAsFunction(_ language: ConsoleLanguage) -> String {
        let pair = Self.table[self] ?? (rawValue, rawValue)
        return language == .ja ? pair.0 : pair.1
    }

    // (Japanese, English)
    private static let table: [ConsoleText: (String, String)] = [
        .appName: ("Itaku 監督コンソール", "Itaku supervision console"),
        .signIn: ("サインイン", "Sign in"),
        .signInLead: ("発行されたキー（itk_…）でサインインしてください。", "Sign in with the key you were issued (itk_…)."),
        .key: ("キー", "Key"), .signOut: ("サインアウト", "Sign out"),
        .tenants: ("委託元", "Clients"), .tenant: ("委託元", "Client"), .code: ("コード", "Code"), .name: ("名称", "Name"),
        .status: ("状態", "Status"), .timeZone: ("タイムゾーン", "Time zone"),
        .datasets: ("データセット", "Datasets"), .purposes: ("利用目的", "Purposes"),
        .roster: ("取扱者リスト", "Handler roster"), .accessLog: ("アクセスログ", "Access log"),
        .charts: ("グラフ", "Charts"), .report: ("取扱状況報告", "Handling-status report"), .home: ("ホーム", "Home"),
        .field: ("項目", "Field"), .type: ("型", "Type"), .category: ("区分", "Category"), .lookup: ("検索キー", "Lookup"),
        .keyField: ("レコードキー", "Record key"), .retentionDays: ("保存期間（日）", "Retention (days)"),
        .required: ("必須", "Required"), .special: ("特別な区分", "Special category"),
        .currentVersion: ("現行版", "Current version"), .version: ("版", "Version"), .created: ("作成日時", "Created"),
        .versions: ("版の履歴", "Versions"), .edit: ("編集", "Edit"), .save: ("保存（新しい版）", "Save (new version)"),
        .definition: ("定義（JSON）", "Definition (JSON)"), .diff: ("差分", "Differences"), .compare: ("比較", "Compare"),
        .before: ("変更前", "Before"), .after: ("変更後", "After"), .noChanges: ("差分はありません。", "No differences."),
        .employeeID: ("社員番号", "Employee id"), .site: ("拠点", "Site"), .active: ("有効", "Active"),
        .validFrom: ("開始", "Valid from"), .validUntil: ("終了", "Valid until"),
        .assignedPurposes: ("担当する利用目的", "Assigned purposes"), .current: ("有効", "current"),
        .expired: ("期限切れ", "expired"), .upcoming: ("開始前", "upcoming"), .downloadCSV: ("CSV ダウンロード", "Download CSV"),
        .search: ("検索", "Search"), .agent: ("オペレーター", "Agent"), .integration: ("連携 ID", "Integration id"),
        .subject: ("本人のレコードキー", "Subject (record key)"), .purpose: ("利用目的", "Purpose"),
        .operation: ("操作", "Operation"), .decision: ("判定", "Decision"), .reason: ("理由", "Reason"),
        .from: ("開始日時", "From"), .to: ("終了日時", "To"), .lookupKind: ("検索種別", "Lookup kind"),
        .lookupValue: ("検索値", "Lookup value"), .record: ("レコード ID", "Record id"), .caseRef: ("案件番号", "Case"),
        .limit: ("件数", "Per page"), .any: ("すべて", "any"), .time: ("日時", "Time"), .actor: ("実行者", "Actor"),
        .rows: ("件数", "Rows"), .entries: ("件", "entries"), .nextPage: ("次のページ", "Next page"),
        .export: ("エクスポート", "Export"), .verify: ("改ざん検証", "Verify"),
        .verifyLead: ("全ストリームのハッシュチェーンと署名付きチェックポイントを検証します。",
                      "Checks every stream's hash chain and signed checkpoints."),
        .entry: ("アクセス記録", "Access entry"), .noEntries: ("該当する記録はありません。", "No entries match."),
        .newestFirst: ("新しい順", "newest first"), .streams: ("ストリーム", "Streams"), .verifiedThrough: ("検証済みの末尾", "Verified through"),
        .clean: ("改ざんは見つかりませんでした", "No tampering found"), .notClean: ("問題が見つかりました", "Problems found"), .stream: ("ストリーム", "Stream"),
        .checkedEntries: ("検証した記録", "Entries checked"), .checkpoints: ("チェックポイント", "Checkpoints"),
        .complete: ("すべて検証済み", "complete"), .incomplete: ("時間内に一部のみ検証", "partial (time limit)"),
        .verified: ("検証結果", "Verification"), .problems: ("問題", "Problems"),
        .period: ("期間", "Period"), .show: ("表示", "Show"), .hourly: ("時間別アクセス数（判定別）", "Accesses per hour by decision"),
        .denials: ("拒否の理由", "Denials by reason"), .topAgents: ("返却レコード数の多いオペレーター", "Top agents by records returned"),
        .perPurpose: ("利用目的別アクセス数", "Accesses per purpose"), .noData: ("この期間のデータはありません", "No data in this period"),
        .allow: ("許可", "allow"), .deny: ("拒否", "deny"),
        .reportTitle: ("取扱状況報告", "Handling-status report"),
        .reportLead: ("委託先における個人データの取扱状況（監督義務・PMS 監査の記録）",
                      "How the contractor handled the entrusted personal data (evidence for supervision and PrivacyMark audits)"),
        .denied: ("拒否", "Denied"), .accesses: ("アクセス数", "Accesses"), .recordsReturned: ("返却レコード数", "Records returned"),
        .specialAccesses: ("要配慮・個人番号のアクセス", "Special-category accesses"), .lookups: ("検索", "Lookups"),
        .reads: ("閲覧", "Reads"), .updates: ("更新", "Updates"), .downloadPDF: ("PDF ダウンロード", "Download PDF"),
        .notFound: ("見つかりません", "Not found"), .forbidden: ("権限がありません", "Forbidden"),
        .csrfFailed: ("フォームの有効期限が切れたか、不正な送信です。ページを開き直してください。",
                      "The form expired or did not come from this console. Open the page again."),
        .invalidKey: ("キーが正しくないか、コンソールを使えないキーです。", "The key is not valid, or not one that may use the console."),
        .signedOut: ("サインアウトしました。", "Signed out."), .error: ("エラー", "Error"), .back: ("戻る", "Back"),
        .utcNote: ("日時は UTC（例: 2026-12-01T09:00）", "Times in UTC (e.g. 2026-12-01T09:00)"),
    ]
}
