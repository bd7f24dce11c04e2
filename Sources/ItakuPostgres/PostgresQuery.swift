/// A SQL statement whose interpolations become bound parameters.
///
/// ```swift
/// let rows = try await client.query("SELECT name FROM itaku.tenants WHERE code = \(code)")
/// ```
/// sends `SELECT name FROM itaku.tenants WHERE code = $1` with `code` as parameter 1, so no
/// value ever becomes SQL text. There is no interpolation that splices a string into the SQL.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public private(set) var sql: String
    public private(set) var binds: PostgresBindings
    /// Run as a named prepared statement on each pooled connection (parsed and planned once per
    /// connection), unless the connection goes through a transaction pooler.
    public private(set) var isPrepared = false

    /// This statement, prepared once per connection: for the hot, fixed statements.
    public func prepared() -> PostgresQuery {
        var copy = self
        copy.isPrepared = true
        return copy
    }

    /// `query`, prepared once per connection: `connection.query(.prepared("SELECT … \(x)"))`.
    public static func prepared(_ query: PostgresQuery) -> PostgresQuery { query.prepared() }

    public init(stringLiteral value: String) {
        self.sql = value
        self.binds = PostgresBindings()
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.binds = stringInterpolation.binds
    }

    /// SQL that comes from the program itself (migration files), never from input.
    public init(unsafeSQL sql: String, binds: PostgresBindings = PostgresBindings()) {
        self.sql = sql
        self.binds = binds
    }

    /// The SQL text with placeholders; bound values are not shown.
    public var description: String { sql }

    public struct StringInterpolation: StringInterpolationProtocol, Sendable {
        var sql: String
        var binds: PostgresBindings

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql = ""
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            binds = PostgresBindings(capacity: interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            binds.append(value)
            sql += "$\(binds.count)"
        }

        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            if let value { binds.append(value) } else { binds.appendNull(Value.postgresType) }
            sql += "$\(binds.count)"
        }
    }
}

/// The parameters of a statement, encoded and ready for `PQexecParams`.
///
/// A value that cannot be encoded is remembered, not trapped on: the statement then fails with
/// that `PostgresEncodingError` before anything is sent.
public struct PostgresBindings: Sendable {
    struct Bind: Sendable {
        var type: PostgresType
        var format: PostgresFormat
        var bytes: [UInt8]?
    }

    private(set) var values: [Bind] = []
    /// The first value that could not be encoded.
    public private(set) var encodingError: PostgresEncodingError?

    public init(capacity: Int = 0) {
        values.reserveCapacity(capacity)
    }

    public var count: Int { values.count }

    public mutating func append(_ value: some PostgresEncodable) {
        var bytes: [UInt8] = []
        do {
            try value.encode(into: &bytes)
        } catch {
            if encodingError == nil { encodingError = error }
        }
        values.append(Bind(type: type(of: value).postgresType, format: type(of: value).postgresFormat, bytes: bytes))
    }

    public mutating func appendNull(_ type: PostgresType) {
        values.append(Bind(type: type, format: .binary, bytes: nil))
    }
}
