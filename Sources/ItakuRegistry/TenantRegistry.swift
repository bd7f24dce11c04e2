/// The tenant registry layer: tenants, datasets, purposes (versioned), agents, assignments,
/// integrations and keys, served as an immutable in-memory snapshot refreshed on change
/// (LISTEN/NOTIFY across instances). Its tables are created by `ItakuSchema`'s migrations.
public enum TenantRegistry {
    /// The NOTIFY channel on which registry changes are announced to every instance.
    public static let changeChannel = "itaku_registry"
}
