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
        @usableFromInline var sql: String
        @usableFromInline var binds: PostgresBindings

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql = ""
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            binds = PostgresBindings(capacity: interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        @inlinable
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
public struct PostgresBindings: PostgresParameters, Sendable {
    /// Every value's bytes, one after another in one buffer (text values NUL-terminated, as
    /// libpq reads them), so a statement of many values costs no allocation per value.
    @usableFromInline var storage: [UInt8] = []
    /// Per value: its type, its format, its length, and where it starts in `storage` (-1: NULL).
    @usableFromInline var types: [PostgresType] = []
    @usableFromInline var formats: [Int32] = []
    @usableFromInline var lengths: [Int32] = []
    @usableFromInline var offsets: [Int] = []
    @usableFromInline var firstError: PostgresEncodingError?
    /// The first value that could not be encoded.
    public var encodingError: PostgresEncodingError? { firstError }

    public init(capacity: Int = 0) {
        types.reserveCapacity(capacity)
        formats.reserveCapacity(capacity)
        lengths.reserveCapacity(capacity)
        offsets.reserveCapacity(capacity)
    }

    public var count: Int { types.count }

    @inlinable
    public mutating func append<Value: PostgresEncodable>(_ value: Value) {
        let start = storage.count
        do {
            try value.encode(into: &storage)
        } catch {
            storage.removeSubrange(start...)
            if firstError == nil { firstError = error }
        }
        let length = storage.count - start
        if Value.postgresFormat == .text { storage.append(0) }
        types.append(Value.postgresType)
        formats.append(Value.postgresFormat.rawValue)
        lengths.append(Int32(clamping: length))
        offsets.append(start)
        if length > Int(Int32.max), firstError == nil { firstError = .outOfRange(Value.postgresType) }
    }

    public mutating func appendNull(_ type: PostgresType) {
        types.append(type)
        formats.append(PostgresFormat.binary.rawValue)
        lengths.append(0)
        offsets.append(-1)
    }

    /// Value `index`'s bytes (without a text value's terminator), nil for NULL.
    func bytes(at index: Int) -> ArraySlice<UInt8>? {
        offsets[index] < 0 ? nil : storage[offsets[index]..<(offsets[index] + Int(lengths[index]))]
    }
}
