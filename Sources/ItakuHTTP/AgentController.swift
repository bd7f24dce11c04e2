import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ItakuAgentAPI
import ItakuCore
import ItakuRegistry
import NIOCore

extension HTTPField.Name {
    static let itakuPurpose = Self("Itaku-Purpose")!
    static let itakuCase = Self("Itaku-Case")!
    static let itakuAgent = Self("Itaku-Agent")!
    static let itakuAgentID = Self("Itaku-Agent-Id")!
}

/// The agent data API over HTTP: translates a request into an `AgentCall` for the agent data
/// service (`ItakuAgentAPI`) and its result or refusal into a response. Everything else (the
/// enforcer's decisions, the records, the access entries) is the service's.
struct AgentController: Sendable {
    let admin: Admin
    let tokens: AgentTokens
    let service: AgentDataService

    struct LookupBody: Decodable {
        var by: String
        var value: String
        var fields: [String]?

        /// The body, read by `JSONText.flatObject` when it has the plain shape every agent tool
        /// sends (the hottest body Itaku reads), else by the decoder, which also names what is
        /// wrong. Both read the same body to the same value.
        static func read(_ buffer: ByteBuffer) throws -> LookupBody {
            let object = buffer.readableBytesView.withUnsafeBytes { JSONText.flatObject($0.bindMemory(to: UInt8.self)) }
            if let object, object.keys.allSatisfy({ ["by", "value", "fields"].contains($0) }),
                case .string(let by) = object["by"], case .string(let value) = object["value"]
            {
                switch object["fields"] {
                case nil, .null: return LookupBody(by: by, value: value, fields: nil)
                case .strings(let fields): return LookupBody(by: by, value: value, fields: fields)
                case .string: break
                }
            }
            return try Admin.read(LookupBody.self, from: buffer)
        }
    }

    struct UpdateBody: Decodable {
        var fields: [String: String]
    }

    struct Updated: Encodable {
        var access_id: String
        var record_id: String
        var updated: [String]
    }

    func addRoutes(to routes: inout RouteTable) {
        let context = IntegrationRequestContext.self
        routes.on("/v1/tenants/:tenant/datasets/:dataset/lookup", method: .post, context: context) { request, context in
            var call = await makeCall(request, context, .read)
            let body = try LookupBody.read(try await request.body.collect(upTo: context.maxUploadSize))
            call.input = .lookup(by: body.by, value: body.value)
            call.fields = body.fields
            return try await serve(call, context)
        }
        routes.on("/v1/tenants/:tenant/datasets/:dataset/records/:record", method: .get, context: context) { request, context in
            var call = await makeCall(request, context, .read)
            call.fields = request.uri.queryParameters.get("fields").map {
                $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            }
            return try await serve(call, context)
        }
        routes.on("/v1/tenants/:tenant/datasets/:dataset/records/:record", method: .patch, context: context) { request, context in
            var call = await makeCall(request, context, .read)
            let body = try await admin.decodeLenient(UpdateBody.self, from: request, context: context)
            call.input = .update(changes: body.fields)
            return try await serve(call, context)
        }
    }

    /// The agent is established from a verified token, or, for an asserted integration only,
    /// from `Itaku-Agent-Id` (recorded as unverified).
    private func makeCall(_ request: Request, _ context: IntegrationRequestContext, _ input: AgentCall.Input) async -> AgentCall {
        var agent: String?
        var verified = false
        if let token = request.headers.value(.itakuAgent) {
            agent = await tokens.employeeID(from: token, integration: context.integrationID)
            verified = agent != nil
        } else if let named = request.headers.value(.itakuAgentID), AgentsController.isEmployeeID(named),
            context.snapshot.integrations[context.integrationID]?.trustMode == .asserted
        {
            agent = named
        }
        return AgentCall(
            input: input, tenantCode: context.parameters.get("tenant") ?? "", dataset: context.parameters.get("dataset") ?? "",
            record: context.parameters.get("record"), integrationID: context.integrationID, actorKeyID: context.principal.keyID,
            agent: agent, agentVerified: verified, purpose: request.headers.value(.itakuPurpose), caseRef: request.headers.value(.itakuCase),
            requestID: context.requestID, clientAddress: context.clientAddress
        )
    }

    private func serve(_ call: AgentCall, _ context: IntegrationRequestContext) async throws -> Response {
        let result: AgentResult
        do {
            result = try await service.serve(call, snapshot: context.snapshot)
        } catch let refusal as AgentRefusal {
            throw Self.problem(refusal)
        } catch let error as AgentServiceError {
            // A defect, never the client's doing: logged (it carries no value), answered as 500.
            context.logger.error("agent request failed inside the service", metadata: ["itaku.error": "\(error)"])
            throw Problem.internalError
        }
        switch result {
        case .records(let accessID, let records, let withheld):
            return Self.answer(accessID: accessID, records: records, withheld: withheld)
        case .updated(let accessID, let recordID, let fields):
            return try admin.json(Updated(
                access_id: accessID.lowercasedString, record_id: recordID.lowercasedString, updated: fields
            ))
        }
    }

    /// The answer of a lookup or read, written directly: the agent path's hottest output, and
    /// the same JSON the encoder made (keys sorted, `/` unescaped).
    static func answer(accessID: UUID, records: [AgentRecord], withheld: Int) -> Response {
        var text: [UInt8] = []
        text.reserveCapacity(128 + records.count * 384)
        text.append(contentsOf: "{\"access_id\":\"".utf8)
        accessID.appendLowercased(to: &text)
        text.append(contentsOf: "\",\"records\":[".utf8)
        for (index, record) in records.enumerated() {
            if index > 0 { text.append(UInt8(ascii: ",")) }
            text.append(contentsOf: "{\"fields\":".utf8)
            JSONText.append(record.fields, to: &text)
            text.append(contentsOf: ",\"record_id\":\"".utf8)
            record.id.appendLowercased(to: &text)
            text.append(contentsOf: "\"}".utf8)
        }
        text.append(contentsOf: "],\"withheld\":\(withheld)}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }

    static func problem(_ refusal: AgentRefusal) -> Problem {
        var problem = Problem(
            HTTPResponse.Status(code: refusal.status), code: refusal.code, title: refusal.title, detail: refusal.detail,
            pointer: refusal.pointer, accessID: refusal.accessID?.lowercasedString
        )
        if !refusal.issues.isEmpty { problem.errors = refusal.issues.map { Problem.Issue(code: $0.code, pointer: $0.pointer) } }
        if let retryAfter = refusal.retryAfter { problem.headers[.retryAfter] = String(retryAfter) }
        return problem
    }
}
