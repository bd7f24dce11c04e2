import Foundation
import Hummingbird
import ItakuCore
import ItakuData
import ItakuRegistry
import NIOCore
import Synchronization

/// `POST /v1/tenants/{tenant}/datasets/{dataset}/imports`: a client admin imports records as
/// `text/csv` (UTF-8, a header row naming the fields; streamed, up to `http.maxImportBytes`) or
/// as a JSON array of objects. The import lands whole or not at all; every bad line is
/// reported with its line number (CSV, the header is line 1) or array index (JSON).
struct ImportsController: Sendable {
    let admin: Admin
    let keyring: Keyring
    /// `http.maxImportBytes`: this route's body limit, in place of `http.maxBodyBytes`.
    var maxImportBytes = 1 << 30
    /// `http.importTimeoutSeconds`: an import whose body is still arriving after this long ends
    /// (rolled back). Once the body is in, the import runs to its end: a deadline there could
    /// fire after the commit, and answer "nothing imported" for records that were.
    var timeout: Duration = .seconds(1800)
    /// Imports that may run at once on this instance: each holds a pooled connection while its
    /// body streams in, so that the rest of the pool stays for agents whatever uploads do.
    var running = Gate(limit: 4)

    static let maxJSONBytes = 64 << 20
    /// A JSON import's records at most: the parser holds every value of the body at once, at
    /// many times its size (`[0,0,…]` of 64 MiB would be 32 million values). CSV streams any number.
    static let maxJSONRecords = 100_000

    struct Result: Encodable {
        var dataset: String
        var imported: Int
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/tenants/:tenant/datasets/:dataset/imports", method: .post, context: RoleContext<ClientAdmins>.self, maxBodyBytes: maxImportBytes) { request, context in
            try await importRecords(request, context)
        }
    }

    private func importRecords(_ request: Request, _ context: RoleContext<ClientAdmins>) async throws -> Response {
        let tenant = try admin.tenant(context)
        guard tenant.status != "ended" else { throw Self.ended }
        guard let name = context.parameters.get("dataset"), let dataset = context.snapshot?.datasets[tenant.id]?[name] else {
            throw Problem.notFound
        }
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        let isCSV = contentType.hasPrefix("text/csv")
        guard isCSV || contentType.hasPrefix("application/json") else {
            throw Problem(.unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported media type",
                          detail: "Send text/csv or application/json.")
        }
        let sealer: FieldSealer
        do {
            sealer = try admin.dataKeys.sealer(for: tenant.id)
        } catch DataKeys.KeyError.destroyed {
            // The contract ended after this request's registry was taken.
            throw Self.ended
        }
        let importer = RecordImporter(
            tenantID: tenant.id, dataset: dataset, digester: LookupDigester(key: keyring.digestKey(tenant: tenant.id.uuidString)),
            sealer: sealer
        )
        let limit = context.maxUploadSize
        guard running.enter() else { throw Self.busy }
        defer { running.leave() }
        let timeout = self.timeout
        let deadline = ContinuousClock.now + timeout
        let outcome = try await admin.change(context, tenantID: tenant.id, target: "dataset:\(name):import") { connection in
            // Under the tenant's lock: an import and the contract's end never overlap.
            guard try await RegistryStore.lockTenant(tenant.id, exclusive: false, on: connection) != "ended" else { throw Self.ended }
            // The records are checked and their lookup keys made under the schema this request
            // read: if it changed since, nothing is imported (and none changes until the import ends).
            guard try await RegistryStore.lockDataset(tenantID: tenant.id, datasetID: dataset.id, on: connection) == dataset.version else {
                throw Self.datasetChanged
            }
            let outcome = try await importer.run(on: connection) { sink in
                if isCSV {
                    try await Self.feedCSV(
                        request.body, limit: limit, expected: request.headers[.contentLength].flatMap { Int($0) },
                        validator: RecordValidator(schema: dataset.schema), into: sink, deadline: deadline, timeout: timeout
                    )
                } else {
                    // JSON is parsed whole, so it gets a tighter limit than streamed CSV.
                    let jsonLimit = min(limit, Self.maxJSONBytes)
                    var buffer = ByteBuffer()
                    for try await chunk in request.body {
                        if ContinuousClock.now > deadline { throw Self.timedOut(timeout) }
                        guard buffer.readableBytes + chunk.readableBytes <= jsonLimit else { throw Problem.payloadTooLarge(limit: jsonLimit) }
                        buffer.writeImmutableBuffer(chunk)
                    }
                    try Self.checkComplete(received: buffer.readableBytes, expected: request.headers[.contentLength].flatMap { Int($0) })
                    try await Self.feedJSON(Data(buffer.readableBytesView), into: sink)
                }
            }
            guard case .imported(let count) = outcome else { throw ImportRejected(outcome: outcome) }
            return (count, dataset.version, dataset.version)
        }
        return try admin.json(Result(dataset: name, imported: outcome), status: .created)
    }

    static let busy = Problem(
        .serviceUnavailable, code: "imports_busy", title: "Too many imports",
        detail: "This instance runs as many imports as it takes at once; send this one again later.", headers: [.retryAfter: "30"]
    )

    static func timedOut(_ timeout: Duration) -> Problem {
        Problem(.requestTimeout, code: "import_timeout", title: "Import took too long",
                detail: "The body was still arriving after \(timeout.components.seconds) seconds; nothing was imported.")
    }

    static let ended = Problem.conflict(
        code: "tenant_ended", "The tenant's contract ended and its data was disposed of; nothing can be imported."
    )

    static let datasetChanged = Problem.conflict(
        code: "dataset_changed", "The dataset's schema changed while this import was sent; nothing was imported. Send it again."
    )

    struct ImportRejected: Error {
        var outcome: RecordImporter.Outcome
    }

    /// A body that ended early (its connection closed, or the request was cancelled, which ends
    /// the stream as if it were complete) imports nothing.
    static func checkComplete(received: Int, expected: Int?) throws {
        try Task.checkCancellation()
        if let expected, received != expected {
            throw Problem.badRequest(code: "incomplete_body", "The body ended before its Content-Length; nothing was imported.")
        }
    }

    static func feedCSV(
        _ body: RequestBody, limit: Int, expected: Int? = nil, validator: RecordValidator, into sink: RecordImporter.Sink,
        deadline: ContinuousClock.Instant = .now + .seconds(86_400), timeout: Duration = .seconds(86_400)
    ) async throws {
        var parser = CSVParser()
        var header: [String]?
        var received = 0
        func handle(_ rows: [CSVParser.Row]) async throws {
            for row in rows {
                guard let columns = header else {
                    let names = row.fields.map { $0.trimmingCharacters(in: .whitespaces) }
                    // An unknown column is named only in a row that is a header: it names the key
                    // field, or two fields of the schema (the key field misspelt). And only if its
                    // name could be a field's: a file without its header row has data there
                    // (`c000042,yamada_hanako`), and an answer never repeats data. Otherwise it is
                    // named by its position.
                    let unknown = Set(validator.unknownColumns(names))
                    let isHeader = names.contains(validator.schema.keyField) || names.filter { validator.schema.field($0) != nil }.count >= 2
                    for (index, name) in names.enumerated() where unknown.contains(name) {
                        let shown = isHeader ? Self.shown(name) : nil
                        sink.reject(line: row.line, field: shown ?? "column \(index + 1)", code: "unknown_field")
                    }
                    if Set(names).count != names.count { sink.reject(line: row.line, field: nil, code: "duplicate_column") }
                    header = names
                    continue
                }
                guard row.fields.count == columns.count else {
                    sink.reject(line: row.line, field: nil, code: "wrong_column_count")
                    continue
                }
                var values: [String: String] = [:]
                for (column, value) in zip(columns, row.fields) { values[column] = value }
                try await sink.add(line: row.line, values: values)
            }
        }
        do {
            for try await chunk in body {
                if ContinuousClock.now > deadline { throw timedOut(timeout) }
                received += chunk.readableBytes
                if received > limit { throw Problem.payloadTooLarge(limit: limit) }
                try await handle(try parser.feed(chunk.readableBytesView))
            }
            try checkComplete(received: received, expected: expected)
            try await handle(try parser.finish())
        } catch let error as CSVParser.ParseError {
            switch error {
            case .malformedQuote(let line): sink.reject(line: line, field: nil, code: "malformed_csv")
            case .unterminatedQuote(let line): sink.reject(line: line, field: nil, code: "unterminated_quote")
            case .invalidUTF8(let line): sink.reject(line: line, field: nil, code: "invalid_utf8")
            case .rowTooLarge(let line): sink.reject(line: line, field: nil, code: "row_too_large")
            }
        }
        if header == nil { sink.reject(line: 1, field: nil, code: "header_required") }
    }

    /// The number of values of the top-level JSON array in `bytes` (nil: not an array), counted
    /// without parsing: commas outside strings at depth 1.
    static func topLevelCount(_ bytes: some Sequence<UInt8>) -> Int? {
        shape(bytes)?.records
    }

    /// The top-level array's values (`records`), and at least as many as all the values and
    /// members at every depth hold (`values`: commas and containers), counted without parsing.
    /// Nil when the text is not an array.
    static func shape(_ bytes: some Sequence<UInt8>) -> (records: Int, values: Int)? {
        var depth = 0, commas = 0, allCommas = 0, containers = 0
        var inString = false, escaped = false, sawArray = false, sawValue = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true; if depth == 1 { sawValue = true }
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                if depth == 0 { sawArray = byte == UInt8(ascii: "[") } else if depth == 1 { sawValue = true }
                depth += 1
                containers += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            case UInt8(ascii: ","):
                allCommas += 1
                if depth == 1 { commas += 1 }
            case 0x20, 0x09, 0x0A, 0x0D: break
            default: if depth == 1 { sawValue = true }
            }
        }
        guard sawArray else { return nil }
        return (sawValue ? commas + 1 : 0, allCommas + containers)
    }

    /// Values a JSON import may hold at every depth together (a record's values and the
    /// record itself each count): 100,000 records of ten fields. Parsing builds every value in
    /// memory, so `[[0,0,…]]` is refused as surely as `[0,0,…]`.
    static let maxJSONValues = 1_100_000

    /// A name the client sent, as an answer may repeat it: only one that could be a field's
    /// name (nil otherwise, for it could be data).
    static func shown(_ name: String) -> String? {
        DatasetSchema.isFieldName(name) ? name : nil
    }

    static func feedJSON(_ data: Data, into sink: RecordImporter.Sink) async throws {
        // Not an array: refused before parsing (the limits below count an array's values).
        guard let shape = shape(data) else { throw Problem.badRequest(code: "invalid_json", "The body must be a JSON array of objects.") }
        if shape.records > maxJSONRecords || shape.values > maxJSONValues {
            throw Problem(.contentTooLarge, code: "payload_too_large", title: "Request body too large",
                          detail: "A JSON import holds at most \(maxJSONRecords) records and \(maxJSONValues) values; send more as CSV.")
        }
        guard let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any] else {
            throw Problem.badRequest(code: "invalid_json", "The body must be a JSON array of objects.")
        }
        for (index, element) in array.enumerated() {
            // "line" of a JSON import is the element's 1-based position.
            guard let object = element as? [String: Any] else {
                sink.reject(line: index + 1, field: nil, code: "not_an_object")
                continue
            }
            var values: [String: String] = [:]
            for (key, value) in object {
                switch value {
                case let string as String: values[key] = string
                case let number as NSNumber: values[key] = number.stringValue
                case is NSNull: continue
                default: sink.reject(line: index + 1, field: Self.shown(key), code: "invalid_value")
                }
            }
            for unknown in sink.importer.validator.unknownColumns(Array(values.keys)).sorted() {
                sink.reject(line: index + 1, field: Self.shown(unknown), code: "unknown_field")
            }
            try await sink.add(line: index + 1, values: values)
        }
    }
}

extension ImportsController.ImportRejected {
    var problem: Problem {
        guard case .rejected(let issues) = outcome else { return .internalError }
        var problem = Problem.invalid(issues.map { Problem.Issue(code: $0.code, pointer: $0.field, line: $0.line) })
        problem.code = "import_rejected"
        problem.detail = "Nothing was imported; fix the lines listed in errors and send the file again."
        return problem
    }
}
