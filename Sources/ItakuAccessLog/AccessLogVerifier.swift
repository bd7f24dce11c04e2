import Crypto
import Foundation
import ItakuPostgres

/// Checks every chain and every checkpoint of the access log with the checkpoint public key
/// alone, and names the first bad entry of each stream.
public struct AccessLogVerifier: Sendable {
    public struct Finding: Sendable, Equatable, Encodable {
        /// `entry_altered` (content differs from its hash), `chain_broken` (an entry's previous
        /// hash is not its predecessor's: inserted or reordered), `entries_missing` (a sequence
        /// gap: deleted), `sequence_duplicated`, `truncated` (a checkpoint names entries that are
        /// gone), `checkpoint_mismatch` (the chain was recomputed), `checkpoint_signature_invalid`,
        /// `unchained_entry` (an entry outside every chain).
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
        public var firstProblem: Finding?

        enum CodingKeys: String, CodingKey {
            case stream, entries, checkpoints
            case firstProblem = "first_problem"
        }
    }

    public struct Report: Sendable, Encodable {
        public var clean: Bool
        public var entries: Int
        public var checkpoints: Int
        public var streams: [StreamReport]
        /// Entries that belong to no chain (only tampering creates these).
        public var unchained: [Finding]
    }

    let publicKey: Curve25519.Signing.PublicKey
    var pageSize = 5_000

    public init(publicKey: Curve25519.Signing.PublicKey) {
        self.publicKey = publicKey
    }

    public func verify(_ database: PostgresClient) async throws -> Report {
        let checkpoints = try await database.withTransaction { try await AccessLogStore.checkpoints(on: $0) }
        let byStream = Dictionary(grouping: checkpoints, by: \.stream)
        var streams: [String: StreamState] = [:]
        var total = 0
        var unchained: [Finding] = []
        var after: (stream: String, seq: Int64, id: UUID)? = nil
        // Keyset pages in (stream, seq) order: constant memory however long the log.
        while true {
            let cursor = after
            let rows = try await database.withTransaction { connection in
                try await connection.query("SELECT set_config('itaku.all_tenants', 'on', true)")
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
                let entry = try AccessLogStore.entry(row)
                guard let link = entry.chain else { continue }
                total += 1
                streams[link.stream, default: StreamState(wanted: Set((byStream[link.stream] ?? []).map(\.seq)))].check(entry, link)
                after = (link.stream, link.seq, entry.id)
            }
            if rows.count < pageSize { break }
        }
        let loose = try await database.withTransaction { connection in
            try await connection.query("SELECT set_config('itaku.all_tenants', 'on', true)")
            return try await connection.query("SELECT entry_id FROM itaku.access_log WHERE stream IS NULL OR seq IS NULL LIMIT 100")
        }
        for row in loose { unchained.append(Finding(problem: "unchained_entry", seq: nil, entryID: try row.decode(0))) }

        var reports: [StreamReport] = []
        for name in Set(streams.keys).union(byStream.keys).sorted() {
            var state = streams[name] ?? StreamState(wanted: [])
            for checkpoint in byStream[name] ?? [] { state.check(checkpoint, publicKey: publicKey) }
            reports.append(StreamReport(stream: name, entries: state.count, checkpoints: byStream[name]?.count ?? 0, firstProblem: state.problem))
        }
        return Report(
            clean: unchained.isEmpty && reports.allSatisfy { $0.firstProblem == nil }, entries: total,
            checkpoints: checkpoints.count, streams: reports, unchained: unchained
        )
    }

    static func binds(_ stream: String, _ seq: Int64, _ id: UUID) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(stream)
        binds.append(seq)
        binds.append(id)
        return binds
    }

    /// One stream's walk: expected sequence, previous hash, and the hash at each sequence
    /// number (for checkpoints) kept only as far as needed.
    struct StreamState {
        var count = 0
        var expectedSeq: Int64 = 1
        var previous = ChainLink.genesis
        /// Sequence numbers that checkpoints name: only their hashes are kept.
        var wanted: Set<Int64>
        var hashes: [Int64: [UInt8]] = [:]
        var problem: Finding?

        init(wanted: Set<Int64>) {
            self.wanted = wanted
        }

        mutating func check(_ entry: AccessEntry, _ link: ChainLink) {
            count += 1
            if wanted.contains(link.seq) { hashes[link.seq] = link.hash }
            guard problem == nil else { return }
            if link.seq < expectedSeq {
                problem = Finding(problem: "sequence_duplicated", seq: link.seq, entryID: entry.id)
            } else if link.seq > expectedSeq {
                problem = Finding(problem: "entries_missing", seq: expectedSeq, entryID: entry.id)
            } else if AccessEntry.chainHash(previous: link.previousHash, canonical: entry.canonicalBytes(stream: link.stream, seq: link.seq)) != link.hash {
                problem = Finding(problem: "entry_altered", seq: link.seq, entryID: entry.id)
            } else if link.previousHash != previous {
                problem = Finding(problem: "chain_broken", seq: link.seq, entryID: entry.id)
            }
            previous = link.hash
            expectedSeq = link.seq + 1
        }

        mutating func check(_ checkpoint: Checkpoint, publicKey: Curve25519.Signing.PublicKey) {
            guard problem == nil else { return }
            if !checkpoint.isValid(publicKey: publicKey) {
                problem = Finding(problem: "checkpoint_signature_invalid", seq: checkpoint.seq, entryID: nil)
            } else if let hash = hashes[checkpoint.seq] {
                if hash != checkpoint.hash { problem = Finding(problem: "checkpoint_mismatch", seq: checkpoint.seq, entryID: nil) }
            } else {
                problem = Finding(problem: "truncated", seq: checkpoint.seq, entryID: nil)
            }
        }
    }
}
