import CLibPQ
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The one place a libpq `PGconn` lives.
///
/// `@unchecked Sendable` is sound because of one invariant: the `PGconn` pointer is
/// dereferenced only inside work items on the client's `NIOThreadPool`, and a handle is leased
/// to one operation at a time, so no two threads ever use it at once. libpq's documentation:
/// "One thread restriction is that no two threads attempt to manipulate the same PGconn object at
/// the same time." Moving it between threads one operation after another is allowed. The only
/// cross-thread call is `PQcancel` on a `PGcancel` object, which libpq documents as safe to call
/// from another thread; it is guarded by `OperationCancellation`'s mutex.
final class ConnectionHandle: @unchecked Sendable {
    private var conn: OpaquePointer?
    /// Named statements prepared on this connection, by SQL text and parameter types.
    private var preparedStatements: [StatementKey: String] = [:]
    private var statementsPrepared = 0
    /// False through a transaction pooler: a named statement lives in one server session,
    /// which the next transaction may not get.
    private var mayPrepare = true

    private init(conn: OpaquePointer) {
        self.conn = conn
    }

    deinit {
        if let conn { PQfinish(conn) }
    }

    // MARK: Connecting (blocking: call on the thread pool)

    static func connect(_ configuration: PostgresConfiguration) throws -> ConnectionHandle {
        let pairs = configuration.connectionKeywords
        let keywords = pairs.map { strdup($0.0) }
        let values = pairs.map { strdup($0.1) }
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        var keywordPointers = keywords.map { UnsafePointer($0) } + [nil]
        var valuePointers = values.map { UnsafePointer($0) } + [nil]
        // expand_dbname = 1: the `dbname` value may be a URI or conninfo string; keywords that
        // follow it override its contents.
        guard let conn = PQconnectdbParams(&keywordPointers, &valuePointers, 1) else {
            throw PostgresError(.connectionFailed, detail: "out of memory")
        }
        let handle = ConnectionHandle(conn: conn)
        handle.mayPrepare = !configuration.transactionPooler
        // libpq prints server notices ("relation exists, skipping") to stderr by default;
        // Itaku's own logs are structured, and notices could quote data.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        guard PQstatus(conn) == CONNECTION_OK else {
            throw PostgresError(.connectionFailed, detail: handle.errorMessage)
        }
        // Invariant 1: "committed" must mean durable; times are UTC. Check what the session
        // really has (through a transaction pooler: the role's defaults, which statements
        // outside a transaction run with).
        let rows = try handle.execute(
            "SELECT current_setting('synchronous_commit'), current_setting('TimeZone'), current_setting('DateStyle')",
            PostgresBindings()
        )
        let settings = try rows.first.map {
            (try $0.decode(0, as: String.self), try $0.decode(1, as: String.self), try $0.decode(2, as: String.self))
        }
        guard let settings, settings.0 == "on", settings.1 == "UTC" || settings.1 == "Etc/UTC", settings.2.hasPrefix("ISO") else {
            let found = settings.map { "synchronous_commit=\($0.0), TimeZone=\($0.1), DateStyle=\($0.2)" } ?? "unknown"
            throw PostgresError(
                .unsafeSession,
                detail: "the session has \(found); Itaku needs synchronous_commit=on, TimeZone=UTC, DateStyle=ISO"
                    + (configuration.transactionPooler ? " as the role's defaults (migration 0011 sets them)" : "")
            )
        }
        if configuration.requireUnprivilegedRole {
            let privileged = try handle.execute(
                """
                SELECT EXISTS (
                    SELECT 1 FROM pg_roles r
                    WHERE (r.rolsuper OR r.rolbypassrls) AND pg_has_role(current_user, r.oid, 'MEMBER'))
                OR EXISTS (
                    SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'itaku' AND pg_has_role(current_user, c.relowner, 'MEMBER'))
                """,
                PostgresBindings()
            )
            guard try privileged.first?.decode(0, as: Bool.self) == false else {
                throw PostgresError(
                    .unsafeSession,
                    detail: "the role is a superuser, may bypass row-level security, or owns Itaku's tables; use itaku_runtime"
                )
            }
        }
        handle.settle()
        return handle
    }

    func close() {
        if let conn { PQfinish(conn) }
        conn = nil
    }

    // MARK: State

    var errorMessage: String {
        guard let conn, let message = PQerrorMessage(conn) else { return "" }
        return String(cString: message).trimmingSuffix()
    }

    /// Whether the connection may be lent again: open, and not inside a transaction (idle).
    var isReusable: Bool {
        guard let conn, !broken else { return false }
        return PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE
    }

    /// Whether the open transaction was aborted by an earlier error: a COMMIT now would roll
    /// it back (and say so only in its command tag).
    var isTransactionAborted: Bool {
        guard let conn else { return false }
        return PQtransactionStatus(conn) == PQTRANS_INERROR
    }

    /// `isReusable` as it stood when the last operation ended, taken on the pool thread
    /// (`settle()`), so that returning the connection to the pool needs no hop to read it. The
    /// operation's result reaches the releasing task after this is written.
    private(set) var reusableWhenSettled = false

    /// Set when a pipeline's results were lost after its sync was sent: what the server did is
    /// unknown, so the connection is closed rather than lent again.
    private var broken = false

    /// Records `isReusable`; the last step of every work item that used the connection.
    func settle() {
        reusableWhenSettled = isReusable
    }

    /// Reads whatever the server sent while the connection was idle (a termination notice, or
    /// EOF when it went away) and reports whether the connection is still usable.
    func probe() -> Bool {
        guard let conn else { return false }
        // A server that shut down sends a termination notice and then closes; the two can
        // arrive in separate reads, so read while the socket has something to say.
        for _ in 0..<3 {
            var descriptor = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { break }
            if PQconsumeInput(conn) == 0 { return false }
        }
        // Discard notifications nobody listens for on a pooled connection.
        while let note = PQnotifies(conn) { PQfreemem(note) }
        settle()
        return reusableWhenSettled
    }

    // MARK: Statements

    /// Runs one statement with bound parameters and copies the result out.
    func execute(
        _ sql: String,
        _ binds: PostgresBindings,
        prepared: Bool = false,
        cancellation: OperationCancellation? = nil
    ) throws -> PostgresRows {
        if let error = binds.encodingError { throw error }
        guard let conn else { throw PostgresError(.connectionClosed, detail: "connection closed") }
        if let cancellation, !cancellation.begin(PQgetCancel(conn)) { throw CancellationError() }
        defer { cancellation?.end() }

        let types = binds.types.map { Oid($0.rawValue) }
        let name = prepared && mayPrepare ? try statementName(sql, types: types, conn: conn) : nil
        let result = Self.withParameters(binds, types: types) { count, types, values, lengths, formats in
            if let name { return PQexecPrepared(conn, name, count, values, lengths, formats, 1) }
            return PQexecParams(conn, sql, count, types, values, lengths, formats, 1)
        }
        do {
            return try consume(result)
        } catch let error as PostgresError where name != nil && error.sqlState == PostgresError.SQLState.invalidStatementName {
            // Dropped under us (DEALLOCATE, DISCARD ALL): forget them and run this one unnamed,
            // unless the failure aborted a transaction (then the retry could only fail).
            preparedStatements.removeAll()
            guard PQtransactionStatus(conn) == PQTRANS_IDLE else { throw error }
            return try execute(sql, binds, prepared: false, cancellation: nil)
        } catch let error as PostgresError where name != nil && error.sqlState == PostgresError.SQLState.featureNotSupported {
            // "cached plan must not change result type": a migration changed what the prepared
            // statement returns, and the server refuses it for good on this session. The
            // connection is not lent again; the next one prepares the statement anew.
            broken = true
            throw error
        }
    }

    /// Calls `body` with libpq's parameter arrays for `binds`: all parameter bytes in one
    /// buffer, each parameter pointing into it.
    private static func withParameters<T>(
        _ binds: PostgresBindings, types: [Oid],
        _ body: (Int32, UnsafePointer<Oid>, UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<Int32>, UnsafePointer<Int32>) -> T
    ) -> T {
        // A value of no bytes still needs a pointer (a null one would mean NULL).
        var storage = binds.storage
        if storage.isEmpty { storage.append(0) }
        return storage.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            let pointers: [UnsafePointer<CChar>?] = binds.offsets.map { $0 < 0 ? nil : base + $0 }
            return body(Int32(binds.count), types, pointers, binds.lengths, binds.formats)
        }
    }

    /// Runs statements one after another in one round trip (libpq's pipeline mode) and returns
    /// each one's rows. They run in order; after an error the server skips the rest, and the
    /// first error is thrown once every result has been read (the connection is left usable,
    /// and a transaction the statements opened is left failed, for the caller's ROLLBACK).
    func executePipeline(_ statements: [PostgresQuery], cancellation: OperationCancellation? = nil) throws -> [PostgresRows] {
        for statement in statements { if let error = statement.binds.encodingError { throw error } }
        guard let conn else { throw PostgresError(.connectionClosed, detail: "connection closed") }
        // Statements not yet prepared on this connection are prepared first, outside the
        // pipeline (once per connection).
        let types = statements.map { $0.binds.types.map { Oid($0.rawValue) } }
        let names = try zip(statements, types).map { statement, types in
            statement.isPrepared && mayPrepare ? try statementName(statement.sql, types: types, conn: conn) : nil
        }
        if let cancellation, !cancellation.begin(PQgetCancel(conn)) { throw CancellationError() }
        defer { cancellation?.end() }
        guard PQenterPipelineMode(conn) == 1 else { throw connectionError() }
        defer { PQexitPipelineMode(conn) }
        for ((statement, name), types) in zip(zip(statements, names), types) {
            let sent = Self.withParameters(statement.binds, types: types) { count, types, values, lengths, formats in
                if let name { return PQsendQueryPrepared(conn, name, count, values, lengths, formats, 1) }
                return PQsendQueryParams(conn, statement.sql, count, types, values, lengths, formats, 1)
            }
            guard sent == 1 else { throw connectionError() }
        }
        guard PQpipelineSync(conn) == 1 else { throw connectionError() }
        var rows: [PostgresRows] = []
        var firstError: PostgresError?
        for _ in statements {
            var answered: PostgresRows?
            while let result = PQgetResult(conn) {
                defer { PQclear(result) }
                switch PQresultStatus(result) {
                case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: answered = Self.copyRows(result)
                case PGRES_PIPELINE_ABORTED: break
                default: if firstError == nil { firstError = serverError(result) }
                }
            }
            rows.append(answered ?? PostgresRows(columns: [], affectedRows: 0, storage: [], cells: []))
        }
        // The sync point ends the pipeline. Without it, the statements (a COMMIT among them) may
        // or may not have run: the outcome is unknown, as when a connection breaks.
        guard let sync = PQgetResult(conn) else { throw firstError ?? outcomeUnknown() }
        let synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC
        PQclear(sync)
        if let firstError {
            // A prepared statement dropped under us (DISCARD ALL): prepare afresh next time.
            if firstError.sqlState == PostgresError.SQLState.invalidStatementName { preparedStatements.removeAll() }
            throw firstError
        }
        guard synced else { throw outcomeUnknown() }
        return rows
    }

    /// The name of `sql` prepared with these parameter types on this connection; prepares it
    /// the first time (`PQprepare`).
    private func statementName(_ sql: String, types: [Oid], conn: OpaquePointer) throws -> String {
        let key = StatementKey(sql: sql, types: types)
        if let name = preparedStatements[key] { return name }
        statementsPrepared += 1
        let name = "itaku_\(statementsPrepared)"
        var types = types
        _ = try consume(PQprepare(conn, name, sql, Int32(types.count), &types))
        preparedStatements[key] = name
        return name
    }

    /// Runs one or more statements without parameters (simple query protocol): migration files.
    func executeScript(_ sql: String) throws {
        guard let conn else { throw PostgresError(.connectionClosed, detail: "connection closed") }
        _ = try consume(PQexec(conn, sql))
    }

    /// Turns a `PGresult` into rows or an error, clearing it and draining any further results.
    private func consume(_ result: OpaquePointer?) throws -> PostgresRows {
        guard let result else { throw connectionError() }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return Self.copyRows(result)
        case PGRES_COPY_IN:
            return PostgresRows(columns: [], affectedRows: 0, storage: [], cells: [])
        default:
            throw serverError(result)
        }
    }

    /// A pipeline whose results did not come back whole: the connection is not lent again.
    private func outcomeUnknown() -> PostgresError {
        broken = true
        return PostgresError(.connectionClosed, detail: "a pipeline's results were lost (\(errorMessage))")
    }

    private func connectionError() -> PostgresError {
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            return PostgresError(.connectionClosed, detail: errorMessage)
        }
        return PostgresError(.server, detail: errorMessage)
    }

    private func serverError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let sqlState = field("C")
        // A fatal error (the session timed out, the database was dropped, the server shuts
        // down) closes the connection whatever its SQLSTATE: the statement's outcome is the
        // session's, and the connection is gone.
        if let conn, PQstatus(conn) != CONNECTION_OK {
            return PostgresError(.connectionClosed, sqlState: sqlState, detail: field("M") ?? errorMessage)
        }
        // A read-only session (the host is a standby now, after a failover): no write will
        // succeed on it, so it is not lent again.
        if sqlState == PostgresError.SQLState.readOnlyTransaction { broken = true }
        var detail = field("M") ?? errorMessage
        if let extra = field("D") { detail += " (\(extra))" }
        return PostgresError(.server, sqlState: sqlState, detail: detail)
    }

    private static func copyRows(_ result: OpaquePointer) -> PostgresRows {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        var columns: [PostgresRows.Column] = []
        columns.reserveCapacity(columnCount)
        for column in 0..<columnCount {
            let name = PQfname(result, Int32(column)).map { String(cString: $0) } ?? ""
            columns.append(.init(name: name, type: PostgresType(rawValue: PQftype(result, Int32(column)))))
        }
        var storage: [UInt8] = []
        var cells: [(start: Int, length: Int)] = []
        cells.reserveCapacity(rowCount * columnCount)
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) == 1 {
                    cells.append((storage.count, -1))
                    continue
                }
                let length = Int(PQgetlength(result, row, column))
                let start = storage.count
                if length > 0, let value = PQgetvalue(result, row, column) {
                    UnsafeRawPointer(value).withMemoryRebound(to: UInt8.self, capacity: length) {
                        storage.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
                    }
                }
                cells.append((start, length))
            }
        }
        var affected = rowCount
        if let tuples = PQcmdTuples(result), let count = Int(String(cString: tuples)) {
            affected = count
        }
        return PostgresRows(columns: columns, affectedRows: affected, storage: storage, cells: cells)
    }

    // MARK: COPY FROM STDIN

    func beginCopy(_ sql: String) throws {
        guard let conn else { throw PostgresError(.connectionClosed, detail: "connection closed") }
        guard let result = PQexec(conn, sql) else { throw connectionError() }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_IN else { throw serverError(result) }
    }

    func putCopyData(_ bytes: [UInt8]) throws {
        guard let conn else { throw PostgresError(.connectionClosed, detail: "connection closed") }
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                PQputCopyData(conn, $0, Int32(buffer.count))
            }
        }
        guard status == 1 else { throw connectionError() }
    }

    /// Ends COPY; with `abort` set the server rolls the COPY back. Returns the rows copied.
    func endCopy(abort: String?) throws -> Int {
        guard let conn else { throw PostgresError(.connectionClosed, detail: "connection closed") }
        guard PQputCopyEnd(conn, abort) == 1 else { throw connectionError() }
        var firstError: PostgresError?
        var copied = 0
        while let result = PQgetResult(conn) {
            defer { PQclear(result) }
            if PQresultStatus(result) == PGRES_COMMAND_OK {
                copied = Int(String(cString: PQcmdTuples(result))) ?? 0
            } else if firstError == nil {
                firstError = serverError(result)
            }
        }
        if let firstError { throw firstError }
        return copied
    }

    // MARK: LISTEN / NOTIFY

    /// Quotes an identifier with libpq's own rules (needs the connection for its encoding).
    func escapeIdentifier(_ identifier: String) throws -> String {
        guard let conn, let escaped = PQescapeIdentifier(conn, identifier, identifier.utf8.count) else {
            throw PostgresError(.connectionClosed, detail: errorMessage)
        }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    /// Waits up to `timeoutMilliseconds` for notifications and returns those that arrived.
    func waitForNotifications(timeoutMilliseconds: Int32) throws -> [PostgresNotification] {
        guard let conn else { throw PostgresError(.connectionClosed, detail: "connection closed") }
        var notes = drainNotifications()
        if !notes.isEmpty { return notes }
        var descriptor = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        if ready < 0 { return [] }
        if PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK {
            throw PostgresError(.connectionClosed, detail: errorMessage)
        }
        notes = drainNotifications()
        return notes
    }

    private func drainNotifications() -> [PostgresNotification] {
        guard let conn else { return [] }
        var notes: [PostgresNotification] = []
        while let note = PQnotifies(conn) {
            let channel = String(cString: note.pointee.relname)
            let payload = String(cString: note.pointee.extra)
            notes.append(PostgresNotification(channel: channel, payload: payload, processID: note.pointee.be_pid))
            PQfreemem(note)
        }
        return notes
    }
}

/// Cancellation of one in-flight statement through `PQcancel`.
///
/// The statement's work item stores a `PGcancel` while it runs and frees it when it ends, both
/// under the mutex; the task's cancellation handler calls `PQcancel` under the same mutex if a
/// statement is running, or marks the operation cancelled so it never starts.
final class OperationCancellation: Sendable {
    // The `PGcancel` pointer is kept as its address so the state stays a plain Sendable value;
    // it is only turned back into a pointer under the lock.
    private struct State {
        var token: UInt = 0
        var cancelled = false
        /// The cancel thread holds the token while `PQcancel` runs (outside the lock): `end()`
        /// then leaves freeing it to that thread instead of waiting for it.
        var sending = false
    }

    private let state = Mutex(State())

    init() {}

    /// Called on the pool thread before the statement runs; false if already cancelled.
    func begin(_ token: OpaquePointer?) -> Bool {
        let address = UInt(bitPattern: token.map { Int(bitPattern: UnsafeRawPointer($0)) } ?? 0)
        let started = state.withLock { state in
            if state.cancelled { return false }
            state.token = address
            return true
        }
        if !started, let token { PQfreeCancel(token) }
        return started
    }

    func end() {
        state.withLock { state in
            if !state.sending, let token = Self.pointer(state.token) { PQfreeCancel(token) }
            state.token = 0
        }
    }

    /// Called from the cancellation handler, on any thread. `PQcancel` opens a connection to
    /// the server and waits for its answer (libpq ignores `connect_timeout` for it), so it is
    /// sent from a thread of its own, never from the Swift concurrency thread that cancels: a
    /// server that stopped answering would hold that thread, and with it every request. The
    /// token stays valid while it is sent (`end()` then leaves freeing it to the sender).
    func cancel() {
        let running = state.withLock { state in
            state.cancelled = true
            return state.token != 0
        }
        guard running else { return }
        let thread = Thread { [self] in
            // The token is taken under the lock and sent outside it, so that a cancel that hangs
            // (an unreachable host) never holds up the statement's end and its connection.
            let address = state.withLock { state -> UInt in
                guard state.token != 0, !state.sending else { return 0 }
                state.sending = true
                return state.token
            }
            guard let token = Self.pointer(address) else { return }
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(token, &buffer, Int32(buffer.count))
            state.withLock { state in
                state.sending = false
                // Ended meanwhile: the token is this thread's to free.
                if state.token != address { PQfreeCancel(token) }
            }
        }
        thread.name = "itaku-pq-cancel"
        thread.start()
    }

    private static func pointer(_ address: UInt) -> OpaquePointer? {
        UnsafeRawPointer(bitPattern: address).map { OpaquePointer($0) }
    }
}

/// A NOTIFY delivered to a LISTENing connection.
public struct PostgresNotification: Sendable, Hashable {
    public var channel: String
    public var payload: String
    public var processID: Int32
}

extension String {
    func trimmingSuffix() -> String {
        var result = self
        while let last = result.last, last.isWhitespace { result.removeLast() }
        return result
    }
}

/// A prepared statement's key: its text and parameter types. Looked up on every execution, and
/// a batch's INSERT runs to kilobytes, so the hash takes the text's length and its first and last
/// 64 bytes (texts that differ only in between still differ in `==`, which compares all of it).
struct StatementKey: Hashable {
    let sql: String
    let types: [Oid]

    func hash(into hasher: inout Hasher) {
        hasher.combine(types)
        var sql = sql
        sql.withUTF8 { bytes in
            hasher.combine(bytes.count)
            hasher.combine(bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes.prefix(64))))
            hasher.combine(bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes.suffix(64))))
        }
    }
}
