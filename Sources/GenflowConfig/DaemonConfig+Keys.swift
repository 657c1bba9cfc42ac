public import GenflowCore
internal import GenflowPipeline
internal import GenflowProviders
internal import GenflowYAML

/// One key of `etc/genflow.yaml`: where it is, its editor schema, and how its value is read into a
/// `DaemonConfig`. The loader and the editor schema (`genflow schema config`) are both made from
/// `DaemonConfig.keys`, so a key cannot be accepted by one and unknown to the other.
struct ConfigKey {
    /// `["queue", "lease"]`: the sections above it, then its name.
    let path: [String]
    /// The JSON Schema of its value.
    let schema: JSON
    /// Reads the value at `node` (named `name`, e.g. `queue.lease`, in errors) into the config.
    let read: (_ node: YAMLNode, _ name: String, _ reader: inout NodeReader, _ config: inout DaemonConfig) -> Void

    init(_ path: String, _ schema: JSON, read: @escaping (YAMLNode, String, inout NodeReader, inout DaemonConfig) -> Void) {
        self.path = path.split(separator: ".").map(String.init)
        self.schema = schema
        self.read = read
    }

    static func described(_ schema: JSON, _ description: String?) -> JSON {
        guard let description, case .object(var members) = schema else { return schema }
        members["description"] = .string(description)
        return .object(members)
    }

    static func duration(
        _ path: String, _ range: ClosedRange<Duration>, _ field: WritableKeyPath<DaemonConfig, Duration>, wholeSeconds: Bool = false, _ description: String? = nil
    ) -> ConfigKey {
        ConfigKey(path, described(["type": "string", "pattern": .string(DurationText.pattern)], description)) { node, name, reader, config in
            guard let value = reader.duration(node, name, in: range) else { return }
            if wholeSeconds && value.components.attoseconds != 0 {
                reader.error(at: node.location, "'\(name)' is counted in whole seconds")
            } else {
                config[keyPath: field] = value
            }
        }
    }

    static func int(_ path: String, _ range: ClosedRange<Int>, _ field: WritableKeyPath<DaemonConfig, Int>, _ description: String? = nil) -> ConfigKey {
        ConfigKey(path, described(["type": "integer", "minimum": .int(range.lowerBound), "maximum": .int(range.upperBound)], description)) { node, name, reader, config in
            if let value = reader.int(node, name, in: range) { config[keyPath: field] = value }
        }
    }

    static func string(_ path: String, _ field: WritableKeyPath<DaemonConfig, String>, _ description: String) -> ConfigKey {
        ConfigKey(path, ["type": "string", "description": .string(description)]) { node, name, reader, config in
            if let value = reader.string(node, name) { config[keyPath: field] = value }
        }
    }

    /// A secret or URL: an empty value (an unset `${VAR:-}`) leaves it unset.
    static func secret(_ path: String, _ field: WritableKeyPath<DaemonConfig, Secret?>, minimumBytes: Int = 0, _ description: String) -> ConfigKey {
        ConfigKey(path, ["type": "string", "description": .string(description)]) { node, name, reader, config in
            guard let value = reader.text(node, name), !value.isEmpty else { return }
            if value.utf8.count < minimumBytes { reader.error(at: node.location, "'\(name)' must be at least \(minimumBytes) bytes long") }
            config[keyPath: field] = Secret(value)
        }
    }
}

extension DaemonConfig {
    /// Every key the daemon config accepts, in the order the editor schema lists them.
    static var keys: [ConfigKey] {
        [
            ConfigKey("listen", ["type": "string", "description": "host:port of the HTTP/WebSocket listener (env GENFLOW_LISTEN)."]) { node, name, reader, config in
                guard let text = reader.text(node, name) else { return }
                if isListenAddress(text) { config.listen = text } else {
                    reader.error(at: node.location, "'listen' must be host:port with an IPv4 address or name (e.g. 127.0.0.1:8080), not '\(text)'")
                }
            },
            ConfigKey("cors_origins", ["type": "array", "items": ["type": "string"], "description": "Browser origins answered with CORS headers; * is any."]) { node, name, reader, config in
                if let origins = reader.stringList(node, name) { config.corsOrigins = origins.map(\.0) }
            },
            .secret("database.url", \.databaseURL, "libpq URL or connection string; empty = embedded PostgreSQL (env DATABASE_URL)."),
            .int("database.pool_size", 1...256, \.databasePoolSize, "Connections the daemon keeps open."),
            .duration("queue.lease", .seconds(1)...(.seconds(3_600)), \.lease, "How long a claimed job stays a daemon's without a heartbeat."),
            .duration("queue.poll_interval", .milliseconds(10)...(.seconds(60)), \.pollInterval, "Longest wait for work when no notification arrives."),
            .duration("queue.shutdown_grace", .zero...(.seconds(3_600)), \.shutdownGrace, "On SIGTERM, how long running steps may go on."),
            .int("queue.max_rescues", 0...1_000, \.maxRescues, "Takeovers after which a job fails as poisoned."),
            .string("state_dir", \.stateDir, "Working files (env GENFLOW_STATE_DIR)."),
            .string("pipelines_dir", \.pipelinesDir, "Pipeline definitions (env GENFLOW_PIPELINES_DIR)."),
            .string("plugins_dir", \.pluginsDir, "Plugin folders (env GENFLOW_PLUGINS_DIR)."),
            .int("workers", 1...100_000, \.workers, "Jobs run at once (env GENFLOW_WORKERS)."),
            .secret("auth.jwt_secret", \.jwtSecret, minimumBytes: 32, "HS256 key, at least 32 bytes (env GENFLOW_JWT_SECRET)."),
            .secret("auth.admin_token", \.adminToken, "Operator bearer token (env GENFLOW_ADMIN_TOKEN)."),
            ConfigKey("auth.jwks_url", ["type": "string", "description": "An identity provider's JWKS (https://…/.well-known/jwks.json): its RS256, ES256 and EdDSA tokens are accepted."]) { node, name, reader, config in
                guard let url = reader.string(node, name, allowEmpty: true), !url.isEmpty else { return }
                if url.hasPrefix("http://") || url.hasPrefix("https://") { config.identity.jwksURL = url } else {
                    reader.error(at: node.location, "'\(name)' must be an http:// or https:// URL, not '\(url.prefix(100))'")
                }
            },
            ConfigKey("auth.jwks_file", ["type": "string", "description": "A JWKS document on disk: static public keys of an identity provider."]) { node, name, reader, config in
                if let path = reader.string(node, name, allowEmpty: true), !path.isEmpty { config.identity.jwksFile = path }
            },
            .duration("auth.jwks_refresh", .seconds(10)...(.seconds(86_400)), \.identity.jwksRefresh, "How long fetched keys are used before they are fetched again."),
            .duration("auth.jwks_refetch_interval", .zero...(.seconds(3_600)), \.identity.jwksRefetchInterval, "A token with an unknown kid fetches the keys again at most once per this interval."),
            ConfigKey("auth.issuer", ["type": "string", "description": "The iss an identity provider's token must carry."]) { node, name, reader, config in
                if let issuer = reader.string(node, name, allowEmpty: true), !issuer.isEmpty { config.identity.issuer = issuer }
            },
            ConfigKey("auth.audience", [
                "oneOf": [["type": "string"], ["type": "array", "items": ["type": "string"]]], "description": "aud values; a token must carry one of them.",
            ]) { node, name, reader, config in
                if node.mapping == nil, node.sequence == nil {
                    if let audience = reader.string(node, name) { config.identity.audiences = [audience] }
                } else if let items = reader.stringList(node, name) {
                    config.identity.audiences = items.map(\.0)
                }
            },
            ConfigKey("auth.user_claim", ["type": "string", "description": "The claim that names the user (default sub)."]) { node, name, reader, config in
                if let claim = reader.string(node, name) { config.identity.userClaim = claim }
            },
            ConfigKey("auth.operator_claim", ["type": "string", "description": "A claim that makes an operator when it is (or contains) operator_value."]) { node, name, reader, config in
                if let claim = reader.string(node, name) { config.identity.operatorClaim = claim }
            },
            ConfigKey("auth.operator_value", ["type": "string", "description": "The value of operator_claim that makes an operator."]) { node, name, reader, config in
                if let value = reader.string(node, name) { config.identity.operatorValue = value }
            },
            .duration("auth.clock_skew", .zero...(.seconds(300)), \.clockSkew, "Clock skew allowed around a token's exp and nbf; an open socket closes (4401) this long after its token's exp."),
            ConfigKey("providers", [
                "type": "object", "description": "Model providers by name; call_model's provider: names one.",
                "additionalProperties": ["oneOf": .array(ProviderKinds.all.map(\.schema.json))],
            ]) { node, name, reader, config in
                guard let pairs = node.mapping else {
                    if !node.isNull { reader.error(at: node.location, "'\(name)' must be a mapping of names to providers, not \(node.kindDescription)") }
                    return
                }
                for pair in pairs {
                    guard let provider = pair.key.keyText else { continue }
                    if let read = ProviderConfig.read(pair.value, name: provider, reader: &reader) { config.providers[provider] = read }
                }
            },
            ConfigKey("limits.running_per_user", ["type": "integer", "minimum": 1, "maximum": 1_000_000]) { node, name, reader, config in
                config.runningPerUser = reader.int(node, name, in: 1...1_000_000)
            },
            .int("limits.submit_per_minute", 1...10_000_000, \.submitPerMinute),
            .int("limits.auth_failures_per_minute", 1...1_000_000, \.authFailuresPerMinute),
            .int("limits.max_body_bytes", 1_024...(256 << 20), \.maxBodyBytes),
            budgetCap("limits.budget.per_user_daily", \.perUserDaily),
            budgetCap("limits.budget.per_user_monthly", \.perUserMonthly),
            .duration("listener.header_timeout", .seconds(1)...(.seconds(600)), \.listener.headerTimeout, wholeSeconds: true),
            .duration("listener.body_timeout", .seconds(1)...(.seconds(3_600)), \.listener.bodyTimeout, wholeSeconds: true),
            .duration("listener.keep_alive_timeout", .seconds(1)...(.seconds(3_600)), \.listener.keepAliveTimeout, wholeSeconds: true),
            .duration("listener.ping_after", .seconds(1)...(.seconds(3_600)), \.listener.pingAfter, wholeSeconds: true),
            .duration("listener.hang_up_after", .seconds(2)...(.seconds(7_200)), \.listener.hangUpAfter, wholeSeconds: true),
            .int("listener.max_head_bytes", 1_024...65_000, \.listener.maxHeadBytes),
            .int("listener.max_target_bytes", 256...65_000, \.listener.maxTargetBytes),
            .int("listener.max_connections_per_address", 1...1_000_000, \.listener.maxConnectionsPerAddress),
            .int("listener.max_unfinished_per_address", 1...1_000_000, \.listener.maxUnfinishedPerAddress),
            ConfigKey("listener.trusted_proxies", [
                "type": "array", "items": ["type": "string"], "description": "IPv4 addresses or CIDR blocks of reverse proxies.",
            ]) { node, name, reader, config in
                guard let items = reader.stringList(node, name) else { return }
                config.listener.trustedProxies = items.compactMap { text, item in
                    guard let range = IPv4Range(text) else {
                        reader.error(at: item.location, "'\(text)' in \(name) is not an IPv4 address or CIDR block (e.g. 10.0.0.0/8)")
                        return nil
                    }
                    return range
                }
            },
            ConfigKey("telemetry.otlp_endpoint", [
                "type": "string", "description": "OTLP/HTTP collector, e.g. http://127.0.0.1:4318 (env OTEL_EXPORTER_OTLP_ENDPOINT); empty = no traces.",
            ]) { node, name, reader, config in
                guard let url = reader.string(node, name, allowEmpty: true), !url.isEmpty else { return }
                if url.hasPrefix("http://") || url.hasPrefix("https://") { config.otlpEndpoint = url } else {
                    reader.error(at: node.location, "'\(name)' must be an http:// or https:// URL (an OTLP/HTTP collector, e.g. http://127.0.0.1:4318), not '\(url.prefix(100))'")
                }
            },
            .string("telemetry.service_name", \.serviceName, "service.name of the exported traces (env OTEL_SERVICE_NAME)."),
            .duration("retention", .seconds(60)...(.seconds(3_650 * 86_400)), \.retention, "How long finished jobs and their events are kept."),
            ConfigKey("log.level", ["enum": .array(logLevels.map(JSON.string))]) { node, name, reader, config in
                guard let level = reader.string(node, name) else { return }
                if logLevels.contains(level) { config.logLevel = level } else {
                    reader.error(at: node.location, "unknown log level '\(level)'\(Suggestions.didYouMean(level, in: logLevels)) (levels: \(logLevels.joined(separator: ", ")))")
                }
            },
        ]
    }

    /// Descriptions of sections, for the editor schema.
    static let sectionDescriptions: [String: String] = [
        "limits.budget": "Caps on each user's spend on priced model calls, in US dollars (budget_exceeded beyond).",
    ]

    private static func budgetCap(_ path: String, _ field: WritableKeyPath<SpendLimits, Money?>) -> ConfigKey {
        ConfigKey(path, ["type": "number", "minimum": 0]) { node, name, reader, config in
            if let value = reader.double(node, name, in: 0...1_000_000_000) { config.budget[keyPath: field] = Money(value) }
        }
    }

    /// Reads the mapping `node` at `prefix` (the file's root for `[]`): each key of the table
    /// under it, a section by its keys in turn. Unknown keys are errors with a "did you mean".
    mutating func read(_ node: YAMLNode, at prefix: [String], keys: [ConfigKey], reader: inout NodeReader) {
        let here = keys.filter { $0.path.count > prefix.count && Array($0.path.prefix(prefix.count)) == prefix }
        var names: [String] = []
        for key in here where !names.contains(key.path[prefix.count]) { names.append(key.path[prefix.count]) }
        let what = prefix.isEmpty ? "the daemon config" : prefix.joined(separator: ".")
        guard let entries = reader.mapping(node, what, allowedKeys: names) else { return }
        for name in names {
            guard let child = entries[name]?.value else { continue }
            let path = prefix + [name]
            if let key = here.first(where: { $0.path == path }) {
                key.read(child, path.joined(separator: "."), &reader, &self)
            } else {
                read(child, at: path, keys: here, reader: &reader)
            }
        }
    }

    /// The JSON Schema (draft-07) of `etc/genflow.yaml`, for editors, made from `keys`.
    public static var editorSchema: JSON {
        guard case .object(var root) = objectSchema(at: [], keys: keys) else { return [:] }
        root["$schema"] = "http://json-schema.org/draft-07/schema#"
        root["title"] = "Genflow daemon config"
        return .object(root)
    }

    private static func objectSchema(at prefix: [String], keys: [ConfigKey]) -> JSON {
        let here = keys.filter { $0.path.count > prefix.count && Array($0.path.prefix(prefix.count)) == prefix }
        var properties: [String: JSON] = [:]
        for key in here {
            let name = key.path[prefix.count]
            guard properties[name] == nil else { continue }
            properties[name] = key.path.count == prefix.count + 1 ? key.schema : objectSchema(at: prefix + [name], keys: here)
        }
        var schema: [String: JSON] = ["type": "object", "additionalProperties": false, "properties": .object(properties)]
        if let description = sectionDescriptions[prefix.joined(separator: ".")] { schema["description"] = .string(description) }
        return .object(schema)
    }

    /// The top-level keys the loader accepts.
    public static var acceptedKeys: [String] {
        var names: [String] = []
        for key in keys where !names.contains(key.path[0]) { names.append(key.path[0]) }
        return names
    }
}
