internal import Foundation

/// A fixed set of PostgreSQL connections, each on a thread of its own, for async code.
///
/// libpq calls block, so they never run on Swift's cooperative pool: `withConnection` hands the
/// work to a pool thread and suspends until it is done. A connection that fails is dropped and
/// reopened for the next piece of work, so the pool survives a database restart.
public final class DatabasePool: @unchecked Sendable {
    // `condition` guards `pending` and `isClosed`.
    private let condition = NSCondition()
    private var pending: [@Sendable (Result<PostgresConnection, PostgresError>) -> Void] = []
    private var pendingStart = 0
    private var isClosed = false
    public let connectionString: String
    private var threads: [Thread] = []

    /// Opens nothing yet: each thread connects on its first piece of work.
    public init(connectionString: String, size: Int) {
        self.connectionString = connectionString
        for index in 0..<max(1, size) {
            let thread = Thread { [unowned self] in self.serve() }
            thread.name = "genflow-db-\(index)"
            threads.append(thread)
            thread.start()
        }
    }

    deinit {
        close()
    }

    /// Stops the threads after the work already queued; later calls fail.
    public func close() {
        condition.lock()
        isClosed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Runs `body` with a connection on a pool thread.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            enqueue { connection in
                switch connection {
                case .success(let connection):
                    do {
                        continuation.resume(returning: try body(connection))
                    } catch {
                        continuation.resume(throwing: error)
                    }
                case .failure(let error):
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Runs `body` in a transaction on a pool thread.
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await withConnection { connection in try connection.transaction(body) }
    }

    private func enqueue(_ work: @escaping @Sendable (Result<PostgresConnection, PostgresError>) -> Void) {
        condition.lock()
        guard !isClosed else {
            condition.unlock()
            work(.failure(PostgresError(message: "the database pool is closed")))
            return
        }
        pending.append(work)
        condition.signal()
        condition.unlock()
    }

    private func next() -> (@Sendable (Result<PostgresConnection, PostgresError>) -> Void)? {
        condition.lock()
        defer { condition.unlock() }
        while pendingStart == pending.count && !isClosed { condition.wait() }
        guard pendingStart < pending.count else { return nil }
        let work = pending[pendingStart]
        pendingStart += 1
        if pendingStart > 1_024 && pendingStart * 2 > pending.count {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
        return work
    }

    private func serve() {
        var connection: PostgresConnection?
        while let work = next() {
            if connection == nil {
                do {
                    connection = try PostgresConnection(connectionString)
                } catch {
                    work(.failure(error))
                    continue
                }
            }
            work(.success(connection!))
            if connection?.isHealthy == false { connection = nil }
        }
    }
}
