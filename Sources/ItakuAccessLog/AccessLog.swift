/// The access logger layer: typed entries for every decision, a group-commit writer that fails
/// closed, per-stream hash chains with signed checkpoints, search, export and verification.
public enum AccessLog {
    /// Operations an access entry can record.
    public enum Operation: String, Sendable, CaseIterable, Codable {
        case lookup, read, update, configure, review
    }
}
