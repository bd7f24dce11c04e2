/// One series of a chart: its name (legend) and fill colour (a CSS colour literal like "#2e7d32").
struct ChartSeries: Sendable {
    var name: String
    var color: String
}

/// The console's charts, drawn on the server as inline SVG so its pages need no JavaScript.
/// Labels and names come from tenant data, so every text and attribute value goes through `HTML.escape`.
enum SVGChart {
    static let width = 600

    /// Vertical stacked columns, one per bucket (e.g. each hour of a period), one stacked segment per
    /// series (values[i] belongs to series[i]). X labels are drawn for at most ~12 evenly spaced
    /// buckets so they never overlap. Y axis with 4-5 ticks, rounded to "nice" numbers. Legend.
    static func stackedColumns(id: String, title: String, buckets: [(label: String, values: [Int])],
                               series: [ChartSeries], emptyText: String) -> String {
        // A negative count is a bug upstream, not a bar to draw; values without a series have no colour.
        let values = buckets.map { bucket in
            series.indices.map { $0 < bucket.values.count ? max(bucket.values[$0], 0) : 0 }
        }
        let maxTotal = values.map { $0.reduce(0, plus) }.max() ?? 0
        guard maxTotal > 0 else { return emptyFrame(id: id, title: title, height: 160, emptyText: emptyText) }

        let plotLeft = 56.0, plotRight = Double(width) - 16, plotTop = 36.0, plotBottom = 236.0
        let legend = legendLayout(series, left: plotLeft, top: plotBottom + 44)
        let height = Int(plotBottom) + 44 + legend.rows * 18
        let (step, top) = niceScale(maxTotal)
        func y(_ value: Int) -> Double { plotBottom - Double(value) / Double(top) * (plotBottom - plotTop) }

        var out = open(id: id, title: title, height: height)
        for tick in stride(from: 0, through: top, by: step) {
            out += "<line class=\"grid\" x1=\"\(num(plotLeft))\" y1=\"\(num(y(tick)))\" x2=\"\(num(plotRight))\" "
                + "y2=\"\(num(y(tick)))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(num(plotLeft - 6))\" y=\"\(num(y(tick) + 4))\" text-anchor=\"end\">"
                + "\(grouped(tick))</text>\n"
        }
        let slot = (plotRight - plotLeft) / Double(buckets.count)
        let barWidth = max(slot * 0.7, 1)
        for (index, bucket) in buckets.enumerated() {
            let x = plotLeft + slot * Double(index) + (slot - barWidth) / 2
            var stacked = 0
            for (seriesIndex, value) in values[index].enumerated() where value > 0 {
                // Both edges from cumulative sums, so rounding never leaves gaps between segments.
                let lower = y(stacked)
                stacked = plus(stacked, value)
                let upper = y(stacked)
                let tip = "\(bucket.label) \(series[seriesIndex].name): \(grouped(value))"
                out += "<rect class=\"bar\" x=\"\(num(x))\" y=\"\(num(upper))\" width=\"\(num(barWidth))\" "
                    + "height=\"\(num(lower - upper))\" fill=\"\(HTML.escape(series[seriesIndex].color))\">"
                    + "<title>\(HTML.escape(tip))</title></rect>\n"
            }
        }
        // Every n-th label only, and each cut to the room it has, so labels never overlap or leave the frame.
        let every = (buckets.count + 11) / 12
        for index in stride(from: 0, to: buckets.count, by: every) {
            let centre = plotLeft + slot * (Double(index) + 0.5)
            let room = min(slot * Double(every), 2 * (Double(width) - centre), 2 * centre) - 4
            out += "<text x=\"\(num(centre))\" y=\"\(num(plotBottom + 16))\" text-anchor=\"middle\">"
                + "\(HTML.escape(fit(buckets[index].label, width: room)))</text>\n"
        }
        out += "<line x1=\"\(num(plotLeft))\" y1=\"\(num(plotBottom))\" x2=\"\(num(plotRight))\" "
            + "y2=\"\(num(plotBottom))\" stroke=\"#999\"/>\n"
        out += legend.svg
        return out + "</svg>"
    }

    /// Horizontal bars, one per row (label on the left, value at the end of the bar), largest scale = max value.
    static func horizontalBars(id: String, title: String, bars: [(label: String, value: Int)],
                               color: String, emptyText: String) -> String {
        let maxValue = bars.map { max($0.value, 0) }.max() ?? 0
        guard maxValue > 0 else { return emptyFrame(id: id, title: title, height: 120, emptyText: emptyText) }

        let rowHeight = 22.0, top = 34.0
        let height = Int(top + rowHeight * Double(bars.count) + 10)
        let labels = bars.map { truncated($0.label, to: 24) }
        let labelRight = 8 + (labels.map { textWidth($0) }.max() ?? 0)
        let barLeft = labelRight + 8
        let barRoom = max(Double(width) - barLeft - textWidth(grouped(maxValue)) - 16, 20)
        let fill = HTML.escape(color)

        var out = open(id: id, title: title, height: height)
        for (index, bar) in bars.enumerated() {
            let rowTop = top + rowHeight * Double(index)
            let value = max(bar.value, 0)
            let length = Double(value) / Double(maxValue) * barRoom
            out += "<text x=\"\(num(labelRight))\" y=\"\(num(rowTop + 15))\" text-anchor=\"end\">"
                + "\(HTML.escape(labels[index]))</text>\n"
            if value > 0 {
                // The tooltip keeps the whole label, which the visible one may have cut.
                out += "<rect class=\"bar\" x=\"\(num(barLeft))\" y=\"\(num(rowTop + 4))\" width=\"\(num(length))\" "
                    + "height=\"\(num(rowHeight - 8))\" fill=\"\(fill)\">"
                    + "<title>\(HTML.escape("\(bar.label): \(grouped(value))"))</title></rect>\n"
            }
            out += "<text x=\"\(num(barLeft + length + 4))\" y=\"\(num(rowTop + 15))\">\(grouped(value))</text>\n"
        }
        return out + "</svg>"
    }

    /// `1234567` → `"1,234,567"`, without NumberFormatter (locale-free, same output on every host).
    static func grouped(_ value: Int) -> String {
        let digits = Array(String(value.magnitude))
        var out = value < 0 ? "-" : ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return out
    }

    /// At most `limit` characters, the last one "…" when cut.
    static func truncated(_ text: String, to limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(max(limit - 1, 0))) + "…"
    }

    // MARK: Drawing helpers

    private static func open(id: String, title: String, height: Int) -> String {
        let id = HTML.escape(id)
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"\(id)\" role=\"img\" aria-labelledby=\"\(id)-title\" "
            + "viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\" "
            + "font-family=\"sans-serif\" font-size=\"11\">\n"
            + "<title id=\"\(id)-title\">\(HTML.escape(title))</title>\n"
            + "<text class=\"chart-title\" x=\"8\" y=\"20\" font-size=\"13\" font-weight=\"bold\">"
            + "\(HTML.escape(fit(title, width: Double(width) - 16, fontSize: 13)))</text>\n"
    }

    private static func emptyFrame(id: String, title: String, height: Int, emptyText: String) -> String {
        open(id: id, title: title, height: height)
            + "<text class=\"empty\" x=\"\(width / 2)\" y=\"\(height / 2 + 10)\" text-anchor=\"middle\" fill=\"#777\">"
            + "\(HTML.escape(emptyText))</text>\n</svg>"
    }

    /// Legend entries left to right, wrapping to a new line when the frame is full.
    private static func legendLayout(_ series: [ChartSeries], left: Double, top: Double) -> (svg: String, rows: Int) {
        var svg = "", x = left, row = 0
        for entry in series {
            let name = fit(entry.name, width: Double(width) - left - 30)
            let entryWidth = 14 + textWidth(name) + 16
            if x + entryWidth > Double(width) - 8 && x > left {
                x = left
                row += 1
            }
            let y = top + 18 * Double(row)
            svg += "<rect class=\"swatch\" x=\"\(num(x))\" y=\"\(num(y - 9))\" width=\"10\" height=\"10\" "
                + "fill=\"\(HTML.escape(entry.color))\"/>"
                + "<text x=\"\(num(x + 14))\" y=\"\(num(y))\">\(HTML.escape(name))</text>\n"
            x += entryWidth
        }
        return (svg, series.isEmpty ? 0 : row + 1)
    }

    /// A step of 1, 2 or 5 × 10ⁿ giving at most four intervals, and the axis top that is a multiple of it.
    private static func niceScale(_ maximum: Int) -> (step: Int, top: Int) {
        let raw = max((maximum + 3) / 4, 1)
        guard raw < Int.max / 20 else { return (raw, maximum) }
        var power = 1
        while power <= raw / 10 { power *= 10 }
        let step = [1, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? raw
        return (step, (maximum + step - 1) / step * step)
    }

    /// Counts are non-negative; a sum that would overflow stays at the largest value instead of trapping.
    private static func plus(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : sum
    }

    /// Estimated width of text at `fontSize` (no font metrics on the server): ASCII narrow, the rest full-width.
    private static func textWidth(_ text: String, fontSize: Double = 11) -> Double {
        text.reduce(0) { $0 + ($1.isASCII ? 0.6 : 1.0) } * fontSize
    }

    /// The text cut by Character, with "…", so its estimated width stays within `width`.
    private static func fit(_ text: String, width: Double, fontSize: Double = 11) -> String {
        guard textWidth(text, fontSize: fontSize) > width else { return text }
        var out = "", used = fontSize
        for character in text {
            used += (character.isASCII ? 0.6 : 1.0) * fontSize
            if used > width { break }
            out.append(character)
        }
        return out + "…"
    }

    /// A coordinate with at most one decimal, so the markup stays short and identical across runs.
    private static func num(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let tenths = Int((min(max(value, -1e9), 1e9) * 10).rounded())
        let sign = tenths < 0 ? "-" : "", magnitude = tenths.magnitude
        return magnitude % 10 == 0 ? "\(sign)\(magnitude / 10)" : "\(sign)\(magnitude / 10).\(magnitude % 10)"
    }
}
