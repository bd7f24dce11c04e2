/// The handling-status report (取扱状況報告) as a PDF a client can download and file.
/// A small PDF 1.4 writer of its own, so the server needs no PDF library; the font is the standard
/// Japanese HeiseiKakuGo-W5 that readers supply themselves, so nothing is embedded.
/// The output depends on the input only (no clock, no compression), byte for byte.
struct PDFReport: Sendable {
    struct Section: Sendable {
        var heading: String
        var columns: [String]
        var rows: [[String]]
    }

    var title: String
    var subtitle: String      // e.g. tenant and period
    var sections: [Section]

    /// The whole document's bytes.
    func render() -> [UInt8] {
        var canvas = Canvas()
        canvas.y -= 16
        canvas.text(title, x: Canvas.margin, size: 16, bold: true, width: Canvas.contentWidth)
        canvas.y -= 18
        canvas.text(subtitle, x: Canvas.margin, size: 10, width: Canvas.contentWidth)
        canvas.y -= 16
        for section in sections {
            // A heading is never left alone at the foot of a page: it needs its table header and a first row.
            if canvas.y - 22 - 2 * Canvas.rowHeight < Canvas.margin { canvas.newPage() }
            canvas.y -= 14
            canvas.text(section.heading, x: Canvas.margin, size: 12, bold: true, width: Canvas.contentWidth)
            canvas.y -= 6
            let columns = Self.columnLayout(section)
            if !columns.isEmpty {
                canvas.header(section.columns, columns)
                for row in section.rows {
                    if canvas.y - Canvas.rowHeight < Canvas.margin {
                        canvas.newPage()
                        canvas.header(section.columns, columns)
                    }
                    canvas.row(row, columns, bold: false)
                }
            }
            canvas.y -= 12
        }
        return Self.assemble(canvas.finish(), title: title)
    }

    /// Column x positions and widths: proportional to each column's widest text (capped, so one long
    /// column cannot squeeze the others away), scaled to fill the page width.
    private static func columnLayout(_ section: Section) -> [(x: Double, width: Double)] {
        let natural = section.columns.indices.map { index in
            let widest = ([section.columns[index]] + section.rows.map { index < $0.count ? $0[index] : "" })
                .map { textWidth(codeUnits($0), size: 9) }.max() ?? 0
            return min(max(widest + 6, 24), 240)
        }
        let scale = Canvas.contentWidth / max(natural.reduce(0, +), 1)
        var x = Canvas.margin
        return natural.map { width in
            defer { x += width * scale }
            return (x, width * scale)
        }
    }

    // MARK: Text

    /// UCS-2 code units for UniJIS-UCS2-H: line breaks and tabs become spaces, other controls are dropped,
    /// and characters beyond the BMP (which UCS-2 cannot carry) become "?".
    static func codeUnits(_ text: String) -> [UInt16] {
        var units: [UInt16] = []
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x09, 0x0A, 0x0D: units.append(0x20)
            case 0..<0x20, 0x7F..<0xA0: continue
            case 0x10000...: units.append(0x3F)
            default: units.append(UInt16(scalar.value))
            }
        }
        return units
    }

    /// Estimated width in points (no font metrics here): ASCII 0.55 em, everything else a full em.
    static func textWidth(_ units: [UInt16], size: Double) -> Double {
        units.reduce(0) { $0 + ($1 < 0x80 ? 0.55 : 1.0) } * size
    }

    /// The units cut, with "…", so their estimated width stays within `width`.
    static func fit(_ units: [UInt16], width: Double, size: Double) -> [UInt16] {
        guard textWidth(units, size: size) > width else { return units }
        var out: [UInt16] = [], used = size
        for unit in units {
            used += (unit < 0x80 ? 0.55 : 1.0) * size
            if used > width { break }
            out.append(unit)
        }
        return out + [0x2026]
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// A PDF hex string `<…>`, four digits per 16-bit unit.
    static func hex(_ units: [UInt16]) -> String {
        var bytes: [UInt8] = [0x3C]
        for unit in units {
            for shift in [12, 8, 4, 0] { bytes.append(hexDigits[Int((unit >> UInt16(shift)) & 0xF)]) }
        }
        bytes.append(0x3E)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A number with at most two decimals, the same on every run and host.
    static func num(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let hundredths = Int((min(max(value, -1e6), 1e6) * 100).rounded())
        let sign = hundredths < 0 ? "-" : "", magnitude = hundredths.magnitude
        let fraction = magnitude % 100
        if fraction == 0 { return "\(sign)\(magnitude / 100)" }
        return "\(sign)\(magnitude / 100)." + (fraction < 10 ? "0\(fraction)" : "\(fraction)")
    }

    // MARK: Pages

    /// Lays content out top to bottom, starting a new page whenever the next line would cross the margin.
    private struct Canvas {
        static let pageWidth = 595.0, pageHeight = 842.0, margin = 40.0, rowHeight = 13.0
        static let contentWidth = pageWidth - 2 * margin

        var pages: [String] = []
        var content = ""
        var y = pageHeight - margin

        mutating func newPage() {
            pages.append(content)
            content = ""
            y = Self.pageHeight - Self.margin
        }

        /// Text with its baseline at `y`; bold is faked by stroking the glyph outlines as well as filling them.
        mutating func text(_ text: String, x: Double, size: Double, bold: Bool = false, width: Double,
                           at baseline: Double? = nil) {
            let units = PDFReport.fit(PDFReport.codeUnits(text), width: width, size: size)
            let show = "BT /F1 \(PDFReport.num(size)) Tf \(PDFReport.num(x)) \(PDFReport.num(baseline ?? y)) Td "
                + "\(PDFReport.hex(units)) Tj ET"
            content += bold ? "q 2 Tr 0.3 w \(show) Q\n" : "\(show)\n"
        }

        mutating func row(_ cells: [String], _ columns: [(x: Double, width: Double)], bold: Bool) {
            for (index, column) in columns.enumerated() where index < cells.count {
                text(cells[index], x: column.x + 2, size: 9, bold: bold, width: column.width - 4, at: y - 9.5)
            }
            y -= Self.rowHeight
        }

        /// The table header, repeated at the top of each page the table continues on.
        mutating func header(_ names: [String], _ columns: [(x: Double, width: Double)]) {
            row(names, columns, bold: true)
            let lineY = PDFReport.num(y + 1.5)
            content += "0.5 w \(PDFReport.num(Self.margin)) \(lineY) m "
                + "\(PDFReport.num(Self.margin + Self.contentWidth)) \(lineY) l S\n"
            y -= 2
        }

        /// Every page's content with its "n / N" footer, which needs the final page count.
        mutating func finish() -> [String] {
            pages.append(content)
            let total = pages.count
            return pages.enumerated().map { index, page in
                let label = "\(index + 1) / \(total)"
                let units = PDFReport.codeUnits(label)
                let x = (Self.pageWidth - PDFReport.textWidth(units, size: 8)) / 2
                return page + "BT /F1 8 Tf \(PDFReport.num(x)) 22 Td \(PDFReport.hex(units)) Tj ET\n"
            }
        }
    }

    // MARK: File structure

    /// Objects 1–7 are fixed (catalog, page tree, the font's four parts, info); pages follow as
    /// page/content pairs. Offsets are counted on the bytes as written, for the xref table.
    private static func assemble(_ contents: [String], title: String) -> [UInt8] {
        var out = Array("%PDF-1.4\n".utf8) + [0x25, 0xE2, 0xE3, 0xCF, 0xD3, 0x0A]
        var offsets: [Int] = []
        func object(_ body: String) {
            offsets.append(out.count)
            out += Array("\(offsets.count) 0 obj\n\(body)\nendobj\n".utf8)
        }
        func stream(_ data: String) {
            object("<< /Length \(data.utf8.count) >>\nstream\n\(data)\nendstream")
        }
        let kids = contents.indices.map { "\(8 + 2 * $0) 0 R" }.joined(separator: " ")
        object("<< /Type /Catalog /Pages 2 0 R >>")
        object("<< /Type /Pages /Kids [\(kids)] /Count \(contents.count) >>")
        object("<< /Type /Font /Subtype /Type0 /BaseFont /HeiseiKakuGo-W5 /Encoding /UniJIS-UCS2-H "
            + "/DescendantFonts [4 0 R] /ToUnicode 6 0 R >>")
        object("<< /Type /Font /Subtype /CIDFontType0 /BaseFont /HeiseiKakuGo-W5 "
            + "/CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 2 >> "
            + "/FontDescriptor 5 0 R /DW 1000 /W [1 95 500] >>")
        object("<< /Type /FontDescriptor /FontName /HeiseiKakuGo-W5 /Flags 4 /FontBBox [-92 -250 1010 922] "
            + "/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 700 /StemV 80 >>")
        stream(toUnicode())
        object("<< /Producer (Itaku) /Title \(hex([0xFEFF] + Array(title.utf16))) >>")
        for (index, content) in contents.enumerated() {
            object("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
                + "/Contents \(9 + 2 * index) 0 R >>")
            stream(content)
        }
        let xrefOffset = out.count
        var xref = "xref\n0 \(offsets.count + 1)\n0000000000 65535 f\r\n"
        for offset in offsets {
            let digits = String(offset)
            xref += String(repeating: "0", count: max(10 - digits.count, 0)) + digits + " 00000 n\r\n"
        }
        xref += "trailer\n<< /Size \(offsets.count + 1) /Root 1 0 R /Info 7 0 R >>\n"
            + "startxref\n\(xrefOffset)\n%%EOF\n"
        return out + Array(xref.utf8)
    }

    /// Each 2-byte code is its own UCS-2 value, so text extraction gives the Unicode text back.
    private static func toUnicode() -> String {
        var cmap = "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            + "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            + "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            + "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        // At most 100 entries per block, as the CMap format requires.
        for blockStart in stride(from: 0, to: 256, by: 100) {
            let block = blockStart..<min(blockStart + 100, 256)
            cmap += "\(block.count) beginbfrange\n"
            for high in block {
                let from = hex([UInt16(high << 8)]), to = hex([UInt16(high << 8 | 0xFF)])
                cmap += "\(from) \(to) \(from)\n"
            }
            cmap += "endbfrange\n"
        }
        return cmap + "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    }
}
