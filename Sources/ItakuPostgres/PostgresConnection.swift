import NIOPosix

/// A connection leased from the pool for the duration of a closure. Don't let it escape.
///
/// Every call hops to the client's thread pool; the calling task is never blocked in libpq.
public struct PostgresConnection: Sendable {
    let handle: ConnectionHandle
    let threadPool: NIOThreadPool
    /// `BEGIN`, or through a transaction pooler `BEGIN` with this transaction's settings.
    let beginStatements: [String]

    /// Opens a transaction. Use this, not `query("BEGIN")`: through a transaction pooler the
    /// session settings Itaku relies on are set here, for this transaction.
    public func begin() async throws {
        try await begin(then: [])
    }

    /// Commits the open transaction. One that an earlier statement aborted is not committed
    /// (PostgreSQL answers that COMMIT with ROLLBACK, and success would be reported for work
    /// undone): it throws 25P02 instead, and the caller rolls back.
    public func commit() async throws {
        try await onPool { handle in
            guard !handle.isTransactionAborted else {
                throw PostgresError(.server, sqlState: "25P02", detail: "the transaction was aborted by an earlier statement; nothing was committed")
            }
            _ = try handle.execute("COMMIT", PostgresBindings())
        }
    }

    /// Runs one statement and returns its rows. Cancelling the task cancels the statement on the
    /// server (`PQcancel`); it then fails with SQLSTATE 57014 and the connection stays usable.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        let cancellation = OperationCancellation()
        return try await withTaskCancellationHandler {
            try await onPool { try $0.execute(query.sql, query.binds, prepared: query.isPrepared, cancellation: cancellation) }
        } onCancel: {
            cancellation.cancel()
        }
    }

    /// Runs `statements` in order in one round trip (libpq's pipeline mode) and returns each
    /// one's rows. Outside an explicit transaction they are one implicit transaction, all or
    /// nothing. After a failed statement the server skips the rest; the first error is thrown.
    /// Cancelling the task cancels them as `query` does.
    @discardableResult
    public func pipeline(_ statements: [PostgresQuery]) async throws -> [PostgresRows] {
        let cancellation = OperationCancellation()
        return try await withTaskCancellationHandler {
            try await onPool { try $0.executePipeline(statements, cancellation: cancellation) }
        } onCancel: {
            cancellation.cancel()
        }
    }

    /// Opens a transaction and runs `statements` in it, in the same round trip as BEGIN.
    /// Through a transaction pooler the session settings Itaku relies on are set here too.
    @discardableResult
    public func begin(then statements: [PostgresQuery]) async throws -> [PostgresRows] {
        let opening = beginStatements.map { PostgresQuery(unsafeSQL: $0) }
        return Array(try await pipeline(opening + statements).dropFirst(opening.count))
    }

    /// Runs program-owned SQL that may hold several statements (migration files).
    public func executeScript(_ sql: String) async throws {
        try await onPool { try $0.executeScript(sql) }
    }

    /// Streams rows into `COPY ... FROM STDIN`. The body writes COPY text-format data through
    /// the writer; writes are buffered and sent in chunks, so memory stays constant. If the body
    /// throws, the COPY is aborted and nothing of it is kept. Returns the rows copied.
    @discardableResult
    public func copyFrom(
        _ statement: PostgresQuery,
        _ body: (inout PostgresCopyWriter) async throws -> Void
    ) async throws -> Int {
        let sql = statement.sql
        try await onPool { try $0.beginCopy(sql) }
        var writer = PostgresCopyWriter(connection: self)
        do {
            try await body(&writer)
            try await writer.flush()
        } catch {
            _ = try? await onPool { try $0.endCopy(abort: "aborted by Itaku") }
            throw error
        }
        return try await onPool { try $0.endCopy(abort: nil) }
    }

    func putCopyData(_ bytes: [UInt8]) async throws {
        try await onPool { try $0.putCopyData(bytes) }
    }

    /// Quotes an identifier with the connection's encoding rules.
    public func escapeIdentifier(_ identifier: String) async throws -> String {
        return try await onPool { try $0.escapeIdentifier(identifier) }
    }

    /// Runs `body` with the connection on the client's thread pool, and settles the
    /// connection's state there before the result comes back (`ConnectionHandle.settle`).
    func onPool<T: Sendable>(_ body: @escaping @Sendable (ConnectionHandle) throws -> T) async throws -> T {
        let handle = self.handle
        return try await threadPool.runIfActive {
            defer { handle.settle() }
            return try body(handle)
        }
    }
}

/// Buffers COPY data and sends it in chunks of about 256 KiB.
public struct PostgresCopyWriter: Sendable {
    let connection: PostgresConnection
    private var buffer: [UInt8] = []
    private static let chunkSize = 256 * 1024

    init(connection: PostgresConnection) {
        self.connection = connection
        buffer.reserveCapacity(Self.chunkSize + 4096)
    }

    public mutating func write(_ bytes: some Sequence<UInt8>) async throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.chunkSize { try await flush() }
    }

    public mutating func write(_ text: String) async throws {
        try await write(text.utf8)
    }

    mutating func flush() async throws {
        guard !buffer.isEmpty else { return }
        let chunk = buffer
        buffer.removeAll(keepingCapacity: true)
        try await connection.putCopyData(chunk)
    }

    /// Escapes a value for COPY's text format (backslash, tab, newline, carriage return).
    public static func escape(_ value: String?) -> String {
        guard let value else { return "\\N" }
        var escaped = ""
        escaped.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\t": escaped += "\\t"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }
}
