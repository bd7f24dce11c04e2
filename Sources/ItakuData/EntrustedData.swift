/// The entrusted-data layer: records as jsonb, the keyed lookup index (digests of normalised
/// phone numbers, e-mail addresses and exact keys), imports and updates.
public enum EntrustedData {
    /// Lookup kinds a dataset field can be searchable by.
    public enum LookupKind: String, Sendable, CaseIterable, Codable {
        case phone, email, exact
    }
}
