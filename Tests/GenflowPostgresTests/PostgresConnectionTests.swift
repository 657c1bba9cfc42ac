import Foundation
import GenflowPostgres
import Testing

/// The cluster `make test` starts (scripts/with-test-db.sh). Tests fail loudly without it.
func testDatabaseURL() throws -> String {
    guard let url = ProcessInfo.processInfo.environment["GENFLOW_TEST_DATABASE_URL"], !url.isEmpty else {
        throw PostgresError(message: "GENFLOW_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts a throwaway PostgreSQL")
    }
    return url
}

@Suite("libpq wrapper against a real PostgreSQL", .timeLimit(.minutes(3)))
struct PostgresConnectionTests {
    @Test("connect and run a parameterised query")
    func parameterisedQuery() throws {
        let connection = try PostgresConnection(try testDatabaseURL())
        #expect(connection.serverVersion >= 150_000)
        let result = try connection.query("SELECT $1::int + $2::int AS sum, $3::text AS label, $4::text IS NULL AS missing", [40, 2, "genflow", nil])
        #expect(result.columns == ["sum", "label", "missing"])
        #expect(result.rows.count == 1)
        #expect(result.rows[0].decode("sum", as: Int.self) == 42)
        #expect(result.rows[0]["label"] == "genflow")
        #expect(result.rows[0].decode("missing", as: Bool.self) == true)
    }

    @Test("an array parameter round-trips every element: quotes, backslashes, commas, braces, the word NULL, NULL itself, empty, non-ASCII")
    func arrays() throws {
        let connection = try PostgresConnection(try testDatabaseURL())
        let elements: [String?] = ["plain", "with \"quotes\"", "back\\slash", "a,b", "{braces}", "NULL", nil, "", " spaced ", "é ✓ 🎨", "line\nbreak"]
        let rows = try connection.query("SELECT e, e IS NULL AS missing FROM unnest($1::text[]) WITH ORDINALITY AS t(e, n) ORDER BY n", [PostgresArray(elements)]).rows
        #expect(rows.map { $0["e"] } == elements)
        #expect(rows.map { $0.decode("missing", as: Bool.self) } == elements.map { $0 == nil })
        let json = try connection.query("SELECT (unnest($1::jsonb[]))->>'k' AS k", [PostgresArray([#"{"k": "v \"q\" \\ ✓"}"#])]).rows
        #expect(json.first?["k"] == #"v "q" \ ✓"#)
        #expect(try connection.query("SELECT cardinality($1::int[]) AS n", [PostgresArray([Int]())]).rows.first?.decode("n", as: Int.self) == 0)
    }

    @Test("parameters are data, never SQL: a SQL-looking string round-trips unchanged")
    func injection() throws {
        let connection = try PostgresConnection(try testDatabaseURL())
        try connection.execute("CREATE TEMP TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        let hostile = "x'); DROP TABLE notes; --"
        let inserted = try connection.query("INSERT INTO notes (body) VALUES ($1) RETURNING id", [hostile])
        #expect(inserted.affectedRows == 1)
        let read = try connection.query("SELECT body FROM notes WHERE id = $1", [inserted.rows[0].decode("id", as: Int.self)])
        #expect(read.rows.map { $0["body"] } == [hostile])
        let unicode = "Zeichnung ✏️ 描く"
        #expect(try connection.query("SELECT $1::text AS t", [unicode]).rows[0]["t"] == unicode)
    }

    @Test("statements are prepared once per connection; one whose table changed shape runs again as it is now")
    func preparedStatements() throws {
        let connection = try PostgresConnection(try testDatabaseURL())
        try connection.execute("CREATE TEMP TABLE shapes (id int PRIMARY KEY)")
        try connection.query("INSERT INTO shapes (id) VALUES ($1)", [1])
        let select = "SELECT * FROM shapes WHERE id = $1"
        #expect(try connection.query(select, [1]).columns == ["id"])
        let statements = try connection.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1", [select])
        #expect(statements.rows.first?.decode("n", as: Int.self) == 1)
        // Another daemon migrates: the prepared SELECT * would now return a different row type.
        try connection.execute("ALTER TABLE shapes ADD COLUMN label text DEFAULT 'new'")
        let after = try connection.query(select, [1])
        #expect(after.columns == ["id", "label"])
        #expect(after.rows.first?["label"] == "new")
        // A statement that does not parse is an error, and is not kept.
        #expect(throws: PostgresError.self) { try connection.query("SELEC nothing WHERE $1", [1]) }
        #expect(try connection.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE 'SELEC %'").rows.first?.decode("n", as: Int.self) == 0)
    }

    @Test("server errors carry SQLSTATE; a NUL byte is refused before it is sent")
    func errors() throws {
        let connection = try PostgresConnection(try testDatabaseURL())
        try connection.execute("CREATE TEMP TABLE keys (k text PRIMARY KEY)")
        try connection.query("INSERT INTO keys VALUES ($1)", ["a"])
        do {
            try connection.query("INSERT INTO keys VALUES ($1)", ["a"])
            Issue.record("expected a unique violation")
        } catch {
            #expect(error.isUniqueViolation)
            #expect(error.message.contains("duplicate key"))
        }
        #expect(throws: PostgresError.self) { try connection.query("SELEC 1") }
        do {
            try connection.query("SELECT $1::text", ["a\u{0}b"])
            Issue.record("expected a refusal")
        } catch {
            #expect(error.sqlState == "22021")
        }
        #expect(connection.isHealthy, "errors leave the connection usable")
        #expect(try connection.query("SELECT 1 AS one").rows[0]["one"] == "1")
    }

    @Test("a bad connection string fails with libpq's reason")
    func badConnection() {
        do {
            _ = try PostgresConnection("postgresql:///nope?host=/nonexistent-dir")
            Issue.record("expected a failure")
        } catch {
            #expect(error.message.hasPrefix("cannot connect to PostgreSQL"))
        }
    }
}
