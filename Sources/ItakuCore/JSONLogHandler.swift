import Foundation
import Logging

/// Writes each log record as one JSON object per line on standard error (through `LogOutput`:
/// info lines in batches, warnings and errors at once):
/// `{"time":…,"level":…,"label":…,"message":…,"itaku.request_id":…}`.
///
/// Itaku logs only structured metadata (route templates, codes, ids); never payloads, query
/// strings or personal data. This handler does not redact: the discipline is at the call sites.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let text = line(level: event.level, message: event.message.description, metadata: event.metadata, time: Date())
        LogOutput.standardError.write(text, urgent: event.level >= .warning)
    }

    /// One record as its JSON line (newline included).
    public func line(level: Logger.Level, message: String, metadata: Logger.Metadata?, time: Date) -> String {
        // The record's metadata over the handler's; the four fixed keys are the handler's own.
        var fields: [(key: String, value: Logger.MetadataValue)] = [
            ("time", .string(Timestamp.iso8601(time))), ("level", .string(level.rawValue)),
            ("label", .string(label)), ("message", .string(message)),
        ]
        fields.reserveCapacity(4 + self.metadata.count + (metadata?.count ?? 0))
        for (key, value) in self.metadata where metadata?[key] == nil && !Self.isFixed(key) { fields.append((key, value)) }
        for (key, value) in metadata ?? [:] where !Self.isFixed(key) { fields.append((key, value)) }
        // Keys in plain code-point order: the same line for the same record, cheaply.
        fields.sort { $0.key < $1.key }
        var out: [UInt8] = []
        out.reserveCapacity(320)
        out.append(UInt8(ascii: "{"))
        for (index, field) in fields.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            JSONText.append(field.key, to: &out)
            out.append(UInt8(ascii: ":"))
            Self.append(field.value, to: &out)
        }
        out.append(contentsOf: "}\n".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    private static func isFixed(_ key: String) -> Bool {
        key == "time" || key == "level" || key == "label" || key == "message"
    }

    private static func append(_ value: Logger.MetadataValue, to out: inout [UInt8]) {
        switch value {
        case .string(let string): JSONText.append(string, to: &out)
        case .stringConvertible(let convertible): JSONText.append(convertible.description, to: &out)
        case .array(let array):
            out.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                append(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let dictionary):
            out.append(UInt8(ascii: "{"))
            for (index, element) in dictionary.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSONText.append(element.key, to: &out)
                out.append(UInt8(ascii: ":"))
                append(element.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}
