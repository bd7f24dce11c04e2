/// An error from the PostgreSQL client.
///
/// `description` is deliberately generic: it names the kind of failure and the SQLSTATE, never
/// the server's message, because server messages can quote the data of the failing row
/// ("Key (phone)=(090...) already exists"). The detail lives in `debugDescription`, which only
/// tests and deliberate debugging print.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Kind: String, Sendable {
        /// The connection could not be opened (server down, authentication, TLS verification).
        case connectionFailed
        /// The connection broke while in use; the outcome of an in-flight statement is unknown.
        case connectionClosed
        /// The server answered the statement with an error; `sqlState` says which.
        case server
        /// The connection opened but does not meet Itaku's requirements (e.g. `synchronous_commit`).
        case unsafeSession
        /// A result could not be decoded into the requested Swift type.
        case decoding
        /// The pool is shutting down.
        case poolClosed
        /// COPY was aborted by the caller.
        case copyAborted
    }

    public var kind: Kind
    /// The five-character SQLSTATE code, when the server reported one (e.g. `57014` = cancelled).
    public var sqlState: String?
    /// The server's or libpq's message. May contain data values: never log it.
    public var detail: String

    public init(_ kind: Kind, sqlState: String? = nil, detail: String = "") {
        self.kind = kind
        self.sqlState = sqlState
        self.detail = detail
    }

    public var description: String {
        if let sqlState { return "PostgreSQL \(kind.rawValue) error (SQLSTATE \(sqlState))" }
        return "PostgreSQL \(kind.rawValue) error"
    }

    public var debugDescription: String { "\(description): \(detail)" }

    /// Whether the error means the server could not be reached or the session was lost, as
    /// opposed to the server refusing a statement.
    public var isConnectionError: Bool {
        switch kind {
        case .connectionFailed, .connectionClosed, .poolClosed: return true
        case .server:
            // Class 08 is connection exception; 57P01-57P05 are shutdowns, cannot-connect-now, a
            // dropped database and an idle session's timeout; 25006 is a read-only session (a
            // standby, after a failover): each means this database is not there to write to now.
            guard let sqlState else { return false }
            return sqlState.hasPrefix("08") || sqlState.hasPrefix("57P") || sqlState == SQLState.readOnlyTransaction
        default: return false
        }
    }
}

extension PostgresError {
    /// Whether the server refused a statement, reporting its SQLSTATE: the statement's
    /// transaction did not commit. Anything else in flight (a lost connection, an error without
    /// a SQLSTATE, a result that could not be read) leaves a COMMIT's outcome unknown.
    public var isRefusal: Bool { kind == .server && sqlState != nil && !isConnectionError }

    /// SQLSTATE values Itaku reacts to.
    public enum SQLState {
        public static let queryCanceled = "57014"
        public static let readOnlyTransaction = "25006"
        public static let featureNotSupported = "0A000"
        public static let uniqueViolation = "23505"
        public static let insufficientPrivilege = "42501"
        public static let serializationFailure = "40001"
        public static let deadlockDetected = "40P01"
        public static let raiseException = "P0001"
        public static let invalidStatementName = "26000"
    }
}
