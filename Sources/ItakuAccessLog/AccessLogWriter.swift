import Crypto
import Foundation
import ItakuCore
import ItakuPostgres
import Logging
import ServiceLifecycle
import Synchronization

public enum AccessLogError: Error, Sendable, Equatable {
    /// The queue is full: the caller answers 503 rather than let memory grow without bound.
    case overloaded
    /// The writer is not running (shutting down).
    case unavailable
    /// The entry was not written: the database failed, or refused this entry (alone).
    case writeFailed
    /// The entry holds a value no column can store (text with NUL): refused before writing.
    case unstorable
}

/// Writes access entries with group commit, fail-closed, chained per stream.
///
/// Callers `append` an entry and wait until the batch holding it is durably committed
/// (`synchronous_commit` is on for every pooled connection). Entries that arrive while a batch
/// is being written form the next batch: one multi-row INSERT and one commit for all of them.
/// The last entry of each stream in a batch carries a seal (the checkpoint key's signature of
/// its position and hash), committed with it: every committed entry is covered by a signature.
///
/// If the database refuses a batch, the batch is split in halves and written again, until the
/// entry it refuses is alone: that one caller gets `writeFailed` (503, no data), the others are
/// written. If the connection fails, the outcome is unknown: every caller of the batch gets the
/// error, and later entries start fresh streams. A caller whose client disconnects still waits:
/// the write itself belongs to the writer's task and is never cancelled half-way.
///
/// Streams are per process and tenant (`instance/boot/tenant`), so instances never contend for
/// a chain head; checkpoints sign every stream's head every few seconds and at shutdown. Heads of
/// abandoned streams are dropped once checkpointed, so the map holds a few heads per tenant (one
/// for group commit, one per transactional lane it used).
public final class AccessLogWriter: Service, Sendable {
    public struct Configuration: Sendable {
        public var maxBatch = 500
        public var maxQueue = 20_000
        public var checkpointInterval: Duration = .seconds(5)
        public init() {}
    }

    struct Pending {
        var entry: AccessEntry
        var continuation: CheckedContinuation<AccessEntry, any Error>
    }

    struct Head: Sendable {
        var seq: Int64
        var hash: [UInt8]
        var tenantID: UUID?
    }

    struct State {
        var queue: [Pending] = []
        /// Taking entries; false once shutdown began.
        var running = true
        var heads: [String: Head] = [:]
        var checkpointed: [String: Int64] = [:]
        /// Replaced after a write whose outcome is unknown (the commit may have landed even though
        /// its reply was lost) or whose positions were taken: later entries start fresh streams
        /// instead of reusing numbers. Random, so nobody can take a future stream's positions.
        var generation = ""
    }

    let database: PostgresClient
    let keyring: Keyring
    let logger: Logger
    let configuration: Configuration
    /// `instance.id` and a per-process boot id: this process's streams.
    public let streamPrefix: String
    private let state = Mutex(State())
    private let wakeUp: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    /// The transactional streams' lanes (see `transaction`), taken in turn.
    private let lanes = (0..<8).map { _ in AsyncLock() }
    private let nextLane = Atomic<UInt>(0)

    public init(database: PostgresClient, keyring: Keyring, instanceID: String, logger: Logger, configuration: Configuration = .init()) {
        self.database = database
        self.keyring = keyring
        self.logger = logger
        self.configuration = configuration
        self.streamPrefix = "\(instanceID)/\(UUID().uuidString.prefix(8).lowercased())"
        (wakeUp, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: Appending

    /// Appends `entry` and returns it, chained, once durably committed.
    @discardableResult
    public func append(_ entry: AccessEntry) async throws -> AccessEntry {
        var entry = entry
        entry.occurredAt = Date(timeIntervalSince1970: Double(AccessEntry.microseconds(entry.occurredAt)) / 1_000_000)
        guard AccessLogStore.isStorable(entry) else { throw AccessLogError.unstorable }
        let prepared = entry
        return try await withCheckedThrowingContinuation { continuation in
            let error: AccessLogError? = state.withLock { state in
                guard state.running else { return .unavailable }
                guard state.queue.count < configuration.maxQueue else { return .overloaded }
                state.queue.append(Pending(entry: prepared, continuation: continuation))
                return nil
            }
            if let error { continuation.resume(throwing: error) } else { wake.yield() }
        }
    }

    /// Runs `body` in a transaction that this function opens and commits, together with the
    /// access entries `body` returns: the change and its evidence are durable together, or
    /// neither is (any error rolls back). With `tenant`, the transaction acts for that tenant
    /// (row-level security) from its start. This is the one place that opens and commits a
    /// transaction carrying access entries.
    ///
    /// The entries chain in one of the tenant's transactional streams (`…/tx0` … `…/tx7`): a
    /// transaction takes a free lane for its insert and commit, so up to eight commits of one
    /// tenant are in flight together and PostgreSQL flushes them in one WAL write.
    public func transaction<T: Sendable>(
        on database: PostgresClient, tenant: UUID? = nil,
        _ body: (PostgresConnection) async throws -> (T, [AccessEntry])
    ) async throws -> (T, [AccessEntry]) {
        try await transaction(on: database, tenant: tenant, opening: nil) { connection, _ in
            let (value, entries) = try await body(connection)
            return (value, entries, [])
        }
    }

    /// `transaction`, whose first statement (`opening`, for example a row's lock) goes to
    /// PostgreSQL with BEGIN and the tenant, in one round trip; `body` gets its rows. Besides
    /// its entries, `body` may return statements of its change to run at the end, in the
    /// commit's round trip, before the entries.
    ///
    /// With `lockTimeout`, a lock the transaction cannot take within it fails the statement
    /// (SQLSTATE 55P03) instead of waiting up to the statement timeout. `preparing` runs before
    /// `opening`, in the same round trip (locks whose holder's change `opening` must see).
    public func transaction<T: Sendable>(
        on database: PostgresClient, tenant: UUID? = nil, lockTimeout: Duration? = nil, preparing: [PostgresQuery] = [],
        opening: PostgresQuery?,
        _ body: (PostgresConnection, PostgresRows?) async throws -> (T, [AccessEntry], [PostgresQuery])
    ) async throws -> (T, [AccessEntry]) {
        try await database.withConnection { connection in
            var first: [PostgresQuery] = []
            if let lockTimeout {
                let milliseconds = max(1, lockTimeout.components.seconds * 1000 + lockTimeout.components.attoseconds / 1_000_000_000_000_000)
                first.append(PostgresQuery(unsafeSQL: "SET LOCAL lock_timeout TO \(milliseconds)"))
            }
            if let tenant { first.append(.prepared("SELECT set_config('itaku.tenant_id', \(tenant.uppercasedString), true)")) }
            first += preparing
            if let opening { first.append(opening) }
            do {
                // A failed opening statement (a lock timeout, say) leaves the transaction for
                // the ROLLBACK below, and the connection reusable.
                let opened = try await connection.begin(then: first)
                let (value, entries, last) = try await body(connection, opening == nil ? nil : opened.last)
                let written = try await commit(entries, after: last, on: connection)
                return (value, written)
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
    }

    /// Chains and inserts `entries` in the open transaction and commits it, holding one lane.
    ///
    /// The entries take the time of their commit, not of their making: a transaction that ran
    /// for minutes (a contract's end) would otherwise become visible with entries dated before
    /// what a reader polling the log by time has already read past. Their order stays their
    /// chain's (and their ids', which are time-ordered from their making).
    private func commit(_ entries: [AccessEntry], after statements: [PostgresQuery], on connection: PostgresConnection) async throws -> [AccessEntry] {
        guard entries.allSatisfy(AccessLogStore.isStorable) else { throw AccessLogError.unstorable }
        let lane = Int(nextLane.wrappingAdd(1, ordering: .relaxed).oldValue % UInt(lanes.count))
        return try await lanes[lane].withLock {
            var heads = state.withLock { $0.heads }
            var chained: [AccessEntry] = []
            let committing = Date(timeIntervalSince1970: Double(AccessEntry.microseconds(Date())) / 1_000_000)
            for var entry in entries {
                entry.occurredAt = committing
                let stream = self.stream(for: entry.tenantID) + "/tx\(lane)"
                Self.link(&entry, stream: stream, after: heads[stream] ?? Head(seq: 0, hash: ChainLink.genesis, tenantID: entry.tenantID))
                heads[stream] = Head(seq: entry.chain!.seq, hash: entry.chain!.hash, tenantID: entry.tenantID)
                chained.append(entry)
            }
            seal(&chained)
            do {
                // The entries, then the commit, in one round trip. Durable whatever the body ran:
                // a statement may have lowered synchronous_commit for the transaction (the usage
                // counters do).
                let insert = AccessLogStore.insertQueries(chained)
                try await connection.pipeline(statements + insert + ["SET LOCAL synchronous_commit TO on", "COMMIT"])
            } catch let error as PostgresError where error.sqlState == PostgresError.SQLState.uniqueViolation {
                // A position taken by someone else: this change fails; later ones use new streams.
                logger.error("access-log position already taken; continuing in new streams", metadata: ["itaku.error": "\(error)"])
                abandonStreams()
                throw AccessLogError.writeFailed
            } catch let error as PostgresError where error.isRefusal {
                // Refused (the change sent with the entries, or an entry) and rolled back:
                // nothing was written, the heads stand.
                logger.error("a transaction's change or its access entries were refused", metadata: ["itaku.error": "\(error)"])
                throw AccessLogError.writeFailed
            } catch {
                // The commit's outcome is unknown: continue in fresh streams.
                abandonStreams()
                throw error
            }
            state.withLock { state in
                for entry in chained { state.heads[entry.chain!.stream] = Head(seq: entry.chain!.seq, hash: entry.chain!.hash, tenantID: entry.tenantID) }
            }
            return chained
        }
    }

    func stream(for tenantID: UUID?) -> String {
        let generation = state.withLock { $0.generation }
        let prefix = generation.isEmpty ? streamPrefix : "\(streamPrefix).\(generation)"
        return "\(prefix)/\(tenantID?.lowercasedString ?? "global")"
    }

    /// After a write whose outcome is unknown: continue in new streams (the old heads stay as
    /// checkpointed, and are dropped from memory once they are).
    private func abandonStreams() {
        let fresh = UUID().uuidString.prefix(8).lowercased()
        state.withLock { $0.generation = fresh }
    }

    /// Seals the last entry of each stream in `entries` (they are in stream order per stream).
    func seal(_ entries: inout [AccessEntry]) {
        var last: [String: Int] = [:]
        for (index, entry) in entries.enumerated() { if let stream = entry.chain?.stream { last[stream] = index } }
        for index in last.values {
            guard let message = entries[index].chain?.sealMessage,
                let signature = try? keyring.checkpointSigningKey.signature(for: message)
            else { continue }
            entries[index].chain?.seal = Array(signature)
        }
    }

    static func link(_ entry: inout AccessEntry, stream: String, after head: Head) {
        let seq = head.seq + 1
        let hash = AccessEntry.chainHash(previous: head.hash, canonical: entry.canonicalBytes(stream: stream, seq: seq))
        entry.chain = ChainLink(stream: stream, seq: seq, previousHash: head.hash, hash: hash)
    }

    // MARK: Service

    public func run() async throws {
        await withTaskGroup(of: Void.self) { writing in
            writing.addTask { await self.writeLoop() }
            await withTaskGroup(of: Void.self) { timer in
                timer.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: self.configuration.checkpointInterval)
                        await self.checkpoint()
                    }
                }
                try? await gracefulShutdown()
                // Stop taking entries; the write loop writes what is queued and ends (a write is
                // never cancelled half-way: its callers would get 503 for entries that may
                // have committed), then the final heads are signed.
                state.withLock { $0.running = false }
                wake.finish()
                timer.cancelAll()
            }
        }
        await drain()
        await checkpoint()
    }

    private func writeLoop() async {
        for await _ in wakeUp {
            await drain()
        }
    }

    /// Writes what is queued, batch after batch, in a loop on the database's thread pool: the
    /// next batch goes out as soon as the last one committed, with no hop to a task and back.
    /// The loop ends when the queue is empty; it leases anew if its connection failed, or gives
    /// it back after a batch while another task waits for one.
    private func drain() async {
        while state.withLock({ !$0.queue.isEmpty }) {
            do {
                try await database.withSession { session in
                    while let batch = self.nextBatch() {
                        self.write(batch, on: session)
                        guard session.isUsable, !session.isWanted else { return }
                    }
                }
            } catch {
                // No connection (the database is down) or the pool is closing: the next batch
                // fails, so that its callers answer 503 and the queue does not grow while it lasts.
                guard let batch = nextBatch() else { return }
                abandonStreams()
                logger.error("access log write failed; the batch's requests answer 503", metadata: [
                    "itaku.error": "\(error)", "itaku.access_log.batch": "\(batch.count)",
                ])
                for pending in batch { pending.continuation.resume(throwing: AccessLogError.writeFailed) }
            }
        }
    }

    /// The next batch of the queue, taken from it; nil when it is empty.
    private func nextBatch() -> [Pending]? {
        state.withLock { state in
            let count = min(state.queue.count, configuration.maxBatch)
            guard count > 0 else { return nil }
            defer { state.queue.removeFirst(count) }
            return Array(state.queue.prefix(count))
        }
    }

    /// Chains, seals and inserts `batch` on `session`, and answers its callers.
    private func write(_ batch: [Pending], on session: PostgresSession, retried: Bool = false) {
        // A retry (below) after the connection failed: nothing of this batch was sent, so it
        // goes back to the front of the queue for the next connection.
        guard session.isUsable else {
            state.withLock { $0.queue.insert(contentsOf: batch, at: 0) }
            return
        }
        var heads = state.withLock { $0.heads }
        var entries: [AccessEntry] = []
        entries.reserveCapacity(batch.count)
        for pending in batch {
            var entry = pending.entry
            let stream = stream(for: entry.tenantID)
            Self.link(&entry, stream: stream, after: heads[stream] ?? Head(seq: 0, hash: ChainLink.genesis, tenantID: entry.tenantID))
            heads[stream] = Head(seq: entry.chain!.seq, hash: entry.chain!.hash, tenantID: entry.tenantID)
            entries.append(entry)
        }
        seal(&entries)
        do {
            // The batch's INSERTs (prepared, one per size in it) are one implicit transaction:
            // durable when they return (synchronous_commit is on), and all or nothing, in one
            // round trip.
            let inserts = AccessLogStore.insertQueries(entries)
            if inserts.count == 1 {
                try session.query(inserts[0])
            } else {
                try session.pipeline(inserts)
            }
            // Only the streams this batch wrote: a transactional commit may have moved others.
            state.withLock { state in
                for entry in entries { state.heads[entry.chain!.stream] = heads[entry.chain!.stream] }
            }
            for (pending, entry) in zip(batch, entries) { pending.continuation.resume(returning: entry) }
        } catch let error as PostgresError where error.sqlState == PostgresError.SQLState.uniqueViolation && !retried {
            // A position this process meant to take is taken: something else wrote into its
            // streams (only tampering does). Move on to fresh streams and write the batch there,
            // so the log keeps working; the verifier reports the intruder.
            logger.error("access-log position already taken; continuing in new streams", metadata: ["itaku.error": "\(error)"])
            abandonStreams()
            write(batch, on: session, retried: true)
        } catch let error as PostgresError where Self.refusesData(error) {
            // The database refused a value of the statement and rolled it back: nothing of it is
            // written, so the heads stand. Halve until the refused entry is alone; the rest are
            // written. (Errors of the whole batch, a timeout or a full disk, fail it once below.)
            guard batch.count > 1 else {
                logger.error("access log refused an entry; its request answers 503", metadata: ["itaku.error": "\(error)"])
                batch[0].continuation.resume(throwing: AccessLogError.writeFailed)
                return
            }
            write(Array(batch[..<(batch.count / 2)]), on: session, retried: retried)
            write(Array(batch[(batch.count / 2)...]), on: session, retried: retried)
        } catch {
            abandonStreams()
            logger.error("access log write failed; the batch's requests answer 503", metadata: [
                "itaku.error": "\(error)", "itaku.access_log.batch": "\(batch.count)",
            ])
            for pending in batch { pending.continuation.resume(throwing: AccessLogError.writeFailed) }
        }
    }

    /// Errors that one entry's values can cause: data exceptions (22), integrity violations
    /// (23) and errors raised by a trigger (P0001).
    static func refusesData(_ error: PostgresError) -> Bool {
        guard error.kind == .server, let state = error.sqlState else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23") || state == PostgresError.SQLState.raiseException
    }

    // MARK: Checkpoints

    /// Signs the head of every stream that grew since its last checkpoint.
    public func checkpoint() async {
        let (heads, done) = state.withLock { ($0.heads, $0.checkpointed) }
        let now = Date(timeIntervalSince1970: Double(AccessEntry.microseconds(Date())) / 1_000_000)
        var checkpoints: [Checkpoint] = []
        for (stream, head) in heads where head.seq > done[stream] ?? 0 {
            guard let checkpoint = try? Checkpoint.sign(
                stream: stream, tenantID: head.tenantID, seq: head.seq, hash: head.hash, at: now, keyring: keyring
            ) else { continue }
            checkpoints.append(checkpoint)
        }
        guard !checkpoints.isEmpty else { return }
        do {
            let signed = checkpoints
            try await database.withTransaction { try await AccessLogStore.insert(signed, on: $0) }
            // Each committed checkpoint also leaves the database: its log line is an anchor
            // (`Checkpoint.logMetadata`).
            for checkpoint in signed {
                logger.notice("\(Checkpoint.logMessage)", metadata: checkpoint.logMetadata.mapValues { .string($0) })
            }
            state.withLock { state in
                for checkpoint in checkpoints { state.checkpointed[checkpoint.stream] = checkpoint.seq }
                // Abandoned streams take no more entries: once their heads are signed, forget them.
                let current = state.generation.isEmpty ? streamPrefix + "/" : "\(streamPrefix).\(state.generation)/"
                for stream in state.heads.keys where !stream.hasPrefix(current) && state.checkpointed[stream] == state.heads[stream]?.seq {
                    state.heads[stream] = nil
                    state.checkpointed[stream] = nil
                }
            }
        } catch {
            logger.warning("could not write access-log checkpoints; will retry", metadata: ["itaku.error": "\(error)"])
        }
    }
}
