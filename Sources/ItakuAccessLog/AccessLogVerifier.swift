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
        var latest = try await database.withTransaction { try await AccessLogStore.latestCheckpoints(on: $0) }
        // An anchor newer than the database's newest checkpoint takes its place: the database
        // may have lost the checkpoints after it (and the entries they named).
        for anchor in anchors where anchor.isValid(publicKey: publicKey) && anchor.seq > latest[anchor.stream]?.seq ?? 0 {
            latest[anchor.stream] = anchor
        }
        // Every entry has a stream (the column is NOT NULL): one without was written around
        // the constraint.
        let unchained = try await database.withTransaction { connection in
            try await connection.query("SELECT entry_id FROM itaku.access_log WHERE stream IS NULL ORDER BY entry_id LIMIT \(Self.maxProblems)")
        }.map { Finding(problem: "unchained_entry", seq: nil, entryID: try $0.decode(0, as: UUID.self)) }
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
                // The position first: the walk moves past every row it read, whatever the rest holds.
                let position = (stream: try row.decode(26, as: String.self), seq: try row.decode(27, as: Int64.self), id: try row.decode(0, as: UUID.self))
                after = position
                total += 1
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
        for name in Set(streams.keys).union(latest.keys).sorted() {
            var state = streams[name] ?? StreamState(latest: latest[name])
            if let checkpoint = latest[name] { state.check(checkpoint, publicKey: publicKey, complete: complete) }
            if complete { state.finish() }
            reports.append(StreamReport(
                stream: name, entries: state.count, checkpoints: latest[name] == nil ? 0 : 1, verifiedThrough: state.covered,
                firstProblem: state.problems.first, problems: state.problems
            ))
        }
        return Report(
            clean: complete && reports.allSatisfy { $0.problems.isEmpty } && unchained.isEmpty, complete: complete, entries: total,
            checkpoints: latest.count, streams: reports, unchained: unchained
        )
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

        mutating func report(_ problem: String, seq: Int64?, entryID: UUID?) {
            guard problems.count < AccessLogVerifier.maxProblems else { return }
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
                report("checkpoint_signature_invalid", seq: checkpoint.seq, entryID: nil)
            } else if let hash {
                if hash == checkpoint.hash {
                    covered = max(covered, checkpoint.seq)
                } else {
                    report("checkpoint_mismatch", seq: checkpoint.seq, entryID: nil)
                }
            } else if complete {
                report("truncated", seq: checkpoint.seq, entryID: nil)
            }
        }

        /// At the end of the stream: entries past the last seal or checkpoint are unverified.
        mutating func finish() {
            if let last, last.seq > covered {
                report("unsealed_tail", seq: covered + 1, entryID: last.id)
            }
        }
    }
}
