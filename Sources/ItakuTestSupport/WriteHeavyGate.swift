import ItakuCore

/// Tests share one PostgreSQL cluster, and so one WAL: copying a database (`cloneDatabase`)
/// writes all of it to the WAL, and every commit of every other test waits behind that for a
/// moment. A test that times something across commits (a change reaching another instance
/// "within a second") holds this lock while it measures, and copies wait for it, and it for
/// them: the measurement sees the machine, not a neighbour's copy.
public enum WriteHeavyGate {
    public static let shared = AsyncLock()
}
