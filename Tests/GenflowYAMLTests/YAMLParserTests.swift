import GenflowCore
import GenflowYAML
import Testing

@Suite("YAML on libyaml")
struct YAMLParserTests {
    func parse(_ text: String) throws(Diagnostic) -> YAMLNode {
        try YAMLParser.parse(text, file: "t.yaml")
    }

    @Test("every node keeps its 1-based line and column")
    func positions() throws {
        let root = try parse("""
            name: demo
            steps:
              - id: a
                with: {x: 1, y: [true, "two"]}
            """)
        #expect(root.location == SourceLocation(file: "t.yaml", line: 1, column: 1))
        #expect(root["name"]?.location == SourceLocation(file: "t.yaml", line: 1, column: 7))
        let step = try #require(root["steps"]?.sequence?.first)
        #expect(step.location.line == 3 && step.location.column == 5)
        #expect(step["with"]?["y"]?.sequence?[1].location == SourceLocation(file: "t.yaml", line: 4, column: 28))
        #expect(step["with"]?["y"]?.sequence?[1].scalar?.style == .doubleQuoted)
    }

    @Test("scalars follow the YAML 1.2 core schema (no 'yes'/'no' booleans)")
    func scalarTypes() throws {
        let root = try parse("""
            a: 1
            b: 2.5
            c: true
            d: ~
            e: "1"
            f: yes
            g: 0x1F
            h:
            i: !!str 12
            j: -3
            k: 1e3
            """)
        #expect(root.json == [
            "a": 1, "b": 2.5, "c": true, "d": nil, "e": "1", "f": "yes", "g": 31, "h": nil, "i": "12", "j": -3, "k": 1000.0,
        ])
    }

    @Test("a duplicate key is an error at the second occurrence")
    func duplicateKey() {
        #expect(throws: Diagnostic(at: SourceLocation(file: "t.yaml", line: 3, column: 1), "duplicate key 'a' (first defined at line 1, column 1)")) {
            try parse("a: 1\nb: 2\na: 3\n")
        }
    }

    @Test("anchors, aliases and merge keys work; explicit keys win over merged ones")
    func anchors() throws {
        let root = try parse("""
            base: &base {max_attempts: 3, jitter: 0.2}
            step:
              <<: *base
              max_attempts: 5
            list: [*base, *base]
            """)
        #expect(root["step"]?.json == ["max_attempts": 5, "jitter": 0.2])
        #expect(root["list"]?.json == [["max_attempts": 3, "jitter": 0.2], ["max_attempts": 3, "jitter": 0.2]])
    }

    @Test("an unknown alias is an error at the alias")
    func unknownAlias() {
        #expect(throws: Diagnostic(at: SourceLocation(file: "t.yaml", line: 2, column: 4), "unknown alias '*nope'; define it first with '&nope'")) {
            try parse("a: 1\nb: *nope\n")
        }
    }

    @Test("alias bombs are refused instead of expanding without bound")
    func billionLaughs() {
        var text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...8 {
            let previous = level == 1 ? "a" : "a\(level - 1)"
            text += "a\(level): &a\(level) [" + Array(repeating: "*\(previous)", count: 10).joined(separator: ", ") + "]\n"
        }
        #expect(throws: Diagnostic.self) { try parse(text) }
    }

    @Test("libyaml's own errors come back with file:line:col")
    func syntaxError() {
        do {
            _ = try parse("steps:\n  - id: a\n   stage: notify\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.location == SourceLocation(file: "t.yaml", line: 3, column: 4))
            #expect(error.message.hasPrefix("did not find expected '-' indicator"))
        }
    }

    @Test("an unclosed quote points at where the scan failed")
    func unclosedQuote() {
        do {
            _ = try parse("a: \"open\nb: 2\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.location.line == 3)
            #expect(error.message.contains("quoted scalar"))
        }
    }

    @Test("invalid UTF-8 is reported by libyaml at its position, not a crash")
    func invalidUTF8() {
        let bytes: [UInt8] = Array("a: 1\nb: x".utf8) + [0xFF, 0xFE] + Array("\n".utf8)
        do {
            _ = try YAMLParser.parse(bytes: bytes, file: "t.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.location == SourceLocation(file: "t.yaml", line: 2, column: 5))
            #expect(error.message.hasPrefix("invalid UTF-8"))
        }
    }

    @Test("tabs used for indentation are rejected with a position")
    func tabs() {
        #expect(throws: Diagnostic.self) { try parse("a:\n\tb: 1\n") }
    }

    @Test("a second document is an error; an empty file is null")
    func documents() throws {
        #expect(throws: Diagnostic(at: SourceLocation(file: "t.yaml", line: 2, column: 1), "a file holds one YAML document; found a second one here")) {
            try parse("a: 1\n---\nb: 2\n")
        }
        #expect(try parse("").isNull)
        #expect(try parse("# only a comment\n").isNull)
    }

    @Test("a diagnostic renders with the source line and a caret under the column")
    func snippet() {
        let diagnostic = Diagnostic(at: SourceLocation(file: "p.yaml", line: 2, column: 10), "unknown stage 'x'")
        #expect(diagnostic.rendered(source: "name: p\n  stage: x\n") == """
            p.yaml:2:10: error: unknown stage 'x'
              |
            2 |   stage: x
              |          ^
            """)
    }
}

@Suite("Environment expansion")
struct EnvironmentExpansionTests {
    let environment = ["HOST": "db.internal", "EMPTY": "", "PORT": "5432"]

    func expand(_ yaml: String) throws -> JSON {
        try EnvironmentExpansion.expand(try YAMLParser.parse(yaml, file: "c.yaml"), environment: environment).json
    }

    @Test("${VAR}, ${VAR:-default} and $$ expand in values; whole values are retyped")
    func expands() throws {
        #expect(try expand("""
            url: postgres://${HOST}:${PORT}/x
            port: ${PORT}
            missing: ${NOPE:-fallback}
            empty: ${EMPTY:-used when empty}
            literal: cost $$5
            plain: $HOME stays
            """) == [
                "url": "postgres://db.internal:5432/x", "port": 5432, "missing": "fallback", "empty": "used when empty",
                "literal": "cost $5", "plain": "$HOME stays",
            ])
    }

    @Test("an unset variable without a default is an error at its column")
    func unset() {
        do {
            _ = try expand("a: 1\nkey: \"x ${API_KEY}\"\n")
            Issue.record("expected an error")
        } catch let error as DiagnosticsError {
            #expect(error.diagnostics.map(\.description) == [
                "c.yaml:2:9: error: environment variable 'API_KEY' is not set (write '${API_KEY:-default}' to give a default)",
            ])
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("malformed references are errors", arguments: ["a: ${", "a: ${}", "a: ${1X}", "a: ${A B}"])
    func malformed(yaml: String) {
        #expect(throws: DiagnosticsError.self) { try expand(yaml) }
    }
}
