/// A pooled connection lent to a closure that runs on the client's thread pool
/// (`PostgresClient.withSession`). Its statements are blocking libpq calls made right there, on
/// the pool thread: a loop that sends batch after batch (the access log's group commit, the
/// agent path's lookups and case checks) pays no hop to the pool and back between them, and
/// waits for no other task. Don't let it escape the closure.
public struct PostgresSession {
    let handle: ConnectionHandle
    let client: PostgresClient

    /// Runs one statement and returns its rows.
    @discardableResult
    public func query(_ query: PostgresQuery) throws -> PostgresRows {
        try handle.execute(query.sql, query.binds, prepared: query.isPrepared)
    }

    /// Runs `statements` in order in one round trip, as `PostgresConnection.pipeline` does.
    @discardableResult
    public func pipeline(_ statements: [PostgresQuery]) throws -> [PostgresRows] {
        try handle.executePipeline(statements)
    }

    /// Whether the connection can take another statement: open, not broken, and not inside a
    /// transaction. After a failure that left it otherwise, a loop ends and leases anew.
    public var isUsable: Bool { handle.isReusable }

    /// Whether another task waits for a connection of the pool: a loop gives this one back after
    /// its batch, and leases again behind it, so that with a small pool nothing waits long.
    public var isWanted: Bool { client.hasWaiters }
}

@available(*, unavailable)
extension PostgresSession: Sendable {}

extension PostgresClient {
    /// Leases a connection and runs `body` with it on the client's thread pool; the connection
    /// goes back to the pool when `body` returns. `body` must wait for nothing but PostgreSQL:
    /// it holds a pool thread and a connection while it runs. Throws only when no connection
    /// could be leased, the pool is shutting down or the calling task was cancelled; then
    /// `body` did not run. Statements on a session are not cancelled with the calling task
    /// (`statement_timeout` bounds them).
    public func withSession<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) -> T) async throws -> T {
        try await withConnection { connection in
            try await connection.onPool { handle in body(PostgresSession(handle: handle, client: self)) }
        }
    }
}
