import Configuration
import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuPostgres
import ItakuTestSupport
import Testing

@Suite("Administration API")
struct AdminTests {
    @Test("an operator sets up a tenant; its client admin defines a dataset, imports records, versions a purpose; every change is logged")
    func setUpATenant() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let op = fixture.operatorKey
        try await app.test(.live) { client in
            let created = try await client.call(.post, "/v1/tenants", key: op, json: [
                "code": "acme-retail", "name": "Acme Retail 株式会社", "contract_start": "2026-01-01", "contract_end": "2026-12-31",
            ])
            #expect(created.status == .created)
            #expect(created["time_zone"] as? String == "Asia/Tokyo")
            #expect(try await client.call(.post, "/v1/tenants", key: op, json: ["code": "acme-retail", "name": "x"]).code == "tenant_exists")

            let adminKey = try await client.call(.post, "/v1/keys", key: op, json: ["role": "client_admin", "tenant": "acme-retail"])
            #expect(adminKey.status == .created)
            let admin = try #require(adminKey["key"] as? String)
            #expect(admin.hasPrefix("itk_") && admin.count >= 36)

            let dataset = try await client.call(.put, "/v1/tenants/acme-retail/datasets/customers", key: admin, json: customersDataset)
            #expect(dataset.status == .created)
            #expect(dataset["version"] as? Int == 1)

            let csv = """
                customer_no,name,phone,email,address,birth_date
                C001,山田 太郎,090-1234-5678,taro@example.jp,"東京都新宿区西新宿2-8-1, 都庁前",1980-04-01
                C002,𠮷田 花子,０８０－１１１１－２２２２,,大阪府大阪市北区梅田1-1,1975-12-31
                C003,"佐藤 ""サトウ"" 健",+81 3 1234 5678,KEN@EXAMPLE.JP,,\r\n
                """
            let imported = try await client.call(.post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin, text: csv)
            #expect(imported.status == .created, "\(imported.text)")
            #expect(imported["imported"] as? Int == 3)

            // A purpose is created without If-Match, then needs it.
            let first = try await client.call(.put, "/v1/tenants/acme-retail/purposes/order-support", key: admin, json: purpose())
            #expect(first.status == .created)
            #expect(first.headers[.eTag] == "\"v1\"")
            let missing = try await client.call(.put, "/v1/tenants/acme-retail/purposes/order-support", key: admin, json: purpose())
            #expect(missing.status == .preconditionRequired)
            #expect(missing.code == "precondition_required")
            let second = try await client.call(
                .put, "/v1/tenants/acme-retail/purposes/order-support", key: admin,
                json: purpose(fields: ["name": "plain", "phone": "last4", "address": "prefecture_only"]), headers: [.ifMatch: "\"v1\""]
            )
            #expect(second.status == .ok)
            #expect(second.headers[.eTag] == "\"v2\"")
            let stale = try await client.call(.put, "/v1/tenants/acme-retail/purposes/order-support", key: admin, json: purpose(), headers: [.ifMatch: "\"v1\""])
            #expect(stale.status == .preconditionFailed)
            #expect(stale.code == "precondition_failed")
            let listing = try await client.call(.get, "/v1/tenants/acme-retail/purposes", key: admin)
            let purposes = try #require(listing["purposes"] as? [[String: Any]])
            #expect(purposes.first?["current_version"] as? Int == 2)
            #expect((purposes.first?["versions"] as? [Any])?.count == 2)

            // Agents and assignments.
            #expect(try await client.call(.post, "/v1/agents", key: op, json: ["employee_id": "A0001", "name": "田中 一郎", "site": "Osaka"]).status == .created)
            let assigned = try await client.call(.put, "/v1/tenants/acme-retail/assignments/A0001", key: op, json: [
                "purposes": ["order-support"], "valid_from": "2026-01-01T00:00:00+09:00", "valid_until": "2027-01-01T00:00:00+09:00",
            ])
            #expect(assigned.status == .created, "\(assigned.text)")
            let readByAdmin = try await client.call(.get, "/v1/tenants/acme-retail/assignments", key: admin)
            #expect((readByAdmin["assignments"] as? [[String: Any]])?.first?["agent"] as? String == "A0001")
            #expect(try await client.call(.delete, "/v1/tenants/acme-retail/assignments/A0001", key: op).status == .noContent)
            #expect(try await client.call(.get, "/v1/tenants/acme-retail/assignments/A0001", key: op).status == .notFound)
        }

        // Every change above is one `configure` entry naming who changed what; purpose versions before and after.
        let owner = fixture.database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        let rows = try await owner.query(
            "SELECT target, actor_role, version_before, version_after FROM itaku.access_log WHERE operation = 'configure' ORDER BY occurred_at"
        )
        let entries = try rows.map { (try $0.decode(0, as: String.self), try $0.decode(1, as: String.self), try $0.decode(2, as: Int?.self), try $0.decode(3, as: Int?.self)) }
        // The key's issue names the key: the id its revocation and its own entries carry.
        let keyID = try await owner.query("SELECT key_id FROM itaku.api_keys WHERE role = 'client_admin'")[0].decode(0, as: UUID.self)
        let issued = "key:client_admin:\(keyID.uuidString.lowercased())"
        #expect(entries.map(\.0) == [
            "tenant:acme-retail", issued, "dataset:customers", "dataset:customers:import",
            "purpose:order-support", "purpose:order-support", "agent:A0001", "assignment:A0001", "assignment:A0001",
        ])
        let purposeEntries = entries.filter { $0.0 == "purpose:order-support" }
        #expect(purposeEntries.map(\.2) == [nil, 1])
        #expect(purposeEntries.map(\.3) == [1, 2])
        #expect(entries.first { $0.0 == "dataset:customers" }?.1 == "client_admin")
        // The lookup index holds digests only: no phone number appears in it or in the log.
        let lookups = try await owner.query("SELECT count(*) FROM itaku.lookup_keys WHERE kind = 'phone'")[0].decode(0, as: Int.self)
        #expect(lookups == 3)
        // The imported values, as given and normalised (a bare "1234" also occurs by chance in
        // hashes, seals and ids, so the check names the values themselves).
        let values = ["%090-1234-5678%", "%09012345678%", "%1234 5678%", "%0312345678%", "%山田%", "%taro@example.jp%", "%西新宿%"]
        let leaked = try await owner.query("SELECT count(*) FROM itaku.access_log WHERE row_to_json(access_log)::text LIKE ANY (\(values))")
        #expect(try leaked[0].decode(0, as: Int.self) == 0)
    }

    @Test("a purpose is validated against the dataset schema, each rule with its own code and path", arguments: [
        (jsonText(purpose(fields: ["nickname": "plain"])), "unknown_field", "datasets.customers.fields.nickname"),
        (jsonText(purpose(fields: ["birth_date": "last4"])), "transform_mismatch", "datasets.customers.fields.birth_date"),
        (jsonText(purpose(fields: ["name": "year_only"])), "transform_mismatch", "datasets.customers.fields.name"),
        (jsonText(purpose(fields: ["name": "plain"], updatable: ["address"])), "updatable_not_visible", "datasets.customers.updatable.address"),
        (jsonText(purpose(fields: ["my_number": "plain"])), "individual_number_basis_required", "datasets.customers.fields.my_number"),
        (jsonText(["name": "x", "legal_basis": "contract", "datasets": ["claims": ["operations": ["read"], "fields": ["name": "plain"]]]]), "unknown_dataset", "datasets.claims"),
        (jsonText(purpose().merging(["valid_from": "2026-12-31", "valid_until": "2026-01-01"]) { $1 }), "invalid_validity", "valid_until"),
        (jsonText(purpose().merging(["valid_from": "2026-02-30"]) { $1 }), "invalid_date", "valid_from"),
        (jsonText(purpose().merging(["name": "Order \u{202E}troppus"]) { $1 }), "invalid_characters", "name"),
        (jsonText(["name": "x", "legal_basis": "contract", "datasets": ["customers": ["operations": ["read", "read"], "fields": ["name": "plain"]]]]),
         "duplicate_value", "datasets.customers.operations"),
        (jsonText(["name": "x", "legal_basis": "contract", "datasets": ["customers": [
            "operations": ["lookup"], "lookup_keys": ["phone", "phone"], "fields": ["name": "plain"]]]]), "duplicate_value", "datasets.customers.lookup_keys"),
        (jsonText(purpose().merging(["business_hours": ["days": ["mon", "mon"], "start": "09:00", "end": "18:00"]]) { $1 }),
         "duplicate_value", "business_hours.days"),
        // A misspelt member is refused, not passed over: the purpose would be open around the
        // clock, unlimited, or keep its default of five results.
        (jsonText(purpose().merging(["bussiness_hours": ["days": ["mon"], "start": "09:00", "end": "18:00"]]) { $1 }),
         "unknown_member", "bussiness_hours"),
        (jsonText(purpose().merging(["limits": ["records_per_hours": 5]]) { $1 }), "unknown_member", "limits.records_per_hours"),
        (jsonText(["name": "x", "legal_basis": "contract", "datasets": ["customers": ["operations": ["read"], "fields": ["name": "plain"], "max_result": 1]]]),
         "unknown_member", "datasets.customers.max_result"),
    ])
    func purposeValidation(bodyText: String, code: String, pointer: String) async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let admin = try await client.setUpTenant("acme-retail", operatorKey: fixture.operatorKey)
            let refused = try await client.call(.put, "/v1/tenants/acme-retail/purposes/order-support", key: admin, json: jsonObject(bodyText))
            #expect(refused.status == .unprocessableContent)
            #expect(refused.headers[.contentType] == "application/problem+json")
            #expect(refused.code == code)
            #expect(refused.pointer == pointer)
            #expect(try await client.call(.get, "/v1/tenants/acme-retail/purposes/order-support", key: admin).status == .notFound)
            // The individual-number field is accepted under individual-number affairs.
            if code == "individual_number_basis_required" {
                let allowed = try await client.call(
                    .put, "/v1/tenants/acme-retail/purposes/order-support", key: admin,
                    json: purpose(fields: ["my_number": "last4"], basis: "individual_number_affairs")
                )
                #expect(allowed.status == .created)
            }
        }
    }

    @Test("a dataset schema or a tenant with a misspelt member is refused with unknown_member at its path; a member the caller sets to null is as good as absent")
    func unknownMembersAreRefused() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let admin = try await client.setUpTenant("acme-retail", operatorKey: fixture.operatorKey)
            let fields: [[String: Any]] = [
                ["name": "order_no", "type": "string", "category": "basic"],
                ["name": "phone", "type": "phone", "category": "contact", "lookpu": "phone"],
            ]
            let misspelt = try await client.call(.put, "/v1/tenants/acme-retail/datasets/orders", key: admin, json: [
                "fields": fields, "key_field": "order_no", "retention_dayz": 30,
            ])
            #expect(misspelt.status == .unprocessableContent)
            let pointers = (misspelt["errors"] as? [[String: Any]] ?? []).compactMap { $0["pointer"] as? String }
            #expect(misspelt.code == "unknown_member" && Set(pointers) == ["fields[1].lookpu", "retention_dayz"], "\(misspelt.text)")
            #expect(try await client.call(.get, "/v1/tenants/acme-retail/datasets/orders", key: admin).status == .notFound)
            // A member name that is no name is not repeated: the path ends at its parent.
            let odd = try await client.call(.patch, "/v1/tenants/acme-retail", key: fixture.operatorKey, json: ["090-1234-5678": "x"])
            #expect(odd.status == .unprocessableContent && odd.code == "unknown_member" && !odd.text.contains("090"), "\(odd.text)")
            let plain = try await client.call(.put, "/v1/tenants/acme-retail/datasets/orders", key: admin, json: [
                "fields": [fields[0]], "key_field": "order_no", "retention_days": NSNull(),
            ])
            #expect(plain.status == .created, "\(plain.text)")
            // A dataset as its GET shows it (with its name and version) may be sent back.
            let shown = try await client.call(.get, "/v1/tenants/acme-retail/datasets/orders", key: admin)
            let back = try await client.call(.put, "/v1/tenants/acme-retail/datasets/orders", key: admin, json: shown.body)
            #expect(back.status == .ok, "\(back.text)")
            // A member only a listing has is refused on creation, not passed over.
            let inactive = try await client.call(.post, "/v1/agents", key: fixture.operatorKey, json: ["employee_id": "A0002", "name": "x", "active": false])
            #expect(inactive.status == .unprocessableContent && inactive.code == "unknown_member" && inactive.pointer == "active", "\(inactive.text)")
        }
    }

    /// An import holds a transaction (and a pooled connection) while its body streams in: a body
    /// that stops arriving must not hold them for good.
    @Test("an import whose body stops arriving ends when its connection goes idle: nothing imported, no transaction left open")
    func stalledImportEnds() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database, settings: ["http.idleTimeoutSeconds": 1])
        try await app.test(.live) { client in
            let admin = try await client.setUpTenant("acme-retail", operatorKey: fixture.operatorKey)
            let port = try #require(client.port)
            // Headers and the first lines of a 100 kB body, then nothing more.
            let start = "customer_no,name\nC1,顧客 1\nC2,顧客 2\n"
            let head = "POST /v1/tenants/acme-retail/datasets/customers/imports HTTP/1.1\r\nHost: localhost\r\n"
                + "Authorization: Bearer \(admin)\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\n" + start
            let socket = try Self.rawConnection(port: port, sending: head)
            defer { close(socket) }
            // The server closes the idle connection (recv sees the end) within a few seconds.
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 4096)
            var closed = false
            var seen: [String] = []
            // Well past the one second (a loaded machine schedules late), but not for ever.
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let read = recv(socket, &buffer, buffer.count, 0)
                let error = errno
                seen.append(read < 0 ? "error \(error)" : "\(read) bytes")
                if read < 0 && (error == EAGAIN || error == EINTR) { continue }
                // The end, or a reset: either way the server let the connection go.
                if read <= 0 { closed = read == 0 || error == ECONNRESET; break }
            }
            #expect(closed, "the server kept the stalled connection open: \(seen)")
            // Rolled back: no record, and no session of the runtime role left inside a transaction.
            let owner = fixture.database.makeClient(role: .owner)
            let open = try await timeUntil(limit: .seconds(5)) {
                try await owner.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'itaku_runtime' AND datname = current_database() AND state LIKE 'idle in transaction%'"
                )[0].decode(0, as: Int.self) == 0
            }
            #expect(open != nil, "a transaction of the stalled import stayed open")
            let records = try await owner.query("SELECT count(*) FROM itaku.records")[0].decode(0, as: Int.self)
            await owner.shutdown()
            #expect(records == 0)
            // The gateway goes on serving imports (on a new connection: the test client's own
            // went idle meanwhile and was closed too). Until the stalled import's handler has
            // left, its place may still count (503 imports_busy, which a client sends again).
            var answer = ""
            let again = ContinuousClock.now + .seconds(10)
            repeat {
                if !answer.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
                let connection = try Self.rawConnection(
                    port: port, sending: head.replacingOccurrences(of: "Content-Length: 100000", with: "Content-Length: \(start.utf8.count)")
                )
                defer { close(connection) }
                setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                let read = recv(connection, &buffer, buffer.count, 0)
                answer = String(decoding: buffer.prefix(max(0, read)), as: UTF8.self)
            } while answer.hasPrefix("HTTP/1.1 503") && answer.contains("imports_busy") && ContinuousClock.now < again
            #expect(answer.hasPrefix("HTTP/1.1 201"), "\(answer.prefix(300))")
        }
    }

    /// A plain TCP connection to the test server on `port` that has sent `text`: for requests
    /// whose body the test client would send whole.
    static func rawConnection(port: Int, sending text: String) throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(socket >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let bytes = Array(text.utf8)
        guard connected == 0, send(socket, bytes, bytes.count, 0) == bytes.count else {
            close(socket)
            throw RawConnectionError()
        }
        return socket
    }

    struct RawConnectionError: Error {}

    /// A body that keeps trickling in never goes idle: the import's own deadline ends it, and
    /// only so many imports hold pooled connections at once.
    @Test("an import whose body trickles in ends at http.importTimeoutSeconds with 408, nothing imported; meanwhile a second import is refused as busy")
    func tricklingImportEnds() async throws {
        let fixture = try await AdminFixture.make()
        // A pool of 4: one import at a time.
        let app = try await makeApplication(database: fixture.database, settings: ["http.importTimeoutSeconds": 2])
        try await app.test(.live) { client in
            let admin = try await client.setUpTenant("acme-retail", operatorKey: fixture.operatorKey)
            let port = try #require(client.port)
            let head = "POST /v1/tenants/acme-retail/datasets/customers/imports HTTP/1.1\r\nHost: localhost\r\n"
                + "Authorization: Bearer \(admin)\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\ncustomer_no,name\nC1,x\n"
            let socket = try Self.rawConnection(port: port, sending: head)
            defer { close(socket) }
            try await Task.sleep(for: .milliseconds(300))
            let second = try await client.call(.post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin, text: "customer_no,name\nC9,y\n")
            #expect(second.status == .serviceUnavailable && second.code == "imports_busy", "\(second.text)")
            // A line every 200 ms: never idle, never done.
            var answer = ""
            var buffer = [UInt8](repeating: 0, count: 4096)
            let deadline = ContinuousClock.now + .seconds(30)
            var n = 2
            while ContinuousClock.now < deadline && answer.isEmpty {
                let line = Array("C\(n),x\n".utf8)
                n += 1
                if send(socket, line, line.count, Int32(MSG_NOSIGNAL)) < 0 { break }
                try await Task.sleep(for: .milliseconds(200))
                let read = recv(socket, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if read > 0 { answer = String(decoding: buffer.prefix(read), as: UTF8.self) }
                if read == 0 { break }
            }
            #expect(answer.hasPrefix("HTTP/1.1 408") && answer.contains("import_timeout"), "\(answer.prefix(300))")
            let owner = fixture.database.makeClient(role: .owner)
            let open = try await timeUntil(limit: .seconds(5)) {
                try await owner.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'itaku_runtime' AND datname = current_database() AND state LIKE 'idle in transaction%'"
                )[0].decode(0, as: Int.self) == 0
            }
            #expect(open != nil, "a transaction of the trickling import stayed open")
            #expect(try await owner.query("SELECT count(*) FROM itaku.records")[0].decode(0, as: Int.self) == 0)
            await owner.shutdown()
            // The import's place is free again.
            let after = try await client.call(.post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin, text: "customer_no,name\nC9,y\n")
            #expect(after.status == .created, "\(after.text)")
        }
    }

    @Test("an import with one bad line imports nothing and names that line; bad JSON bodies say where")
    func badImportsLandNothing() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let admin = try await client.setUpTenant("acme-retail", operatorKey: fixture.operatorKey)
            var csv = "customer_no,name,phone,birth_date\n"
            for n in 1...3000 { csv += "C\(n),顧客 \(n),090-\(1000 + n % 9000)-\(1000 + n % 9000),1990-01-01\n" }
            csv += "C9999,壊れた 行,not-a-phone,1990-02-30\n"
            let rejected = try await client.call(.post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin, text: csv)
            #expect(rejected.status == .unprocessableContent)
            #expect(rejected.code == "import_rejected")
            let errors = try #require(rejected["errors"] as? [[String: Any]])
            #expect(errors.count == 2)
            #expect(errors.allSatisfy { $0["line"] as? Int == 3002 })
            #expect(Set(errors.compactMap { $0["code"] as? String }) == ["invalid_phone", "invalid_date"])
            #expect(!rejected.text.contains("not-a-phone"))

            // A body of commas without a line end: refused at its first line, not read to the end.
            let flood = try await client.call(
                .post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin,
                text: "customer_no,name\n" + String(repeating: ",", count: 1 << 16)
            )
            #expect(flood.status == .unprocessableContent && flood.code == "import_rejected")
            #expect((flood["errors"] as? [[String: Any]])?.first?["code"] as? String == "row_too_large")
            // A record key longer than the unique index holds is the line's issue, not a 500.
            let random = (0..<3000).map { _ in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".randomElement()! }
            let longKey = try await client.call(
                .post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin, text: "customer_no,name\n" + String(random) + ",x\n"
            )
            #expect(longKey.status == .unprocessableContent && longKey.code == "import_rejected", "\(longKey.text)")
            let issue = (longKey["errors"] as? [[String: Any]])?.first
            #expect(issue?["code"] as? String == "too_long" && issue?["pointer"] as? String == "customer_no", "\(longKey.text)")
            // A JSON import of more values than records it may hold is refused before it is parsed.
            let zeros = try await client.call(
                .post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin,
                text: "[" + String(repeating: "0,", count: 200_000) + "0]", contentType: "application/json"
            )
            #expect(zeros.status == .contentTooLarge && zeros.code == "payload_too_large")
            // Nor does nesting hide them: one record holding 1.2 million values, in an array or
            // in an object's members.
            for nested in ["[[" + String(repeating: "0,", count: 1_200_000) + "0]]",
                           "[{" + (0..<1_200_000).map { "\"\($0)\":0" }.joined(separator: ",") + "}]"] {
                let refused = try await client.call(
                    .post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin, text: nested, contentType: "application/json"
                )
                #expect(refused.status == .contentTooLarge && refused.code == "payload_too_large", "\(refused.text.prefix(200))")
            }

            let duplicate = try await client.call(
                .post, "/v1/tenants/acme-retail/datasets/customers/imports", key: admin, json: [["customer_no": "X1", "name": "a"], ["customer_no": "X1", "name": "b"]]
            )
            #expect(duplicate.code == "import_rejected")
            #expect((duplicate["errors"] as? [[String: Any]])?.first?["line"] as? Int == 2)

            let malformed = try await client.call(.put, "/v1/tenants/acme-retail/datasets/customers", key: admin, json: ["fields": [["name": "x", "type": "colour", "category": "basic"]], "key_field": "x"])
            #expect(malformed.status == .badRequest)
            #expect(malformed.code == "invalid_json")
            #expect(malformed.pointer == "fields[0].type")
            // A schema of a thousand fields would make every decision and answer search it.
            let wide = (0..<1_000).map { ["name": "f\($0)", "type": "string", "category": "basic"] }
            let tooWide = try await client.call(.put, "/v1/tenants/acme-retail/datasets/wide", key: admin, json: ["fields": wide, "key_field": "f0"])
            #expect(tooWide.status == .unprocessableContent && tooWide.code == "too_many_fields", "\(tooWide.text.prefix(300))")
            #expect((tooWide["errors"] as? [[String: Any]])?.first?["code"] as? String == "too_many_fields")
        }
        let owner = fixture.database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        #expect(try await owner.query("SELECT count(*) FROM itaku.records")[0].decode(0, as: Int.self) == 0)
        #expect(try await owner.query("SELECT count(*) FROM itaku.lookup_keys")[0].decode(0, as: Int.self) == 0)
    }

    @Test("as the runtime role in tenant A's context, records and lookup keys without a tenant filter show only A's rows")
    func recordsAreIsolated() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            for code in ["tenant-a", "tenant-b"] {
                let admin = try await client.setUpTenant(code, operatorKey: fixture.operatorKey)
                let imported = try await client.call(
                    .post, "/v1/tenants/\(code)/datasets/customers/imports", key: admin,
                    text: "customer_no,name,phone\n\(code)-1,A,090-1111-2222\n\(code)-2,B,090-3333-4444\n"
                )
                #expect(imported["imported"] as? Int == 2)
            }
        }
        let runtime = fixture.database.makeClient(role: .runtime)
        defer { Task { await runtime.shutdown() } }
        let tenantA = try await runtime.withTransaction { connection in
            try await connection.query("SELECT set_config('itaku.all_tenants', 'on', true)")
            return try await connection.query("SELECT tenant_id FROM itaku.tenants WHERE code = 'tenant-a'")[0].decode(0, as: UUID.self)
        }
        let (records, lookups) = try await runtime.withTransaction { connection in
            try await connection.query("SELECT set_config('itaku.tenant_id', \(tenantA.uuidString), true)")
            let records = try await connection.query("SELECT external_id FROM itaku.records ORDER BY 1").map { try $0.decode(0, as: String.self) }
            let lookups = try await connection.query("SELECT DISTINCT tenant_id FROM itaku.lookup_keys").map { try $0.decode(0, as: UUID.self) }
            return (records, lookups)
        }
        #expect(records == ["tenant-a-1", "tenant-a-2"])
        #expect(lookups == [tenantA])
        // The reviewer switch does not open records: they are tenant-only.
        let all = try await runtime.withTransaction { connection in
            try await connection.query("SELECT set_config('itaku.all_tenants', 'on', true)")
            return try await connection.query("SELECT count(*) FROM itaku.records")[0].decode(0, as: Int.self)
        }
        #expect(all == 0)
    }

    @Test("impossible dates, bad key bindings and revoking an unknown key are refused cleanly, changing nothing")
    func refusalsChangeNothing() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let op = fixture.operatorKey
        try await app.test(.live) { client in
            let impossible = try await client.call(.post, "/v1/tenants", key: op, json: ["code": "acme-retail", "name": "A", "contract_start": "2026-02-30"])
            #expect(impossible.status == .unprocessableContent)
            #expect(impossible.code == "invalid_date")
            #expect(impossible.pointer == "contract_start")
            // Signs and stray dashes make no date (PostgreSQL would read some of them otherwise).
            for date in ["-2026-04-01", "2026-+4-01", "+2026-04-01", "2026-04-01 ", "２０２６-04-01"] {
                let signed = try await client.call(.post, "/v1/tenants", key: op, json: ["code": "acme-retail", "name": "A", "contract_start": date])
                #expect(signed.status == .unprocessableContent, "\(date)")
                #expect(signed.code == "invalid_date", "\(date)")
            }
            _ = try await client.call(.post, "/v1/tenants", key: op, json: ["code": "acme-retail", "name": "A", "contract_start": "2026-04-01"])
            let reversed = try await client.call(.patch, "/v1/tenants/acme-retail", key: op, json: ["contract_end": "2026-03-31"])
            #expect(reversed.code == "invalid_contract_period")
            let binding = try await client.call(.post, "/v1/keys", key: op, json: ["role": "client_admin", "tenant": "acme-retail", "integration": "00000000-0000-4000-8000-000000000001"])
            #expect(binding.code == "unexpected_binding")
            #expect(binding.pointer == "integration")
            #expect(try await client.call(.delete, "/v1/keys/00000000-0000-4000-8000-000000000002", key: op).status == .notFound)
        }
        let owner = fixture.database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        let targets = try await owner.query("SELECT target FROM itaku.access_log ORDER BY occurred_at").map { try $0.decode(0, as: String.self) }
        #expect(targets == ["tenant:acme-retail"])
        #expect(try await owner.query("SELECT count(*) FROM itaku.api_keys")[0].decode(0, as: Int.self) == 1)
    }

    @Test("names and labels people read are refused when they hide or break text or run long; what was stored stays as it was")
    func namesPeopleRead() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let op = fixture.operatorKey
        try await app.test(.live) { client in
            // Right-to-left override: "Acme \u{202E}sgnidloh" reads as "Acme holdings" reversed.
            let cases: [(String, [String: String], String, String)] = [
                ("/v1/tenants", ["code": "acme-retail", "name": "Acme \u{202E}sgnidloh"], "invalid_characters", "name"),
                ("/v1/tenants", ["code": "acme-retail", "name": "Acme\nRetail"], "invalid_characters", "name"),
                ("/v1/tenants", ["code": "acme-retail", "name": String(repeating: "名", count: 201)], "too_long", "name"),
                ("/v1/agents", ["employee_id": "A0001", "name": "田中 一郎", "site": "Osaka\u{7}"], "invalid_characters", "site"),
                ("/v1/agents", ["employee_id": "A0001", "name": "田中\u{2066}一郎"], "invalid_characters", "name"),
                // Invisible: "acme\u{200B}retail" looks like "acmeretail".
                ("/v1/tenants", ["code": "acme-retail", "name": "acme\u{200B}retail"], "invalid_characters", "name"),
                ("/v1/agents", ["employee_id": "A0001", "name": "\u{FEFF}田中 一郎"], "invalid_characters", "name"),
                ("/v1/keys", ["role": "reviewer", "label": String(repeating: "x", count: 201)], "too_long", "label"),
            ]
            for (path, body, code, pointer) in cases {
                let refused = try await client.call(.post, path, key: op, json: body)
                #expect(refused.status == .unprocessableContent, "\(path) \(body)")
                #expect(refused.code == code, "\(path) \(body)")
                #expect(refused.pointer == pointer, "\(path) \(body)")
            }
            // Exactly 200 characters (600 bytes of UTF-8) is a name.
            let long = String(repeating: "名", count: 200)
            #expect(try await client.call(.post, "/v1/tenants", key: op, json: ["code": "acme-retail", "name": long]).status == .created)
            let renamed = try await client.call(.patch, "/v1/tenants/acme-retail", key: op, json: ["name": "Acme\u{2028}Retail"])
            #expect(renamed.code == "invalid_characters")
            #expect(try await client.call(.post, "/v1/agents", key: op, json: ["employee_id": "A0001", "name": "田中 一郎"]).status == .created)
            let resited = try await client.call(.patch, "/v1/agents/A0001", key: op, json: ["site": "Osaka\u{85}"])
            #expect(resited.code == "invalid_characters")
            #expect(resited.pointer == "site")
        }
        let owner = fixture.database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        #expect(try await owner.query("SELECT name FROM itaku.tenants").map { try $0.decode(0, as: String.self) } == [String(repeating: "名", count: 200)])
        #expect(try await owner.query("SELECT site FROM itaku.agents").map { try $0.decode(0, as: String.self) } == [""])
        #expect(try await owner.query("SELECT count(*) FROM itaku.api_keys")[0].decode(0, as: Int.self) == 1)
    }

    @Test("the purpose listing carries each purpose's 20 newest versions and their count; any version reads on its own")
    func purposeVersionsAreBounded() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        try await app.test(.live) { client in
            let admin = try await client.setUpTenant("acme-retail", operatorKey: fixture.operatorKey)
            let path = "/v1/tenants/acme-retail/purposes/order-support"
            for version in 1...22 {
                var definition = purpose()
                definition["name"] = "Order support \(version)"
                let saved = try await client.call(.put, path, key: admin, json: definition, headers: version == 1 ? [:] : [.ifMatch: "\"v\(version - 1)\""])
                #expect(saved.status == (version == 1 ? .created : .ok))
            }
            let listing = try await client.call(.get, "/v1/tenants/acme-retail/purposes", key: admin)
            let purposes = try #require(listing["purposes"] as? [[String: Any]])
            #expect(purposes.count == 1)
            #expect(purposes.first?["current_version"] as? Int == 22)
            #expect(purposes.first?["version_count"] as? Int == 22)
            let listed = (purposes.first?["versions"] as? [[String: Any]] ?? []).compactMap { $0["version"] as? Int }
            #expect(listed == Array(3...22))
            let first = try await client.call(.get, path + "/versions/1", key: admin)
            #expect(first.status == .ok)
            #expect((first["definition"] as? [String: Any])?["name"] as? String == "Order support 1")
            for missing in ["23", "0", "-1", "abc", "99999999999999999999", "2147483648"] {
                let refused = try await client.call(.get, path + "/versions/" + missing, key: admin)
                #expect(refused.status == .notFound, "\(missing): \(refused.text)")
            }
            #expect(try await client.call(.get, "/v1/tenants/acme-retail/purposes/billing/versions/1", key: admin).status == .notFound)
        }
    }
}
