import Foundation
import ItakuCore

/// How entries leave Itaku: JSON (search pages and JSON lines), CSV and OCSF 1.x API Activity.
/// None of these forms carries personal data values: digests stay digests.
extension AccessEntry {
    /// The JSON object of an entry (keys in snake_case, digests in hex).
    public var jsonObject: String {
        func text(_ value: String?) -> String { value.map(JSONText.string) ?? "null" }
        func number(_ value: Int?) -> String { value.map(String.init) ?? "null" }
        var pairs: [(String, String)] = [
            ("entry_id", text(id.lowercasedString)),
            ("occurred_at", text(Timestamp.iso8601(occurredAt))),
            ("tenant_id", text(tenantID?.lowercasedString)),
            ("actor_role", text(actorRole)), ("actor_key_id", text(actorKeyID?.lowercasedString)),
            ("integration_id", text(integrationID?.lowercasedString)), ("agent", text(agent)),
            ("agent_verified", agentVerified.map { $0 ? "true" : "false" } ?? "null"),
            ("purpose", text(purposeKey)), ("purpose_version", number(purposeVersion)), ("case", text(caseRef)),
            ("operation", text(operation.rawValue)), ("dataset", text(dataset)), ("target", text(target)),
            ("version_before", number(versionBefore)), ("version_after", number(versionAfter)),
            ("lookup_kind", text(lookupKind)), ("lookup_digest", text(lookupDigest.map(Self.hex))),
            ("record_ids", "[" + recordIDs.map { JSONText.string($0.lowercasedString) }.joined(separator: ",") + "]"),
            ("subject_digests", "[" + subjectDigests.map(JSONText.string).joined(separator: ",") + "]"),
            ("fields", fields.map { "{" + $0.sorted { $0.key < $1.key }.map { JSONText.string($0.key) + ":" + JSONText.string($0.value) }.joined(separator: ",") + "}" } ?? "null"),
            ("decision", text(decision.rawValue)), ("reason", text(reason)), ("rows_returned", String(rowsReturned)),
            ("request_id", text(requestID)), ("client_address", text(clientAddress)),
        ]
        if let chain {
            pairs += [("stream", text(chain.stream)), ("seq", String(chain.seq)),
                      ("prev_hash", text(Self.hex(chain.previousHash))), ("hash", text(Self.hex(chain.hash))),
                      ("seal", text(chain.seal.map(Self.hex)))]
        }
        return "{" + pairs.map { JSONText.string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    public static let csvHeader = "entry_id,occurred_at,tenant_id,actor_role,agent,agent_verified,purpose,purpose_version,case,operation,dataset,target,lookup_kind,lookup_digest,record_ids,decision,reason,rows_returned,request_id,stream,seq,hash\n"

    /// One CSV line. Cells that a spreadsheet would run as a formula (= + - @, and tab or
    /// carriage return) are neutralised with a leading apostrophe.
    public var csvLine: String {
        let cells: [String?] = [
            id.lowercasedString, Timestamp.iso8601(occurredAt),
            tenantID?.lowercasedString, actorRole, agent, agentVerified.map { $0 ? "true" : "false" }, purposeKey,
            purposeVersion.map(String.init), caseRef, operation.rawValue, dataset, target, lookupKind, lookupDigest.map(Self.hex),
            recordIDs.map { $0.lowercasedString }.joined(separator: " "), decision.rawValue, reason, String(rowsReturned),
            requestID, chain?.stream, chain.map { String($0.seq) }, chain.map { Self.hex($0.hash) },
        ]
        return cells.map { Self.csvCell($0 ?? "") }.joined(separator: ",") + "\n"
    }

    public static func csvCell(_ value: String) -> String {
        var value = value
        if let first = value.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(first) { value = "'" + value }
        if value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return value
    }

    /// OCSF 1.x API Activity (class 6003) as one JSON object.
    public func ocsf(tenantCode: String?) -> String {
        let activity = switch operation {
        case .lookup, .read, .review: 2
        case .update, .configure: 3
        case .dispose: 4
        case .subjectRequest: 99
        }
        func text(_ value: String?) -> String { value.map(JSONText.string) ?? "null" }
        let resources = recordIDs.map {
            "{\"uid\":\(JSONText.string($0.lowercasedString)),\"type\":\(text(dataset ?? "record"))"
                + (fields.map { ",\"data\":{\"fields\":[" + $0.keys.sorted().map(JSONText.string).joined(separator: ",") + "]}" } ?? "") + "}"
        }
        let policy = purposeKey.map { "\"policy\":{\"uid\":\(JSONText.string($0)),\"name\":\(JSONText.string($0)),\"version\":\(text(purposeVersion.map(String.init)))}," } ?? ""
        return "{" + [
            "\"category_uid\":6", "\"class_uid\":6003", "\"activity_id\":\(activity)", "\"type_uid\":\(6003 * 100 + activity)",
            "\"time\":\(AccessEntry.microseconds(occurredAt) / 1000)", "\"severity_id\":1",
            "\"status_id\":\(decision == .allow ? 1 : 2)", "\"status_detail\":\(JSONText.string(reason))",
            "\"metadata\":{\"product\":{\"name\":\"Itaku\",\"vendor_name\":\"Itaku\"},\"version\":\"1.8.0\",\"uid\":\(JSONText.string(id.lowercasedString)),\"tenant_uid\":\(text(tenantCode ?? tenantID?.lowercasedString)),\"correlation_uid\":\(text(caseRef))}",
            "\"actor\":{\"user\":{\"uid\":\(text(agent ?? actorKeyID?.lowercasedString))},\"app_uid\":\(text(integrationID?.lowercasedString)),\"authorizations\":[{" + policy + "\"decision\":\(JSONText.string(decision.rawValue))}]}",
            "\"api\":{\"operation\":\(JSONText.string(operation.rawValue)),\"request\":{\"uid\":\(text(requestID))}}",
            "\"src_endpoint\":{\"ip\":\(text(clientAddress))}",
            "\"resources\":[" + resources.joined(separator: ",") + "]",
        ].joined(separator: ",") + "}"
    }
}
