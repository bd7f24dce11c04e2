import ItakuData
import Testing

@Suite("CSV parser")
struct CSVParserTests {
    /// Parses `bytes` fed in chunks of `chunk` bytes.
    static func rows(_ bytes: [UInt8], chunk: Int) throws -> [[String]] {
        var parser = CSVParser()
        var rows: [CSVParser.Row] = []
        var start = 0
        while start < bytes.count {
            rows += try parser.feed(bytes[start..<min(bytes.count, start + chunk)])
            start += chunk
        }
        return (rows + (try parser.finish())).map(\.fields)
    }

    /// Full-width digits and half-width kana (U+F000 to U+FFFF) start with the byte-order mark's
    /// first byte: only the input's first three bytes may be a byte-order mark.
    @Test("full-width digits and half-width kana at the start of a row or of the file are text; a byte-order mark is dropped", arguments: [1, 2, 3, 4096])
    func byteOrderMarkOnlyAtTheStart(chunk: Int) throws {
        let text = "customer_no,name\n１２３,ﾔﾏﾀﾞ\nＡ１,\"ｶﾅ,ｶﾅ\"\n"
        #expect(try Self.rows(Array(text.utf8), chunk: chunk) == [["customer_no", "name"], ["１２３", "ﾔﾏﾀﾞ"], ["Ａ１", "ｶﾅ,ｶﾅ"]])
        #expect(try Self.rows([0xEF, 0xBB, 0xBF] + Array(text.utf8), chunk: chunk) == [["customer_no", "name"], ["１２３", "ﾔﾏﾀﾞ"], ["Ａ１", "ｶﾅ,ｶﾅ"]])
        #expect(try Self.rows(Array("１２３,ｱ\n".utf8), chunk: chunk) == [["１２３", "ｱ"]])
        #expect(try Self.rows(Array("１".utf8), chunk: chunk) == [["１"]])
        #expect(try Self.rows([0xEF, 0xBB, 0xBF], chunk: chunk) == [])
    }

    /// A body of commas without a line end, or one endless value, must not take memory in
    /// proportion to the body: the row is refused once it is too large.
    @Test("a row of more than 1,000 values or 1 MiB is refused, however it arrives; rows below the limits are not")
    func rowsAreBounded() throws {
        let commas = [UInt8](repeating: UInt8(ascii: ","), count: 1_200)
        #expect(throws: CSVParser.ParseError.rowTooLarge(line: 1)) { try Self.rows(commas, chunk: 65_536) }
        let value = [UInt8](repeating: UInt8(ascii: "a"), count: (1 << 20) + 10)
        #expect(throws: CSVParser.ParseError.rowTooLarge(line: 3)) { try Self.rows(Array("a,b\n1,2\n".utf8) + value, chunk: 65_536) }
        let quoted = [UInt8(ascii: "\"")] + [UInt8](repeating: UInt8(ascii: "\n"), count: (1 << 20) + 10)
        #expect(throws: CSVParser.ParseError.rowTooLarge(line: 1)) { try Self.rows(quoted, chunk: 65_536) }
        // More than 1 MiB in all, in rows each well below the limits; a row of exactly 1,000 values.
        let row = String(repeating: "x", count: 500) + "," + String(repeating: "y", count: 500) + "\n"
        #expect(try Self.rows(Array(String(repeating: row, count: 1_100).utf8), chunk: 65_536).count == 1_100)
        let wide = Array((String(repeating: "v,", count: 999) + "v\n").utf8)
        #expect(try Self.rows(wide, chunk: 65_536).first?.count == 1_000)
    }
}
