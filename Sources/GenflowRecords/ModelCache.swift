public import GenflowCore
public import GenflowPostgres
public import GenflowQueue

extension StoreSession {
    /// The stored response of the request `key` (canonical JSON of everything that shapes the
    /// answer), if one is younger than its time to live.
    public func cachedResponse(key: JSON) throws -> JSON? {
        try connection.query("""
            SELECT response::text FROM genflow.model_cache
            WHERE key = encode(sha256(convert_to($1, 'UTF8')), 'hex') AND expires_at > now()
            """, [key.description]).rows.first?["response"].map { try JSON(parsing: $0) }
    }

    /// Stores `response` for `key` for `ttl`, replacing an older entry.
    public func cacheResponse(key: JSON, response: JSON, ttl: Duration) throws {
        try connection.query("""
            INSERT INTO genflow.model_cache (key, response, expires_at)
            VALUES (encode(sha256(convert_to($1, 'UTF8')), 'hex'), $2::jsonb, now() + $3 * interval '1 millisecond')
            ON CONFLICT (key) DO UPDATE SET response = excluded.response, created_at = now(), expires_at = excluded.expires_at
            """, [key.description, response, Int(ttl.milliseconds)])
    }
}
