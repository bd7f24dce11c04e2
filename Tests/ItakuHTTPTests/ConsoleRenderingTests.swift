import Foundation
@testable import ItakuHTTP
import Testing

@Suite("Console rendering")
struct ConsoleRenderingTests {
    static let hostile = "<script>alert(1)</script>"

    @Test("a label, title, series name or colour carrying markup is shown escaped in both chart kinds, never as markup")
    func chartsEscapeEverything() {
        let columns = SVGChart.stackedColumns(
            id: "hourly\"x", title: Self.hostile, buckets: [(label: Self.hostile, values: [3, 1])],
            series: [ChartSeries(name: Self.hostile, color: "#2e7d32"),
                     ChartSeries(name: "denied", color: "#000\" onmouseover=\"alert(1)")],
            emptyText: "No data")
        let bars = SVGChart.horizontalBars(
            id: "top", title: "Datasets", bars: [(label: Self.hostile, value: 12345)],
            color: "red\" onclick=\"alert(1)", emptyText: "No data")
        for svg in [columns, bars] {
            #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
            #expect(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(!svg.contains("<script"))
            #expect(!svg.contains("\" onmouseover=\"") && !svg.contains("\" onclick=\""))
        }
        #expect(columns.contains("id=\"hourly&quot;x\"") && columns.contains("aria-labelledby=\"hourly&quot;x-title\""))
        #expect(bars.contains(">12,345<"))
        #expect(SVGChart.grouped(1_234_567) == "1,234,567" && SVGChart.grouped(-1000) == "-1,000")
    }

    @Test("the purpose diff pairs changed lines between unchanged ones, and stays linear for texts too long to compare line by line")
    func diffIsBounded() {
        let lines = LineDiff.sideBySide("a\nb\nc\nd", "a\nB\nc\nd\ne")
        #expect(lines == [
            .init(before: "a", after: "a", changed: false), .init(before: "b", after: "B", changed: true),
            .init(before: "c", after: "c", changed: false), .init(before: "d", after: "d", changed: false),
            .init(before: nil, after: "e", changed: true),
        ])
        // 50,000 lines against 50,000 others: a table of every pair would need 20 GB.
        let long = (0..<50_000).map { "\"read\"," + String($0) }.joined(separator: "\n")
        let other = (0..<50_000).map { "\"lookup\"," + String($0) }.joined(separator: "\n")
        let diff = LineDiff.sideBySide("{\n" + long + "\n}", "{\n" + other + "\n}")
        #expect(diff.count == 50_002 && diff.first?.changed == false && diff.last?.changed == false)
        #expect(diff.dropFirst().dropLast().allSatisfy { $0.changed })
    }

    @Test("no data shows the empty text and no bars; stacked columns draw one rect per non-zero segment")
    func emptyDataAndSegments() {
        let series = [ChartSeries(name: "allowed", color: "#2e7d32"), ChartSeries(name: "denied", color: "#c62828")]
        let empties = [
            SVGChart.stackedColumns(id: "a", title: "Hourly", buckets: [], series: series, emptyText: "データなし"),
            SVGChart.stackedColumns(id: "b", title: "Hourly", buckets: [(label: "00", values: [0, 0])],
                                    series: series, emptyText: "データなし"),
            SVGChart.horizontalBars(id: "c", title: "Top", bars: [], color: "#1565c0", emptyText: "データなし"),
            SVGChart.horizontalBars(id: "d", title: "Top", bars: [(label: "x", value: 0)], color: "#1565c0",
                                    emptyText: "データなし"),
        ]
        for svg in empties {
            #expect(svg.contains("データなし"))
            #expect(!svg.contains("class=\"bar\""))
            #expect(svg.hasSuffix("</svg>"))
        }
        let buckets = (0..<48).map { hour in (label: "\(hour % 24):00", values: [hour % 3, hour % 2]) }
        let svg = SVGChart.stackedColumns(id: "h", title: "Hourly", buckets: buckets, series: series, emptyText: "-")
        let nonZero = buckets.reduce(0) { $0 + $1.values.filter { $0 > 0 }.count }
        #expect(occurrences(of: "class=\"bar\"", in: svg) == nonZero)
        // 48 buckets: every fourth labelled, so no more than 12 labels under the axis.
        #expect(occurrences(of: "text-anchor=\"middle\">", in: svg) <= 12)
    }

    @Test("the PDF report is well formed: each xref offset points at its object, pages are counted, long tables break")
    func pdfStructure() throws {
        let pdf = report(rows: 300).render()
        #expect(pdf.starts(with: Array("%PDF-1.4\n".utf8)))
        let text = String(decoding: pdf, as: UTF8.self)
        #expect(text.hasSuffix("%%EOF\n"))
        #expect(pdf == report(rows: 300).render(), "the same input gives the same bytes")

        let startxref = try #require(lastIndex(of: "startxref", in: pdf))
        let tail = String(decoding: pdf[(startxref + 9)...], as: UTF8.self)
        let xrefOffset = try #require(tail.split(whereSeparator: \.isNewline).first.flatMap { Int($0) })
        let xrefHead = String(decoding: pdf[xrefOffset...].prefix(40), as: UTF8.self)
        let headLines = xrefHead.split(whereSeparator: \.isNewline)
        #expect(headLines.first == "xref")
        let subsection = try #require(headLines.dropFirst().first?.split(separator: " "))
        let count = try #require(subsection.last.flatMap { Int($0) })
        #expect(subsection.first == "0" && count > 8)
        #expect(text.contains("/Size \(count) "))
        let entries = xrefOffset + "xref\n0 \(count)\n".utf8.count
        for number in 1..<count {
            let entry = String(decoding: pdf[(entries + 20 * number)..<(entries + 20 * number + 20)], as: UTF8.self)
            #expect(entry.hasSuffix(" 00000 n\r\n"), "entry \(number) is 20 bytes")
            let offset = try #require(Int(entry.prefix(10)))
            let target = Array("\(number) 0 obj".utf8)
            #expect(Array(pdf[offset..<min(offset + target.count, pdf.count)]) == target, "object \(number)")
        }

        let pages = occurrences(of: "/Type /Page ", in: text)
        #expect(pages > 1, "300 rows do not fit on one page")
        #expect(text.contains("/Count \(pages) "))
        #expect(text.contains("/BaseFont /HeiseiKakuGo-W5 /Encoding /UniJIS-UCS2-H"))
    }

    @Test("pdftotext reads the Japanese title and cells back (skipped where poppler or its Japanese CMaps are absent)")
    func pdfTextExtraction() throws {
        let pdftotext = "/usr/bin/pdftotext"
        // Without poppler-data, poppler cannot read the UniJIS-UCS2-H encoding that every reader ships.
        let cmap = "/usr/share/poppler/cMap/Adobe-Japan1/UniJIS-UCS2-H"
        guard FileManager.default.isExecutableFile(atPath: pdftotext), FileManager.default.fileExists(atPath: cmap)
        else { return }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("itaku-report-\(UUID().uuidString).pdf")
        try Data(report(rows: 3).render()).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: pdftotext)
        process.arguments = ["-enc", "UTF-8", url.path, "-"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let text = String(decoding: output, as: UTF8.self).filter { !$0.isWhitespace }
        #expect(text.contains("取扱状況報告"))
        #expect(text.contains("株式会社サンプル"))
        #expect(text.contains("山田太郎"))
        #expect(text.contains("1/1"))
    }

    private func report(rows: Int) -> PDFReport {
        let requests = PDFReport.Section(
            heading: "本人からの請求",
            columns: ["受付日", "請求者", "種別", "状態"],
            rows: [["2025-04-01", "山田 太郎", "開示", "完了"]] + (0..<rows).map { index in
                ["2025-04-\(index % 30 + 1)", "利用者 \(index)", "訂正", "対応中 " + String(repeating: "x", count: 80)]
            })
        return PDFReport(title: "取扱状況報告", subtitle: "株式会社サンプル 2025年4月1日〜2025年4月30日",
                         sections: [requests])
    }

    private func occurrences(of needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    private func lastIndex(of needle: String, in bytes: [UInt8]) -> Int? {
        let target = Array(needle.utf8)
        guard bytes.count >= target.count else { return nil }
        return stride(from: bytes.count - target.count, through: 0, by: -1).first { start in
            bytes[start..<(start + target.count)].elementsEqual(target)
        }
    }
}
