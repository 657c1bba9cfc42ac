internal import CLibPQ
#if canImport(Glibc)
internal import Glibc
#endif

/// A PostgreSQL error: what the server said (with its SQLSTATE) or why the client failed.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// The five-character SQLSTATE (`23505` unique violation, `57P01` admin shutdown…), when the server sent one.
    public var sqlState: String?
    public var message: String

    public init(sqlState: String? = nil, message: String) {
        self.sqlState = sqlState
        self.message = message
    }

    public var description: String { sqlState.map { "\(message) (SQLSTATE \($0))" } ?? message }

    /// True for a unique-constraint violation.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// True when the server refused a value or a row (a data exception, a constraint, a limit):
    /// the same statement with the same values fails again.
    public var isRefusedValue: Bool {
        guard let sqlState else { return false }
        return ["22", "23", "54"].contains(sqlState.prefix(2))
    }

    /// True when the connection itself failed (server gone, restarting, network): the work may be
    /// tried again on a new connection.
    public var isConnectionFailure: Bool {
        guard let sqlState else { return true }
        return sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState)
    }
}

/// One connection to PostgreSQL over libpq. Calls block: use it from one thread at a time, never
/// from Swift's cooperative pool (the daemon's pool runs connections on threads of their own).
///
/// The `PGconn` is owned by this object and closed in `deinit`. Queries are always parameterised
/// (`$1`, `$2`…, values sent apart from the SQL text).
public final class PostgresConnection {
    private let connection: OpaquePointer
    /// Statements prepared on this connection, by SQL text: each is parsed once, and PostgreSQL
    /// may reuse its plan (it keeps planning per call while that is cheaper than a generic plan).
    private var prepared: [String: String] = [:]
    private var preparedCount = 0
    /// Most statements prepared on one connection; SQL past that runs unprepared.
    static let preparedLimit = 256

    /// Connects with a libpq connection string or URL (`postgresql://…`, `host=/run/pg dbname=x`);
    /// unset fields come from libpq's `PG*` environment variables.
    public init(_ connectionString: String) throws(PostgresError) {
        guard let connection = PQconnectdb(connectionString) else {
            throw PostgresError(message: "out of memory creating a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.clientMessage(connection)
            PQfinish(connection)
            throw PostgresError(message: "cannot connect to PostgreSQL: \(message)")
        }
        self.connection = connection
        // Server NOTICEs ("relation already exists, skipping") are not errors; keep them off stderr.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
    }

    deinit {
        PQfinish(connection)
    }

    /// Whether the connection is still usable (false after the server went away).
    public var isHealthy: Bool { PQstatus(connection) == CONNECTION_OK }

    /// The server's version number, e.g. 150018 for 15.18.
    public var serverVersion: Int { Int(PQserverVersion(connection)) }

    /// Runs one statement with `parameters` bound to `$1…$n` (nil is SQL NULL).
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) throws(PostgresError) -> PostgresResult {
        var texts: [String?] = []
        for parameter in parameters {
            let text = parameter?.postgresText
            if let text, Self.holdsNUL(text) {
                throw PostgresError(sqlState: "22021", message: "parameter $\(texts.count + 1) contains a NUL character, which PostgreSQL text cannot hold")
            }
            texts.append(text)
        }
        guard let name = try prepare(sql, parameterCount: texts.count) else {
            let result = Self.withCStrings(texts) { pointers in
                PQexecParams(connection, sql, Int32(pointers.count), nil, pointers, nil, nil, 0)
            }
            return try PostgresResult(consuming: result, connection: connection)
        }
        let result = Self.withCStrings(texts) { pointers in
            PQexecPrepared(connection, name, Int32(pointers.count), pointers, nil, nil, 0)
        }
        do {
            return try PostgresResult(consuming: result, connection: connection)
        } catch where error.sqlState == "0A000" || error.sqlState == "26000" {
            // The table under a prepared statement changed shape (another daemon migrated), or
            // the statement is gone: forget it and run the SQL as it is now.
            forget(sql)
            return try query(sql, parameters)
        }
    }

    /// The name of `sql` prepared on this connection, preparing it on first use; nil past the limit.
    private func prepare(_ sql: String, parameterCount: Int) throws(PostgresError) -> String? {
        if let name = prepared[sql] { return name }
        guard prepared.count < Self.preparedLimit else { return nil }
        preparedCount += 1
        let name = "genflow_\(preparedCount)"
        _ = try PostgresResult(consuming: PQprepare(connection, name, sql, Int32(parameterCount), nil), connection: connection)
        prepared[sql] = name
        return name
    }

    private func forget(_ sql: String) {
        guard let name = prepared.removeValue(forKey: sql) else { return }
        _ = try? execute("DEALLOCATE \(name)")
    }

    /// Runs SQL that may hold several statements and takes no parameters (migrations, `BEGIN`).
    public func execute(_ sql: String) throws(PostgresError) {
        _ = try PostgresResult(consuming: PQexec(connection, sql), connection: connection)
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    /// `begin` opens it (settings with `SET LOCAL` may follow BEGIN in its round trip);
    /// `beforeCommit` is SQL without parameters (`NOTIFY channel;`) sent in the COMMIT's round trip.
    public func transaction<T>(_ body: (PostgresConnection) throws -> T, begin: String = "BEGIN", beforeCommit: () -> String = { "" }) throws -> T {
        try execute(begin)
        do {
            let value = try body(self)
            try execute(beforeCommit() + "COMMIT")
            return value
        } catch {
            if isHealthy { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// The socket, for waiting on notifications with `poll`.
    var socket: Int32 { PQsocket(connection) }

    /// Reads what the server sent and returns the channels notified since the last call.
    func consumeNotifications() throws(PostgresError) -> [String] {
        guard PQconsumeInput(connection) == 1 else {
            throw PostgresError(message: "connection lost: \(Self.clientMessage(connection))")
        }
        var channels: [String] = []
        while let notification = PQnotifies(connection) {
            channels.append(String(cString: notification.pointee.relname))
            PQfreemem(notification)
        }
        return channels
    }

    /// Whether `text` holds a NUL byte: `memchr` over its UTF-8, not a byte-at-a-time generic scan
    /// (array parameters of a flush run to megabytes).
    private static func holdsNUL(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return false }
            return memchr(base, 0, bytes.count) != nil
        }
    }

    private static func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
        let storage: [UnsafeMutablePointer<CChar>?] = strings.map { $0.flatMap { strdup($0) } }
        defer { storage.forEach { free($0) } }
        return body(storage.map { $0.map { UnsafePointer($0) } })
    }

    static func clientMessage(_ connection: OpaquePointer?) -> String {
        guard let connection, let text = PQerrorMessage(connection) else { return "unknown error" }
        return String(cString: text).trimmingTrailingNewlines
    }
}

/// The rows a statement returned, copied out of libpq's `PGresult` (which is freed at once).
public struct PostgresResult: Sendable {
    public var columns: [String]
    public var rows: [PostgresRow]
    /// Rows inserted, updated or deleted (`PQcmdTuples`), 0 when not applicable.
    public var affectedRows: Int

    init(consuming result: OpaquePointer?, connection: OpaquePointer) throws(PostgresError) {
        guard let result else { throw PostgresError(message: PostgresConnection.clientMessage(connection)) }
        if PQstatus(connection) != CONNECTION_OK {
            PQclear(result)
            throw PostgresError(message: "connection lost: \(PostgresConnection.clientMessage(connection))")
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY else {
            let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            throw PostgresError(sqlState: sqlState, message: primary ?? String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines)
        }
        let columnCount = Int(PQnfields(result))
        columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        let index = Dictionary(columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        rows = (0..<Int(PQntuples(result))).map { row in
            PostgresRow(columnIndex: index, values: (0..<columnCount).map { column in
                PQgetisnull(result, Int32(row), Int32(column)) == 1 ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            })
        }
        affectedRows = Int(String(cString: PQcmdTuples(result))) ?? 0
    }
}

/// One row, values in PostgreSQL's text format.
public struct PostgresRow: Sendable {
    let columnIndex: [String: Int]
    /// The values by position; nil is SQL NULL.
    public let values: [String?]

    /// The text of column `name`, nil for NULL or an unknown column.
    public subscript(name: String) -> String? {
        columnIndex[name].flatMap { values[$0] }
    }

    /// Column `name` decoded as `T`, nil for NULL or text that is not a `T`.
    public func decode<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) -> T? {
        self[name].flatMap(T.init(postgresText:))
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var text = Substring(self)
        while text.last?.isNewline == true || text.last == " " { text = text.dropLast() }
        return String(text)
    }
}
