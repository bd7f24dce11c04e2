import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuEnforcer
import ItakuRegistry
import Synchronization

/// The agent data path below HTTP: an agent tool looks a caller up, reads the records its case
/// found, and updates them, always under a purpose and a case. The enforcer decides everything,
/// per request and per record; every decision, allowed or denied, is one access entry, and no
/// personal data leaves before that entry is durably committed.
public struct AgentDataService: Sendable {
    let store: any AgentRecordStore
    let accessLog: AccessLogWriter
    let keyring: Keyring
    let dataKeys: DataKeys
    /// `cases.bindingMinutes`: how long a lookup's records stay bound to its case.
    let caseBinding: Duration
    /// `agents.assertedLookupsPerMinute`: an asserted integration's lookups per tenant and
    /// purpose, whatever agents it names.
    let assertedLookupsPerMinute: Int
    private let digesters = Digesters()

    public init(
        store: any AgentRecordStore, accessLog: AccessLogWriter, keyring: Keyring, dataKeys: DataKeys,
        caseBinding: Duration = .seconds(30 * 60), assertedLookupsPerMinute: Int = 600
    ) {
        self.store = store
        self.accessLog = accessLog
        self.keyring = keyring
        self.dataKeys = dataKeys
        self.caseBinding = caseBinding
        self.assertedLookupsPerMinute = assertedLookupsPerMinute
    }

    /// Serves one call under `snapshot` (the registry as the whole request sees it). Throws
    /// `AgentRefusal` for every refusal; other errors mean nothing was answered.
    public func serve(_ call: AgentCall, snapshot: RegistrySnapshot) async throws -> AgentResult {
        var pending = PendingCall(call, snapshot: snapshot)
        switch call.input {
        case .lookup(let by, let value): return try await lookup(&pending, by: by, value: value, snapshot: snapshot)
        case .read: return try await read(&pending, snapshot: snapshot)
        case .update(let changes): return try await update(&pending, changes: changes, snapshot: snapshot)
        }
    }

    // MARK: Lookup

    private func lookup(_ call: inout PendingCall, by: String, value: String, snapshot: RegistrySnapshot) async throws -> AgentResult {
        call.access.lookupField = by
        // Only a tenant this integration serves is looked at before the decision: for any other,
        // "not yours" must answer exactly like "does not exist".
        let tenant = call.tenant
        let schema = tenant.flatMap { snapshot.datasets[$0.id]?[call.access.dataset] }?.schema
        let field = schema?.field(by)
        let kind = field?.lookup
        var digest: [UInt8]?
        if let tenant, let kind, let field {
            // The value is digested at once; only the digest is used and logged.
            if let normalized = LookupDigester.normalize(value, for: field) {
                digest = digester(tenant.id).digest(normalized: normalized, kind: kind)
                call.entry.lookupKind = kind.rawValue
                call.entry.lookupDigest = digest
            } else {
                call.refuse(.badRequest("invalid_lookup_value", "The value is not a valid \(kind.rawValue).", pointer: "value"))
            }
        }
        let decision = try await decide(&call, snapshot: snapshot)
        guard let tenant, let kind, let digest, let dataset = snapshot.datasets[tenant.id]?[call.access.dataset] else {
            throw AgentServiceError.inconsistent
        }
        let key = LookupKey(field: by, kind: kind.rawValue, digest: digest)
        let records = try await store.lookup(tenant: tenant.id, dataset: dataset.id, key: key, limit: decision.maxResults)
        return try await answer(records, decision: decision, call: call, tenant: tenant, schema: dataset.schema)
    }

    // MARK: Read

    private func read(_ call: inout PendingCall, snapshot: RegistrySnapshot) async throws -> AgentResult {
        let recordID = call.recordID
        call.access.caseBound = try await isBound(recordID, call: call)
        // The record asked for is in the entry, allowed or not (an id is not personal data).
        if let recordID { call.entry.recordIDs = [recordID] }
        let decision = try await decide(&call, snapshot: snapshot)
        call.entry.recordIDs = []
        guard let tenant = call.tenant, let recordID, let dataset = snapshot.datasets[tenant.id]?[call.access.dataset] else {
            throw AgentServiceError.inconsistent
        }
        let record = try await store.read(tenant: tenant.id, dataset: dataset.id, record: recordID)
        return try await answer(record.map { [$0] } ?? [], decision: decision, call: call, tenant: tenant, schema: dataset.schema)
    }

    // MARK: Update

    private func update(_ call: inout PendingCall, changes: [String: String], snapshot: RegistrySnapshot) async throws -> AgentResult {
        let recordID = call.recordID
        let dataset = call.tenant.flatMap { snapshot.datasets[$0.id]?[call.access.dataset] }
        let names = changes.keys.sorted()
        if names.isEmpty { call.refuse(.invalid("fields_required", [.init(code: "fields_required", pointer: "fields")])) }
        if !names.allSatisfy(DatasetSchema.isFieldName) || names.count > PendingCall.maxFields {
            call.refuse(.badRequest("invalid_fields", "A field name is not valid.", pointer: "fields"))
        }
        // Values are checked against the schema (the value is never echoed); the answer comes
        // after the enforcer's own checks, as a logged decision.
        if let schema = dataset?.schema {
            let issues: [AgentRefusal.Issue] = names.compactMap { name in
                guard let field = schema.field(name), let value = changes[name], !value.isEmpty else { return nil }
                return RecordValidator.problem(value, field).map { AgentRefusal.Issue(code: $0, pointer: "fields.\(name)") }
            }
            if !issues.isEmpty { call.refuse(.invalid("invalid_value", issues)) }
        }
        call.access.fields = []
        call.access.updating = names.filter(DatasetSchema.isFieldName)
        call.access.caseBound = try await isBound(recordID, call: call)
        if let recordID { call.entry.recordIDs = [recordID] }
        let decision = try await decide(&call, snapshot: snapshot)
        guard let tenant = call.tenant, let dataset, let recordID else { throw AgentServiceError.inconsistent }
        call.entry.purposeVersion = decision.purposeVersion
        let prepared = call.entry
        let updating = call.access.updating
        let dataKeys = self.dataKeys
        let digester = self.digester(tenant.id)
        let written: AccessEntry
        do {
            written = try await store.update(tenant: tenant.id, dataset: dataset, record: recordID) { record, writer in
                var entry = prepared
                // The locked record itself may be withheld: then the denial is the entry, committed
                // in place of the change.
                let release = record.map { ScopeEnforcer.release(status: $0.status, expired: $0.expired) } ?? .notFound
                guard let record, release == .allowed else {
                    entry.decision = .deny
                    entry.reason = release.rawValue
                    return entry
                }
                let before = try dataKeys.open(record.document, tenant: tenant.id, record: recordID.uppercasedString)
                try await writer.write(changes, before: before, sealer: try dataKeys.sealer(for: tenant.id), digester: digester)
                entry.fields = Dictionary(updating.map { ($0, "updated") }, uniquingKeysWith: { first, _ in first })
                entry.subjectDigests = [digester.subjectDigest(externalID: record.externalID)]
                return entry
            }
        } catch let refusal as AgentRefusal {
            // Refused before anything was changed or logged (`dataset_changed`): the record it
            // reserved of the hour goes back.
            await giveBack(call, carried: 0, decision: decision)
            throw refusal
        }
        guard written.decision == .allow else {
            let reason = ReasonCode(rawValue: written.reason) ?? .notFound
            throw AgentRefusal(status: reason.httpStatus, code: written.reason, title: "Access denied", accessID: written.id)
        }
        return .updated(accessID: written.id, recordID: recordID, fields: updating)
    }

    // MARK: Deciding

    /// Bound means: an allowed lookup by this agent under this case returned this record within
    /// `cases.bindingMinutes`, as its committed access entry records. A record that does not
    /// exist is simply not bound, so record ids cannot be probed.
    private func isBound(_ recordID: UUID?, call: PendingCall) async throws -> Bool {
        guard let tenant = call.tenant, let recordID, let agent = call.access.agent, let caseRef = call.access.caseRef else { return false }
        return try await store.isBound(
            tenant: tenant.id, integration: call.access.integrationID, agent: agent, caseRef: caseRef, record: recordID,
            minutes: Int(caseBinding.components.seconds / 60)
        )
    }

    /// Decides, reserves the volume the purpose allows, and logs a denial (throwing its
    /// refusal) or returns the allowing decision. The enforcer's checks come first, in
    /// DESIGN.md §6 order; a request the enforcer allows but whose input is malformed is then
    /// denied with that input's code, logged like any other decision.
    private func decide(_ call: inout PendingCall, snapshot: RegistrySnapshot) async throws -> Decision {
        let now = Date()
        var decision = ScopeEnforcer.decide(call.access, snapshot: snapshot, now: now)
        var refusal: AgentRefusal?
        if decision.isAllowed, let problem = call.refusal {
            refusal = problem
        } else if decision.reason == .caseRequired, let problem = call.refusal, problem.code == "invalid_case" {
            // The tool did send a case, one the tenant does not accept: say so (400), at the
            // place of the case check.
            refusal = problem
        } else if decision.isAllowed, let tenantID = decision.tenantID, let purpose = call.access.purposeKey {
            // Usage is reserved atomically (every instance shares the counters), so concurrent
            // requests can never pass a limit together. A reservation that finds the limit
            // reached decides volume_exceeded through the enforcer itself.
            let limits = snapshot.purposes[tenantID]?[purpose]?.definition.limits
            let asserted = snapshot.integrations[call.access.integrationID]?.trustMode == .asserted
            // Records are reserved as many as the answer may carry, at most what the hour has
            // left; what the answer does not carry is given back after it (answer(...)).
            let wanted = call.access.operation == .lookup ? decision.maxResults : 1
            let perMinute = call.access.operation == .lookup ? limits?.lookupsPerMinute : nil
            let perHour = limits?.recordsPerHour
            let integrationLimit = call.access.operation == .lookup && asserted ? assertedLookupsPerMinute : nil
            if let agent = call.access.agent, perMinute != nil || perHour != nil || integrationLimit != nil {
                let granted = try await store.reserve(UsageReservation(
                    tenant: tenantID, purpose: purpose, agent: agent, lookupsPerMinute: perMinute,
                    integration: asserted ? call.access.integrationID : nil, integrationLookupsPerMinute: integrationLimit,
                    recordsPerHour: perHour, records: wanted
                ))
                // The counts say "limit reached" exactly when the reservation was refused.
                if let perMinute, !granted.lookup { call.access.lookupsLastMinute = perMinute }
                if let perHour, granted.lookup, granted.integration {
                    if granted.records > 0 {
                        call.reservedRecords = granted.records
                        call.reservedHour = granted.hour
                    } else {
                        call.access.recordsLastHour = perHour
                    }
                }
                decision = ScopeEnforcer.decide(call.access, snapshot: snapshot, now: now)
                // A lookup returns at most what the hour has left of records_per_hour.
                if perHour != nil, decision.isAllowed, call.access.operation == .lookup, call.reservedRecords > 0 {
                    decision.maxResults = min(decision.maxResults, call.reservedRecords)
                }
                if !granted.integration && decision.isAllowed {
                    decision = ScopeEnforcer.volumeExceeded(decision, now: now, snapshot: snapshot)
                }
            }
        }
        call.entry.tenantID = decision.tenantID
        call.entry.purposeVersion = decision.purposeVersion
        call.entry.reason = refusal?.code ?? decision.reason.rawValue
        guard decision.isAllowed, refusal == nil else {
            call.entry.decision = .deny
            // Only the names of the dataset's fields are written: a name that is none could be
            // anything. (The caller's problem still names every field it asked for.)
            let schema = decision.tenantID.flatMap { snapshot.datasets[$0]?[call.access.dataset] }?.schema
            let denied = decision.deniedFields.filter { schema?.field($0) != nil }
            if !denied.isEmpty {
                call.entry.fields = Dictionary(denied.map { ($0, "denied") }, uniquingKeysWith: { first, _ in first })
            }
            let written = try await accessLog.append(call.entry)
            var problem = refusal ?? AgentRefusal(
                status: decision.reason.httpStatus, code: decision.reason.rawValue, title: "Access denied",
                detail: decision.deniedFields.isEmpty ? nil : "Not allowed under this purpose: " + decision.deniedFields.joined(separator: ", ")
            )
            problem.accessID = written.id
            if let retryAfter = decision.retryAfter { problem.retryAfter = max(1, retryAfter) }
            throw problem
        }
        call.entry.decision = .allow
        return decision
    }

    // MARK: Answering

    /// Withholds the records the enforcer does not release, transforms the rest, and answers
    /// once the entry is durably committed. A lookup's entry lists the records it released: from
    /// its commit on, they are bound to the agent's case.
    private func answer(
        _ found: [StoredRecord], decision: Decision, call: PendingCall, tenant: Tenant, schema: DatasetSchema
    ) async throws -> AgentResult {
        var entry = call.entry
        let transformer = FieldTransformer(key: keyring.digestKey(tenant: tenant.id.uppercasedString))
        let digester = self.digester(tenant.id)
        var records: [AgentRecord] = []
        var withheld: [String] = []
        for record in found {
            let release = ScopeEnforcer.release(status: record.status, expired: record.expired)
            guard release == .allowed else {
                withheld.append("\(record.id.lowercasedString):\(release.rawValue)")
                continue
            }
            let values = try dataKeys.open(record.document, tenant: tenant.id, record: record.id.uppercasedString)
            var fields: [String: String] = [:]
            fields.reserveCapacity(decision.fields.count)
            for (name, transform) in decision.fields {
                guard let value = values[name], let field = schema.field(name),
                    let shown = transformer.apply(transform, to: value, field: field)
                else { continue }
                fields[name] = shown
            }
            records.append(AgentRecord(id: record.id, fields: fields))
            entry.recordIDs.append(record.id)
            entry.subjectDigests.append(digester.subjectDigest(externalID: record.externalID))
        }
        entry.fields = Dictionary(decision.fields.map { ($0.name, $0.transform.rawValue) }, uniquingKeysWith: { first, _ in first })
        entry.rowsReturned = records.count
        if !withheld.isEmpty { entry.target = "withheld:" + withheld.joined(separator: ",") }
        // A read whose record is gone (disposed of since its case was bound) released nothing:
        // its entry says so, as an update's does.
        let gone = call.access.operation == .read && records.isEmpty && withheld.isEmpty
        if gone {
            entry.decision = .deny
            entry.reason = ReasonCode.notFound.rawValue
            entry.fields = nil
        }
        // Invariant 1: the data leaves only after its entry is durably committed.
        let written = try await accessLog.append(entry)
        // Give back the records reserved but not carried. Bookkeeping only: the entry is
        // committed and the answer goes out even if this fails.
        await giveBack(call, carried: records.count, decision: decision)
        if gone {
            throw AgentRefusal(status: 404, code: "not_found", title: "Not found", accessID: written.id)
        }
        return .records(accessID: written.id, records: records, withheld: withheld.count)
    }

    /// Gives back to their hour the records `call` reserved beyond the `carried` ones.
    /// Bookkeeping only: a failure here changes no answer.
    private func giveBack(_ call: PendingCall, carried: Int, decision: Decision) async {
        guard call.reservedRecords > carried, let tenantID = decision.tenantID, let purpose = call.access.purposeKey,
            let agent = call.access.agent, let hour = call.reservedHour
        else { return }
        try? await store.count(records: carried - call.reservedRecords, tenant: tenantID, purpose: purpose, agent: agent, hour: hour)
    }

    private func digester(_ tenantID: UUID) -> LookupDigester {
        digesters.digester(for: tenantID, keyring: keyring)
    }
}

/// Each tenant's digester, its key already absorbed into the HMAC state: every lookup digests
/// its value and each record's subject, and starting the HMAC anew each time cost as much.
final class Digesters: Sendable {
    private let made = Mutex<[UUID: LookupDigester]>([:])

    func digester(for tenantID: UUID, keyring: Keyring) -> LookupDigester {
        if let digester = made.withLock({ $0[tenantID] }) { return digester }
        let digester = LookupDigester(key: keyring.digestKey(tenant: tenantID.uppercasedString))
        made.withLock { made in
            if made.count > 10_000 { made.removeAll() }
            made[tenantID] = digester
        }
        return digester
    }
}

/// An internal inconsistency (an allowed decision without its tenant or dataset): never a
/// client's fault, answered as an empty 500.
public enum AgentServiceError: Error, Sendable {
    case inconsistent
}
