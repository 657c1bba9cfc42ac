import Foundation
@testable import GenflowConfig
import GenflowCore
import GenflowProviders
import Testing

@Suite("Daemon config")
struct DaemonConfigTests {
    func write(_ yaml: String) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("genflow-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// The diagnostics of loading `file` (none when it loads).
    func errors(loading file: String) -> [String] {
        do {
            _ = try DaemonConfig.load(file: file, environment: [:])
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test("the shipped etc/genflow.yaml loads with its documented defaults")
    func shipped() throws {
        let config = try DaemonConfig.load(file: "etc/genflow.yaml", required: true, environment: [:])
        #expect(config.listen == "127.0.0.1:8080")
        #expect(config.databaseURL == nil)
        #expect(config.workers == 64)
        #expect(config.pipelinesDir == "pipelines")
        #expect(config.retention == .seconds(7 * 86_400))
        #expect(config.providers["default"]?.kind == "offline")
        #expect(config.providers["offline"]?.settings["delay"] == "20ms")
    }

    @Test("precedence: environment over file over defaults; ${VAR} expands in the file")
    func precedence() throws {
        let file = try write("""
            listen: 0.0.0.0:${PORT:-9000}
            workers: 8
            database: {url: "postgresql:///x?host=${PGDIR}"}
            providers:
              default: {kind: openai, base_url: "http://127.0.0.1:1234/v1/", api_key: "${KEY}"}
            """)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let environment = ["PGDIR": "/run/pg", "KEY": "sk-test", "GENFLOW_WORKERS": "3"]
        let config = try DaemonConfig.load(file: file, environment: environment)
        #expect(config.listen == "0.0.0.0:9000")
        #expect(config.workers == 3)
        #expect(config.databaseURL?.value == "postgresql:///x?host=/run/pg")
        #expect(config.providers["default"] == ProviderConfig.openai(baseURL: "http://127.0.0.1:1234/v1", apiKey: Secret("sk-test")))
        #expect(!"\(config)".contains("sk-test"), "secrets must not appear in the config's description")
    }

    @Test("the listener section sets deadlines, caps and trusted proxies; a bad one is an error at its line")
    func listenerSection() throws {
        let good = try write("""
            listener:
              header_timeout: 5s
              keep_alive_timeout: 2m
              max_connections_per_address: 64
              trusted_proxies: [127.0.0.1, 10.0.0.0/8]
            """)
        defer { try? FileManager.default.removeItem(atPath: good) }
        let config = try DaemonConfig.load(file: good, environment: [:])
        #expect(config.listener.headerTimeout == .seconds(5))
        #expect(config.listener.maxConnectionsPerAddress == 64)
        #expect(config.listener.trustedProxies.map(\.description) == ["127.0.0.1", "10.0.0.0/8"])
        #expect(config.listener.bodyTimeout == .seconds(60))
        #expect(config.listener.keepAliveTimeout == .seconds(120))
        let bad = try write("""
            listener:
              trusted_proxies: [nginx]
              ping_after: 90s
            """)
        defer { try? FileManager.default.removeItem(atPath: bad) }
        #expect(errors(loading: bad) == [
            "\(bad):2:21: error: 'nginx' in listener.trusted_proxies is not an IPv4 address or CIDR block (e.g. 10.0.0.0/8)",
            "\(bad):3:15: error: 'listener.hang_up_after' must be longer than 'listener.ping_after'",
        ])
    }

    @Test("each provider kind reads its own keys: defaults filled in, secrets kept apart, a bad URL or a wrong type at its place")
    func providerKinds() throws {
        let good = try write("""
            providers:
              claude: {kind: anthropic, api_key: sk-ant, max_tokens: 512}
            """)
        defer { try? FileManager.default.removeItem(atPath: good) }
        let claude = try #require(try DaemonConfig.load(file: good, environment: [:]).providers["claude"])
        #expect(claude.settings == ["base_url": "https://api.anthropic.com", "version": "2023-06-01", "max_tokens": 512])
        #expect(claude.secrets == ["api_key": Secret("sk-ant")])
        let priced = try write("""
            providers:
              default: {kind: openai, pricing: {gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.6}, dall-e-3: {per_image: 0.04}}}
            """)
        defer { try? FileManager.default.removeItem(atPath: priced) }
        let prices = try #require(try DaemonConfig.load(file: priced, environment: [:]).providers["default"]?.pricing)
        #expect(prices["gpt-4o-mini"]?.inputPerMtok == Money("0.15") && prices["gpt-4o-mini"]?.outputPerMtok == Money("0.6"))
        #expect(prices["dall-e-3"]?.cost(usage: [:], images: 3, size: nil, quality: nil) == Money("0.12"))
        let bad = try write("""
            providers:
              claude: {kind: anthropic, base_url: "ftp://x"}
              slow: {kind: offline, delay: soon}
              priced:
                kind: openai
                pricing: {gpt-4o: {input_per_mtok: -1}, dall-e-3: {per_image: {hd: cheap}}}
            """)
        defer { try? FileManager.default.removeItem(atPath: bad) }
        #expect(errors(loading: bad) == [
            "\(bad):2:39: error: provider 'claude': 'base_url' must start with http:// or https://, not 'ftp://x'",
            "\(bad):3:32: error: provider 'slow' (kind: offline): 'delay' must be a duration such as 500ms, 2s, 1m30s or 1h, not \"soon\"",
            "\(bad):6:40: error: provider 'priced': 'pricing.gpt-4o.input_per_mtok' must be at least 0, not -1",
            "\(bad):6:67: error: provider 'priced': 'pricing.dall-e-3.per_image' must be a price, or prices by size and quality",
        ])
    }

    @Test("without a default provider: openai when OPENAI_API_KEY is set, else offline")
    func defaultProvider() throws {
        let withKey = try DaemonConfig.load(file: "/nonexistent/genflow.yaml", environment: ["OPENAI_API_KEY": "sk-x"])
        #expect(withKey.providers["default"] == .openai(apiKey: Secret("sk-x")))
        #expect(withKey.providers["default"]?.settings["base_url"] == "https://api.openai.com/v1")
        let without = try DaemonConfig.load(file: "/nonexistent/genflow.yaml", environment: [:])
        #expect(without.providers["default"]?.kind == "offline")
    }

    @Test("errors carry file:line:col, unknown keys a suggestion, bad environment values their variable")
    func errors() throws {
        let file = try write("""
            listen: localhost
            wokers: 4
            providers:
              fast: {kind: ofline}
              slow: {kind: offline, api_key: x}
            log: {level: verbose}
            auth: {jwt_secret: short, admin_token: "${ADMIN}"}
            """)
        defer { try? FileManager.default.removeItem(atPath: file) }
        do {
            _ = try DaemonConfig.load(file: file, environment: ["GENFLOW_WORKERS": "many"])
            Issue.record("expected errors")
        } catch {
            #expect(error.diagnostics.map(\.description) == [
                "\(file):7:41: error: environment variable 'ADMIN' is not set (write '${ADMIN:-default}' to give a default)",
            ])
        }
        do {
            _ = try DaemonConfig.load(file: file, environment: ["GENFLOW_WORKERS": "many", "ADMIN": "a"])
            Issue.record("expected errors")
        } catch {
            #expect(error.diagnostics.map(\.description) == [
                "\(file):1:9: error: 'listen' must be host:port with an IPv4 address or name (e.g. 127.0.0.1:8080), not 'localhost'",
                "\(file):2:1: error: unknown key 'wokers' in the daemon config; did you mean 'workers'?",
                "\(file):4:16: error: unknown provider kind 'ofline'; did you mean 'offline'? (kinds: openai, anthropic, offline)",
                "\(file):5:25: error: provider 'slow' (kind: offline): unknown key 'api_key' (known keys: kind, delay, cooldown, pricing)",
                "\(file):6:14: error: unknown log level 'verbose' (levels: trace, debug, info, notice, warning, error, critical)",
                "\(file):7:20: error: 'auth.jwt_secret' must be at least 32 bytes long",
                "$GENFLOW_WORKERS:1:1: error: must be an integer between 1 and 100000, not 'many'",
            ])
        }
    }

    @Test("the editor schema is made from the loader's table: every key the loader reads is in it, nested as in the file, and no other")
    func editorSchemaKeys() {
        let schema = DaemonConfig.editorSchema
        #expect(schema["properties"]?.objectValue?.keys.sorted() == DaemonConfig.acceptedKeys.sorted())
        for key in DaemonConfig.keys {
            let node = key.path.reduce(Optional(schema)) { node, name in node?["properties"]?[name] }
            #expect(node == key.schema, "\(key.path.joined(separator: "."))")
        }
        func leaves(_ node: JSON, _ path: [String]) -> [String] {
            guard let properties = node["properties"]?.objectValue else { return [path.joined(separator: ".")] }
            return properties.flatMap { leaves($0.value, path + [$0.key]) }
        }
        #expect(Set(leaves(schema, [])) == Set(DaemonConfig.keys.map { $0.path.joined(separator: ".") }))
    }

    @Test("a config named explicitly must exist")
    func required() {
        #expect(throws: DiagnosticsError.self) { try DaemonConfig.load(file: "/nonexistent/genflow.yaml", required: true, environment: [:]) }
    }
}
