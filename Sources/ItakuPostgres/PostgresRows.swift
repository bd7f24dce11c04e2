/// The rows of a result, copied out of the `PGresult` on the pool thread so that nothing of
/// libpq's memory outlives the work item. All cells share one byte buffer.
public struct PostgresRows: Sendable, RandomAccessCollection {
    public struct Column: Sendable {
        public var name: String
        public var type: PostgresType
    }

    public let columns: [Column]
    /// Rows affected, from `PQcmdTuples` (INSERT/UPDATE/DELETE/COPY), else the row count.
    public let affectedRows: Int
    let storage: [UInt8]
    /// Per cell: start offset into `storage` and length, or -1 for NULL.
    let cells: [(start: Int, length: Int)]

    init(columns: [Column], affectedRows: Int, storage: [UInt8], cells: [(start: Int, length: Int)]) {
        self.columns = columns
        self.affectedRows = affectedRows
        self.storage = storage
        self.cells = cells
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { columns.isEmpty ? 0 : cells.count / columns.count }

    public subscript(position: Int) -> PostgresRow { PostgresRow(rows: self, index: position) }

    func cell(row: Int, column: Int) -> PostgresCell {
        let (start, length) = cells[row * columns.count + column]
        let bytes: ArraySlice<UInt8>? = length < 0 ? nil : storage[start..<start + length]
        return PostgresCell(bytes: bytes, type: columns[column].type, columnName: columns[column].name)
    }
}

/// One row of a result.
public struct PostgresRow: Sendable {
    let rows: PostgresRows
    let index: Int

    public var count: Int { rows.columns.count }

    public func cell(_ column: Int) -> PostgresCell {
        rows.cell(row: index, column: column)
    }

    public func decode<T: PostgresDecodable>(_ column: Int, as type: T.Type = T.self) throws -> T {
        guard column < rows.columns.count else {
            throw PostgresError(.decoding, detail: "no column \(column)")
        }
        return try T(postgres: cell(column))
    }

    public func decode<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws -> T {
        guard let column = rows.columns.firstIndex(where: { $0.name == name }) else {
            throw PostgresError(.decoding, detail: "no column \(name)")
        }
        return try T(postgres: cell(column))
    }
}
