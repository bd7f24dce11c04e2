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
        var fields: [(String, String)] = [
            ("time", JSONText.string(Timestamp.iso8601(time))),
            ("level", JSONText.string(level.rawValue)),
            ("label", JSONText.string(label)),
            ("message", JSONText.string(message)),
        ]
        let merged = metadata.map { self.metadata.merging($0) { $1 } } ?? self.metadata
        for (key, value) in merged where !["time", "level", "label", "message"].contains(key) {
            fields.append((key, Self.json(value)))
        }
        // Keys in plain code-point order: the same line for the same record, cheaply.
        fields.sort { $0.0 < $1.0 }
        var line = "{"
        for (index, field) in fields.enumerated() {
            if index > 0 { line += "," }
            line += JSONText.string(field.0) + ":" + field.1
        }
        return line + "}\n"
    }

    private static func json(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let string): JSONText.string(string)
        case .stringConvertible(let convertible): JSONText.string(convertible.description)
        case .array(let array): "[" + array.map(json).joined(separator: ",") + "]"
        case .dictionary(let dictionary):
            "{" + dictionary.sorted { $0.key < $1.key }.map { JSONText.string($0.key) + ":" + json($0.value) }.joined(separator: ",") + "}"
        }
    }
}
