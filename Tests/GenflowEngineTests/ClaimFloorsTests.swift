import Foundation
import GenflowCore
import GenflowPostgres
@testable import GenflowQueue
import GenflowTestHarness
import Testing

@Suite("Claims walk on from where the last one stopped", .serialized, .timeLimit(.minutes(2)))
struct ClaimFloorsTests {
    /// `count` queued jobs of one priority, one a millisecond, the first `minutesAgo` minutes ago,
    /// in place of every job before; their ids in `run_at` order.
    private func queue(_ harness: Harness, _ count: Int, priority: Int = 0, minutesAgo: Int = 10) async throws -> [String] {
        let version = try await harness.submit("tiny").pipelineVersion
        _ = try await harness.query("DELETE FROM genflow.jobs")
        return try await harness.query("""
            INSERT INTO genflow.jobs (id, pipeline, pipeline_version, user_id, input, status, priority, run_at)
            SELECT gen_random_uuid(), 'tiny', $1, 'floors', '{}', 'queued', $2, now() - $3 * interval '1 minute' + n * interval '1 millisecond'
            FROM generate_series(1, $4) AS n
            RETURNING id::text AS id, run_at
            """, [version, priority, minutesAgo, count]).sorted { ($0["run_at"] ?? "") < ($1["run_at"] ?? "") }.map { $0["id"] ?? "" }
    }

    /// Puts claimed jobs back in the queue, keeping their `run_at` (below any floor past them).
    private func release(_ harness: Harness, _ ids: [String]) async throws {
        _ = try await harness.query("UPDATE genflow.jobs SET status = 'queued', lease_owner = NULL WHERE id = ANY($1::uuid[])", [PostgresArray(ids)])
    }

    private func claim(_ harness: Harness, _ limit: Int, _ floors: inout ClaimFloors, at now: ContinuousClock.Instant) async throws -> [String] {
        let from = floors.floors(at: now)
        let claimed = try await harness.store.write { try $0.claim(owner: "d", limit: limit, lease: .seconds(30), runningPerUser: nil, from: from) }
        floors.claimed(claimed, from: from, sent: now)
        return claimed.map(\.job.id)
    }

    @Test("a claim from the floors takes what one from the start would; a job released below a floor waits for the next walk from the start")
    func order() async throws {
        let harness = try await Harness.make(pipelines: ["tiny": tiny])
        let ids = try await queue(harness, 30)
        var floors = ClaimFloors()
        let start = ContinuousClock.now
        #expect(floors.floors(at: start).isEmpty, "no floor yet: from the start")
        #expect(try await claim(harness, 10, &floors, at: start) == Array(ids[0..<10]))
        #expect(floors.floors(at: start).map(\.id) == [ids[9]])
        #expect(try await claim(harness, 5, &floors, at: start + .milliseconds(1)) == Array(ids[10..<15]))

        // Job 3 goes back to the queue with its old `run_at`, below the floor (job 14).
        try await release(harness, [ids[3]])
        #expect(try await claim(harness, 5, &floors, at: start + .milliseconds(2)) == Array(ids[15..<20]))
        // The next walk from the start finds it first.
        let due = start + ClaimFloors.fromStartEvery
        #expect(floors.floors(at: due).isEmpty)
        #expect(try await claim(harness, 3, &floors, at: due) == [ids[3], ids[20], ids[21]])
        #expect(floors.floors(at: due).map(\.id) == [ids[21]])
    }

    @Test("a walk from the floors that finds no job walks again from the start in the same claim; priorities keep floors of their own")
    func emptyFromFloors() async throws {
        let harness = try await Harness.make(pipelines: ["tiny": tiny])
        let ids = try await queue(harness, 6)
        var floors = ClaimFloors()
        let start = ContinuousClock.now
        #expect(try await claim(harness, 6, &floors, at: start) == ids)
        try await release(harness, [ids[1], ids[4]])
        #expect(!floors.floors(at: start + .milliseconds(1)).isEmpty, "a walk from the floors")
        #expect(try await claim(harness, 10, &floors, at: start + .milliseconds(1)) == [ids[1], ids[4]])

        // A second priority: its own floor, the first one's kept.
        let high = try await queue(harness, 3, priority: 5, minutesAgo: 1)
        let claimed = try await claim(harness, 10, &floors, at: start + .milliseconds(2))
        #expect(Set(claimed) == Set(high) && claimed.count == 3, "the submitted job too: \(claimed)")
        #expect(Set(floors.floors(at: start + .milliseconds(3)).map(\.priority)) == [0, 5])
    }

    @Test("after most jobs of a burst were claimed, a claim from the floor reads a fraction of the index pages one from the start reads")
    func fewerPages() async throws {
        let harness = try await Harness.make(pipelines: ["tiny": tiny])
        let ids = try await queue(harness, 20_000)
        var floors = ClaimFloors()
        let start = ContinuousClock.now
        for round in 0..<60 { _ = try await claim(harness, 256, &floors, at: start + .microseconds(round)) }
        let from = floors.floors(at: start + .milliseconds(1))
        #expect(from.map(\.id) == [ids[60 * 256 - 1]])
        /// Index pages of `jobs_ready` a claim of 16 reads (EXPLAIN ANALYZE, rolled back).
        func pages(_ floors: [ClaimFloors.Floor]) async throws -> Int {
            try await harness.store.pool.withConnection { connection in
                try connection.execute("BEGIN")
                defer { _ = try? connection.execute("ROLLBACK") }
                let plan = try connection.query("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + StoreSession.claimStatement(capped: false), [
                    "d", 16, 30_000, PostgresArray(floors.map(\.priority)), PostgresArray(floors.map(\.runAt)), PostgresArray(floors.map(\.id)),
                ]).rows.first?["QUERY PLAN"] ?? ""
                return Self.blocks(ofIndex: "jobs_ready", in: try JSON(parsing: plan))
            }
        }
        let fromStart = try await pages([])
        let fromFloor = try await pages(from)
        #expect(fromFloor * 10 < fromStart, "from the floor \(fromFloor) pages, from the start \(fromStart)")
    }

    /// Shared and local blocks read by the scans of `index` in an EXPLAIN (FORMAT JSON) plan.
    private static func blocks(ofIndex index: String, in plan: JSON) -> Int {
        var total = 0
        func visit(_ node: JSON) {
            if node["Index Name"]?.stringValue == index {
                total += (node["Shared Hit Blocks"]?.intValue ?? 0) + (node["Shared Read Blocks"]?.intValue ?? 0)
            }
            for child in node["Plans"]?.arrayValue ?? [] { visit(child) }
        }
        for entry in plan.arrayValue ?? [] { if let root = entry["Plan"] { visit(root) } }
        return total
    }
}
