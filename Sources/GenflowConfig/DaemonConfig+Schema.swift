public import GenflowCore
internal import GenflowPipeline
internal import GenflowProviders

extension DaemonConfig {
    /// The JSON Schema (draft-07) of `etc/genflow.yaml`, for editors. Tests check that it names
    /// exactly the keys the loader accepts.
    public static var editorSchema: JSON {
        let duration: JSON = ["type": "string", "pattern": .string(DurationText.pattern)]
        func text(_ description: String) -> JSON { ["type": "string", "description": .string(description)] }
        return [
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Genflow daemon config",
            "type": "object",
            "additionalProperties": false,
            "properties": [
                "listen": text("host:port of the HTTP/WebSocket listener (env GENFLOW_LISTEN)."),
                "cors_origins": ["type": "array", "items": ["type": "string"], "description": "Browser origins answered with CORS headers; * is any."],
                "database": [
                    "type": "object", "additionalProperties": false,
                    "properties": [
                        "url": text("libpq URL or connection string; empty = embedded PostgreSQL (env DATABASE_URL)."),
                        "pool_size": ["type": "integer", "minimum": 1, "maximum": 256, "description": "Connections the daemon keeps open."],
                    ],
                ],
                "queue": [
                    "type": "object", "additionalProperties": false,
                    "properties": [
                        "lease": duration, "poll_interval": duration, "shutdown_grace": duration,
                        "max_rescues": ["type": "integer", "minimum": 0, "maximum": 1_000],
                    ],
                ],
                "state_dir": text("Working files (env GENFLOW_STATE_DIR)."),
                "pipelines_dir": text("Pipeline definitions (env GENFLOW_PIPELINES_DIR)."),
                "plugins_dir": text("Plugin folders (env GENFLOW_PLUGINS_DIR)."),
                "workers": ["type": "integer", "minimum": 1, "maximum": 100_000, "description": "Jobs run at once (env GENFLOW_WORKERS)."],
                "auth": [
                    "type": "object", "additionalProperties": false,
                    "properties": [
                        "jwt_secret": text("HS256 key, at least 32 bytes (env GENFLOW_JWT_SECRET)."),
                        "admin_token": text("Operator bearer token (env GENFLOW_ADMIN_TOKEN)."),
                    ],
                ],
                "providers": [
                    "type": "object",
                    "description": "Model providers by name; call_model's provider: names one.",
                    "additionalProperties": ["oneOf": .array(ProviderKinds.all.map(\.schema.json))],
                ],
                "limits": [
                    "type": "object", "additionalProperties": false,
                    "properties": [
                        "running_per_user": ["type": "integer", "minimum": 1],
                        "submit_per_minute": ["type": "integer", "minimum": 1],
                        "max_body_bytes": ["type": "integer", "minimum": 1_024],
                        "budget": [
                            "type": "object", "additionalProperties": false,
                            "description": "Caps on each user's spend on priced model calls, in US dollars (budget_exceeded beyond).",
                            "properties": [
                                "per_user_daily": ["type": "number", "minimum": 0], "per_user_monthly": ["type": "number", "minimum": 0],
                            ],
                        ],
                    ],
                ],
                "listener": [
                    "type": "object", "additionalProperties": false,
                    "properties": [
                        "header_timeout": duration, "body_timeout": duration, "keep_alive_timeout": duration, "ping_after": duration, "hang_up_after": duration,
                        "max_head_bytes": ["type": "integer", "minimum": 1_024, "maximum": 65_000],
                        "max_target_bytes": ["type": "integer", "minimum": 256, "maximum": 65_000],
                        "max_connections_per_address": ["type": "integer", "minimum": 1],
                        "max_unfinished_per_address": ["type": "integer", "minimum": 1],
                        "trusted_proxies": ["type": "array", "items": ["type": "string"], "description": "IPv4 addresses or CIDR blocks of reverse proxies."],
                    ],
                ],
                "retention": duration,
                "log": [
                    "type": "object", "additionalProperties": false,
                    "properties": ["level": ["enum": .array(logLevels.map(JSON.string))]],
                ],
            ],
        ]
    }

    /// The top-level keys the loader accepts.
    public static var acceptedKeys: [String] { topKeys }
}
