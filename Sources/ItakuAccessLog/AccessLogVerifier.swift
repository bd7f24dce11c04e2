import Crypto
import Foundation
import ItakuPostgres

/// Checks every chain, seal and checkpoint of the access log with the checkpoint public key
/// alone, and names every problem of each stream (up to `maxProblems` a stream). Memory holds
/// one page of entries and one state per stream, whatever the log's length.
///
/// An entry is verified when its chain leads to a valid seal or checkpoint: a stream whose
/// newest entries are covered by neither (`unsealed_tail`) was extended by someone who does not
/// hold the key (the gateway seals the last entry of every write in the same transaction).
///
/// Everything in the database can be deleted by its owner, checkpoints included: a stream cut
/// back to an earlier seal, or removed whole, leaves nothing behind to find. `anchors`
/// (checkpoints kept outside the database: the service logs each one, `Checkpoint.logMetadata`)
/// close that gap: each stream's newest valid checkpoint, in the database or among the anchors,
/// must still name its entry.
public struct AccessLogVerifier: Sendable {
    public struct Finding: Sendable, Equatable, Encodable {
        /// `entry_altered` (content differs from its hash), `chain_broken` (an entry's previous
        /// hash is not its predecessor's: inserted or reordered), `entries_missing` (a sequence
        /// gap: deleted), `sequence_duplicated`, `truncated` (a checkpoint names entries that are
        /// gone), `checkpoint_mismatch` (the chain was recomputed), `checkpoint_signature_invalid`,
        /// `seal_invalid` (a seal that the key did not make), `unsealed_tail` (entries after the
        /// last seal or checkpoint: unverified), `unchained_entry` (an entry outside every chain).
        public var problem: String
        public var seq: Int64?
        public var entryID: UUID?

        enum CodingKeys: String, CodingKey {
            case problem, seq
            case entryID = "entry_id"
        }
    }

    public struct StreamReport: Sendable, Encodable {
        public var stream: String
        public var entries: Int
        public var checkpoints: Int
        /// The highest sequence number a valid seal or checkpoint covers (0: none).
        public var verifiedThrough: Int64
        public var firstProblem: Finding?
        public var problems: [Finding]

        enum CodingKeys: String, CodingKey {
            case stream, entries, checkpoints, problems
            case verifiedThrough = "verified_through"
            case firstProblem = "first_problem"
        }
    }

    public struct Report: Sendable, Encodable {
        /// No problem found, and every stream read to its end.
        public var clean: Bool
        /// False when the time bound ended the walk first: what was read is reported.
        public var complete: Bool
        public var entries: Int
        public var checkpoints: Int
        public var streams: [StreamReport]
        /// Entries that belong to no chain (only tampering creates these).
        public var unchained: [Finding]
        /// The log's own safeguards found weakened in the schema (a chain column that may be
        /// NULL, the sequence check not validated, a trigger not `ENABLE ALWAYS`): only the
        /// owner can do that, and entries written meanwhile may be outside every chain.
        public var schema: [String]
    }

    public static let maxProblems = 100

    let publicKey: Curve25519.Signing.PublicKey
    var pageSize = 5_000
    /// How long a verification may take before it reports what it has (`complete: false`).
    public var timeLimit: Duration?

    public init(publicKey: Curve25519.Signing.PublicKey, timeLimit: Duration? = nil) {
        self.publicKey = publicKey
        self.timeLimit = timeLimit
    }

    /// Verifies the whole log, read through `database`: a client of the reader role
    /// (`itaku_reader`), the only role that sees every tenant's entries. `anchors`: checkpoints
    /// kept outside the database; those whose signature does not verify are not used.
    public func verify(_ database: PostgresClient, anchors: [Checkpoint] = []) async throws -> Report {
        let deadline = timeLimit.map { ContinuousClock.now + $0 }
        // Each stream's newest checkpoint: it covers every entry up to it (a recomputed chain
        // no longer ends in its hash; a cut below it leaves it naming entries that are gone).
        // Seals cover the rest. One row per stream, so memory does not grow with the log's age.
        // Only a checkpoint the key signed counts: anyone who can write the table can add one
        // with any sequence number, which would otherwise stand in for the real newest one.
        var latest: [String: Checkpoint] = [:]
        var forged: [String: [Finding]] = [:]
        for (stream, newest) in try await database.withTransaction({ try await AccessLogStore.latestCheckpoints(on: $0) }) {
            var candidate: Checkpoint? = newest
            while let checkpoint = candidate, !checkpoint.isValid(publicKey: publicKey) {
                forged[stream, default: []].append(Finding(problem: "checkpoint_signature_invalid", seq: checkpoint.seq, entryID: nil))
                guard forged[stream, default: []].count < Self.maxProblems else { candidate = nil; break }
                candidate = try await database.withTransaction { connection in
                    try await AccessLogStore.checkpoint(before: checkpoint, on: connection)
                }
            }
            latest[stream] = candidate
        }
        // An anchor newer than the database's newest checkpoint takes its place: the database
        // may have lost the checkpoints after it (and the entries they named).
        for anchor in anchors where anchor.isValid(publicKey: publicKey) && anchor.seq > latest[anchor.stream]?.seq ?? 0 {
            latest[anchor.stream] = anchor
        }
        // Every entry has a stream, a sequence number from 1 and both hashes (the columns are
        // NOT NULL, the number checked): one without was written around the constraints, and
        // the walk below, in (stream, seq) order, would never reach it.
        let unchained = try await database.withTransaction { connection in
            try await connection.query(
                """
                SELECT entry_id FROM itaku.access_log
                WHERE stream IS NULL OR seq IS NULL OR seq < 1 OR prev_hash IS NULL OR hash IS NULL
                ORDER BY entry_id LIMIT \(Self.maxProblems)
                """
            )
        }.map { Finding(problem: "unchained_entry", seq: nil, entryID: try $0.decode(0, as: UUID.self)) }
        let schema = try await database.withTransaction { try await Self.weakenedSafeguards(on: $0) }
        var streams: [String: StreamState] = [:]
        var total = 0
        var complete = true
        var after: (stream: String, seq: Int64, id: UUID)? = nil
        // Keyset pages in (stream, seq, id) order: constant memory however long the log, and a
        // cursor taken from every row read, so each page starts past the last.
        while true {
            if let deadline, ContinuousClock.now >= deadline {
                complete = false
                break
            }
            let cursor = after
            let rows = try await database.withTransaction { connection in
                return try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT \(AccessLogStore.columns) FROM itaku.access_log
                            WHERE stream IS NOT NULL AND (stream, seq, entry_id) > ($1, $2, $3)
                            ORDER BY stream, seq, entry_id LIMIT \(pageSize)
                            """,
                        binds: Self.binds(cursor?.stream ?? "", cursor?.seq ?? Int64.min, cursor?.id ?? UUID(uuid: (0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0)))
                    )
                )
            }
            for row in rows {
                // The position first: the walk moves past every row it read, whatever the rest
                // holds. A row without a sequence number (reported as unchained) sorts after its
                // stream's numbered rows: the walk goes on past the whole stream.
                let seq = try row.decode(27, as: Int64?.self)
                let position = (stream: try row.decode(26, as: String.self), seq: seq ?? Int64.max, id: try row.decode(0, as: UUID.self))
                after = position
                total += 1
                guard seq != nil else { continue }
                var state = streams[position.stream] ?? StreamState(latest: latest[position.stream])
                if let entry = try? AccessLogStore.entry(row, strict: true), let link = entry.chain {
                    state.check(entry, link, publicKey: publicKey)
                } else {
                    state.unreadable(seq: position.seq, entryID: position.id)
                }
                streams[position.stream] = state
            }
            if rows.count < pageSize { break }
        }

        var reports: [StreamReport] = []
        for name in Set(streams.keys).union(latest.keys).union(forged.keys).sorted() {
            var state = streams[name] ?? StreamState(latest: latest[name])
            for finding in forged[name] ?? [] { state.report(finding.problem, seq: finding.seq, entryID: nil, always: true) }
            if let checkpoint = latest[name] { state.check(checkpoint, publicKey: publicKey, complete: complete) }
            if complete { state.finish() }
            reports.append(StreamReport(
                stream: name, entries: state.count, checkpoints: latest[name] == nil ? 0 : 1, verifiedThrough: state.covered,
                firstProblem: state.problems.first, problems: state.problems
            ))
        }
        return Report(
            clean: complete && reports.allSatisfy { $0.problems.isEmpty } && unchained.isEmpty && schema.isEmpty, complete: complete,
            entries: total, checkpoints: latest.count, streams: reports, unchained: unchained, schema: schema
        )
    }

    /// What the migrations made of the log's safeguards and is no longer so: the chain columns
    /// NOT NULL, the sequence check validated, and the log's triggers `ENABLE ALWAYS` on the
    /// table and (the row triggers) on each partition.
    static func weakenedSafeguards(on connection: PostgresConnection) async throws -> [String] {
        var found: [String] = []
        for row in try await connection.query(
            """
            SELECT attname FROM pg_attribute
            WHERE attrelid = 'itaku.access_log'::regclass AND attname IN ('stream', 'seq', 'prev_hash', 'hash') AND NOT attnotnull
            ORDER BY attname
            """
        ) {
            found.append("access_log.\(try row.decode(0, as: String.self)) may be NULL")
        }
        let check = try await connection.query(
            "SELECT convalidated FROM pg_constraint WHERE conrelid = 'itaku.access_log'::regclass AND conname = 'access_log_seq_positive'"
        )
        if try check.first?.decode(0, as: Bool.self) != true { found.append("access_log_seq_positive is missing or not validated") }
        for row in try await connection.query(
            """
            WITH tables AS (
                SELECT 'itaku.access_log'::regclass AS oid, true AS parent
                UNION ALL SELECT inhrelid::regclass, false FROM pg_inherits WHERE inhparent = 'itaku.access_log'::regclass
            ), wanted AS (
                SELECT t.oid, w.name FROM tables t
                CROSS JOIN (VALUES ('access_log_append_only', false), ('access_log_positions', true), ('access_log_no_truncate', true)) AS w(name, parent_only)
                WHERE t.parent OR NOT w.parent_only
            )
            SELECT w.oid::text || ': trigger ' || w.name || CASE WHEN tg.oid IS NULL THEN ' is missing' ELSE ' is not ENABLE ALWAYS' END
            FROM wanted w LEFT JOIN pg_trigger tg ON tg.tgrelid = w.oid AND tg.tgname = w.name
            WHERE tg.oid IS NULL OR tg.tgenabled <> 'A'
            ORDER BY 1
            """
        ) {
            found.append(try row.decode(0, as: String.self))
        }
        return found
    }

    static func binds(_ stream: String, _ seq: Int64, _ id: UUID) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(stream)
        binds.append(seq)
        binds.append(id)
        return binds
    }

    /// One stream's walk: expected sequence, previous hash, coverage by seals and checkpoints,
    /// and the hash at each sequence number that a checkpoint names.
    struct StreamState {
        var count = 0
        var expectedSeq: Int64 = 1
        var previous = ChainLink.genesis
        var last: (seq: Int64, id: UUID)?
        /// The highest sequence number covered by a valid seal or matching checkpoint. (Each
        /// stream's head when migration 0008 introduced seals is in a table without a
        /// signature, so it covers nothing: anyone with the database could raise it.)
        var covered: Int64 = 0
        /// The stream's newest checkpoint: only the hash at its sequence number is kept.
        var wanted: Int64?
        var hash: [UInt8]?
        var problems: [Finding] = []

        init(latest: Checkpoint?) {
            self.wanted = latest?.seq
        }

        mutating func unreadable(seq: Int64, entryID: UUID) {
            count += 1
            report("entry_altered", seq: seq, entryID: entryID)
        }

        /// Records a finding, up to `maxProblems` a stream; `always`: past that too (a stream's
        /// few end-of-walk findings, which many findings earlier in it must not push out).
        mutating func report(_ problem: String, seq: Int64?, entryID: UUID?, always: Bool = false) {
            guard always || problems.count < AccessLogVerifier.maxProblems else { return }
            problems.append(Finding(problem: problem, seq: seq, entryID: entryID))
        }

        mutating func check(_ entry: AccessEntry, _ link: ChainLink, publicKey: Curve25519.Signing.PublicKey) {
            count += 1
            if wanted == link.seq { hash = link.hash }
            let intact = AccessEntry.chainHash(
                previous: link.previousHash, canonical: entry.canonicalBytes(stream: link.stream, seq: link.seq)
            ) == link.hash
            if link.seq < expectedSeq {
                report("sequence_duplicated", seq: link.seq, entryID: entry.id)
            } else if link.seq > expectedSeq {
                report("entries_missing", seq: expectedSeq, entryID: entry.id)
            }
            if !intact {
                report("entry_altered", seq: link.seq, entryID: entry.id)
            } else if link.seq >= expectedSeq && link.previousHash != previous {
                report("chain_broken", seq: link.seq, entryID: entry.id)
            }
            if link.seal != nil {
                if !link.isSealValid(publicKey: publicKey) {
                    report("seal_invalid", seq: link.seq, entryID: entry.id)
                } else if intact {
                    covered = max(covered, link.seq)
                }
            }
            // A duplicate does not move the walk back: what follows is compared with the
            // highest entry read so far.
            if link.seq >= expectedSeq {
                previous = link.hash
                expectedSeq = link.seq &+ 1
                last = (link.seq, entry.id)
            }
        }

        mutating func check(_ checkpoint: Checkpoint, publicKey: Curve25519.Signing.PublicKey, complete: Bool) {
            if !checkpoint.isValid(publicKey: publicKey) {
                report("checkpoint_signature_invalid", seq: checkpoint.seq, entryID: nil, always: true)
            } else if let hash {
                if hash == checkpoint.hash {
                    covered = max(covered, checkpoint.seq)
                } else {
                    report("checkpoint_mismatch", seq: checkpoint.seq, entryID: nil, always: true)
                }
            } else if complete {
                report("truncated", seq: checkpoint.seq, entryID: nil, always: true)
            }
        }

        /// At the end of the stream: entries past the last seal or checkpoint are unverified.
        mutating func finish() {
            if let last, last.seq > covered {
                report("unsealed_tail", seq: covered + 1, entryID: last.id, always: true)
            }
        }
    }
}
