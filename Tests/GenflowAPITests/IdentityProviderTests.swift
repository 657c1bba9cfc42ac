import Foundation
import GenflowCore
import GenflowTestHarness
import GenflowTestSupport
import Testing

/// Tokens of an identity provider: a local one (Tests/Fixtures/idp.py) publishes RS256, ES256 and
/// EdDSA keys as a JWKS and mints tokens with PyJWT.
@Suite("Identity provider tokens (JWKS)", .serialized, .timeLimit(.minutes(3)))
struct IdentityProviderTests {
    static let issuer = "https://idp.test/"

    /// A token from the local provider; `query` adds to alg, sub, aud and iss.
    func mint(_ idp: FakeServer, _ query: String) async throws -> String {
        let base = "sub=ann&aud=genflow&iss=\(Self.issuer)&"
        let reply = try await callAPI("GET", idp.url("/token?\(base)\(query)"))
        return String(decoding: reply.body, as: UTF8.self)
    }

    /// Whether `check` holds within 10 s (tried every 200 ms): for what waits on the refetch interval.
    func eventually(_ check: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await check() { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    func fetches(_ idp: FakeServer) async throws -> Int {
        try await idp.json("/fetches")["fetches"]?.intValue ?? -1
    }

    func daemon(_ harness: Harness, _ idp: FakeServer, refetch: String = "1s") async throws -> DaemonProcess {
        try await DaemonProcess(harness: harness, clockSkew: "0s", auth: """
            jwks_url: "\(idp.url("/jwks.json"))", jwks_refetch_interval: \(refetch), issuer: "\(Self.issuer)", audience: [genflow, other],
            operator_claim: roles, operator_value: genflow-admin
            """)
    }

    @Test("RS256, ES256 and EdDSA tokens are accepted as their sub; a role claim makes an operator; every refusal keeps its code")
    func algorithmsAndRefusals() async throws {
        let idp = try FakeServer(script: "Tests/Fixtures/idp.py")
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await daemon(harness, idp)
        defer { daemon.stop() }
        for algorithm in ["RS256", "ES256", "EdDSA"] {
            let reply = try await daemon.call("GET", "/v1/tokens/balance", token: try await mint(idp, "alg=\(algorithm)"))
            #expect(reply.status == 200 && reply.json["user_id"] == "ann", "\(algorithm): \(reply.json)")
        }
        // HS256 tokens of the daemon's own secret still work beside them.
        #expect(try await daemon.call("GET", "/v1/tokens/balance", token: userToken("bob")).json["user_id"] == "bob")
        let admin = try await mint(idp, "alg=ES256&claims={\"roles\":[\"reader\",\"genflow-admin\"]}")
        #expect(try await daemon.call("GET", "/v1/stats", token: admin).status == 200)
        #expect(try await daemon.call("GET", "/v1/stats", token: try await mint(idp, "alg=ES256")).status == 403)

        let refusals: [(String, String)] = [
            ("alg=RS256&iss=https://evil.test/", "wrong_issuer"),
            ("alg=ES256&aud=someone-else", "wrong_audience"),
            ("alg=EdDSA&exp_in=-5", "expired"),
            ("alg=RS256&claims={\"sub\":null}", "no_subject"),
            ("alg=RS256&kid=not-a-kid", "unknown_key"),
            ("alg=none", "unsupported_algorithm"),
            // The RS256 public key used as an HMAC secret: HS256 is checked with the daemon's own secret only.
            ("alg=HS256-public", "bad_signature"),
        ]
        for (query, reason) in refusals {
            let reply = try await daemon.call("GET", "/v1/tokens/balance", token: try await mint(idp, query))
            #expect(reply.status == 401 && reply.json["error"]?["details"]?["reason"] == .string(reason), "\(query): \(reply.json)")
        }
        // A forged signature: the payload of one token with the signature of another.
        let (a, b) = (try await mint(idp, "alg=RS256&sub=ann"), try await mint(idp, "alg=RS256&sub=mallory"))
        let forged = b.split(separator: ".")[0] + "." + b.split(separator: ".")[1] + "." + a.split(separator: ".")[2]
        #expect(try await daemon.call("GET", "/v1/tokens/balance", token: String(forged)).json["error"]?["details"]?["reason"] == "bad_signature")

        // On the socket: a good token opens; a refused one closes with 4401 and its reason.
        let good = try daemon.socket("token=\(try await mint(idp, "alg=EdDSA"))")
        defer { good.close() }
        #expect(await good.next()?["op"] == "_open")
        good.send(["op": "ping"])
        #expect(await good.next()?["op"] == "pong")
        let bad = try daemon.socket("token=\(try await mint(idp, "alg=ES256&aud=nobody"))")
        defer { bad.close() }
        #expect(await bad.next()?["op"] == "_open")
        let closed = await bad.next()
        #expect(closed?["code"] == 4401 && closed?["reason"]?.stringValue?.contains("audience") == true, "\(String(describing: closed))")
        // An identity provider's token closes the socket when it expires, too.
        let brief = try daemon.socket("token=\(try await mint(idp, "alg=RS256&exp_in=2"))")
        defer { brief.close() }
        #expect(await brief.next()?["op"] == "_open")
        #expect(await brief.next(timeout: .seconds(20))?["code"] == 4401)
    }

    @Test("static keys from auth.jwks_file: accepted without any fetch, a malformed key skipped; a file that is not a JWKS stops the daemon at start with the reason")
    func staticKeys() async throws {
        let idp = try FakeServer(script: "Tests/Fixtures/idp.py")
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let file = harness.directory + "-keys.json"
        // The provider's keys, and one malformed key (an EC point of 31 bytes) that must not take them down.
        var jwks = try JSON(parsing: Data(try await callAPI("GET", idp.url("/jwks.json")).body))
        let broken: JSON = ["kty": "EC", "crv": "P-256", "kid": "broken", "alg": "ES256", "x": .string(String(repeating: "A", count: 41)), "y": .string(String(repeating: "A", count: 43))]
        jwks = ["keys": .array((jwks["keys"]?.arrayValue ?? []) + [broken])]
        try jwks.description.write(toFile: file, atomically: true, encoding: .utf8)
        let fetched = try await fetches(idp)
        let daemon = try await DaemonProcess(harness: harness, auth: "jwks_file: \(file), audience: genflow")
        defer { daemon.stop() }
        #expect(try await daemon.call("GET", "/v1/tokens/balance", token: try await mint(idp, "alg=EdDSA")).json["user_id"] == "ann")
        #expect(try await daemon.call("GET", "/v1/tokens/balance", token: try await mint(idp, "alg=RS256&kid=other")).status == 401)
        #expect(try await fetches(idp) == fetched, "no fetch")
        #expect(daemon.output.contains("skipping a key of the identity provider's JWKS") && daemon.output.contains("genflow.kid=broken"))

        try "{\"not\": \"keys\"}".write(toFile: file, atomically: true, encoding: .utf8)
        do {
            _ = try await DaemonProcess(harness: harness, auth: "jwks_file: \(file)")
            Issue.record("a daemon started with a bad JWKS file")
        } catch {
            #expect("\(error)".contains("is not a JWKS document"), "\(error)")
        }
    }

    @Test("key rotation: a new kid is fetched on first sight (at most once per interval), the old kid stops working, and a failed fetch keeps the last good keys")
    func rotation() async throws {
        let idp = try FakeServer(script: "Tests/Fixtures/idp.py")
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await daemon(harness, idp, refetch: "2s")
        defer { daemon.stop() }
        let old = try await mint(idp, "alg=RS256")
        #expect(try await daemon.call("GET", "/v1/jobs", token: old).status == 200)
        let first = try await fetches(idp)
        #expect(first == 1)

        // Unknown kids in a burst: one fetch per interval (2 s) at most, whatever their number.
        let burstStart = ContinuousClock.now
        for _ in 0..<5 { _ = try await daemon.call("GET", "/v1/jobs", token: try await mint(idp, "alg=RS256&kid=unknown")) }
        let allowed = 1 + Int((ContinuousClock.now - burstStart) / .seconds(2))
        #expect(try await fetches(idp) - first <= allowed)

        // Rotation: the new kid is fetched on first sight (once the interval allows), the old one is gone.
        _ = try await callAPI("POST", idp.url("/rotate"))
        let new = try await mint(idp, "alg=RS256")
        #expect(try await eventually { try await daemon.call("GET", "/v1/jobs", token: new).status == 200 }, "the new kid is fetched")
        let gone = try await daemon.call("GET", "/v1/jobs", token: old)
        #expect(gone.status == 401 && gone.json["error"]?["details"]?["reason"] == "unknown_key", "the old key left with the old JWKS: \(gone.json)")

        // The provider fails: an unknown kid tries a fetch, which fails; the keys fetched last keep working.
        _ = try await callAPI("POST", idp.url("/fail?on=1"))
        let before = try await fetches(idp)
        #expect(try await eventually {
            _ = try await daemon.call("GET", "/v1/jobs", token: try await mint(idp, "alg=ES256&kid=unknown"))
            return try await fetches(idp) > before
        }, "an unknown kid tried a fetch")
        #expect(try await daemon.call("GET", "/v1/jobs", token: new).status == 200, "the last good keys stay")
        #expect(daemon.output.contains("cannot fetch the identity provider's keys; the last good ones stay"))
    }
}
