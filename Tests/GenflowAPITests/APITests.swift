import Foundation
import GenflowAPI
import GenflowCore
import GenflowHTTPClient
import GenflowQueue
import GenflowRecords
import GenflowTestHarness
import Testing


@Suite("HTTP API against a running daemon", .serialized, .timeLimit(.minutes(3)))
struct APITests {
    @Test("auth: no token, a bad or expired token is 401; health needs none; operator endpoints refuse users")
    func auth() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        #expect(try await daemon.call("GET", "/healthz").status == 200)
        #expect(try await daemon.call("GET", "/readyz").json == ["status": "ready"])
        #expect(try await daemon.call("GET", "/v1/jobs").status == 401)
        let forged = JWT.sign(subject: "ann", lifetime: .seconds(60), secret: Secret("another-secret-0123456789-0123456789"))
        let refused = try await daemon.call("GET", "/v1/jobs", token: forged)
        #expect(refused.status == 401 && refused.json["error"]?["details"]?["reason"] == "bad_signature")
        let expired = try await daemon.call("GET", "/v1/jobs", token: userToken("ann", lifetime: .seconds(60), now: Date().addingTimeInterval(-3_600)))
        #expect(expired.status == 401 && expired.json["error"]?["details"]?["reason"] == "expired")
        #expect(try await daemon.call("GET", "/v1/jobs", token: "not.a.jwt").status == 401)
        #expect(try await daemon.call("GET", "/v1/stats", token: userToken("ann")).status == 403)
        #expect(try await daemon.operatorCall("GET", "/v1/stats").status == 200)
        #expect(try await daemon.call("GET", "/v1/nothing", token: userToken("ann")).status == 404)
        let wrongMethod = try await daemon.call("DELETE", "/v1/jobs", token: userToken("ann"))
        #expect(wrongMethod.status == 405 && wrongMethod.headers["allow"]?.contains("GET") == true)
        let head = try await daemon.call("HEAD", "/healthz")
        #expect(head.status == 405 && head.headers["allow"] == "GET", "HEAD is not served; its answer comes without a body")
        let failed = try await daemon.call("GET", "/v1/jobs/\(UUID().uuidString)", token: "\(DaemonProcess.adminToken)x")
        #expect(failed.status == 401)
    }

    @Test("jobs: submit (idempotent), read, result, cancel and retry with their 409s; bad bodies are 400/413/422")
    func jobs() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        let ann = userToken("ann")
        let submitted = try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "sleepy", "input": ["ms": "50ms"], "idempotency_key": "k1"])
        #expect(submitted.status == 202)
        let id = try #require(submitted.json["job"]?["id"]?.stringValue)
        #expect(submitted.json["job"]?["user_id"] == "ann" && submitted.json["job"]?["status"] == "queued")
        let again = try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "sleepy", "input": ["ms": "50ms"], "idempotency_key": "k1"])
        #expect(again.json["job"]?["id"] == .string(id) && again.json["created"] == false)

        let job = try await daemon.finished(id, token: ann)
        #expect(job["status"] == "completed")
        #expect(job["steps"]?.arrayValue?.map { $0["status"] } == ["completed", "completed", "completed"])
        #expect(job["steps"]?.arrayValue?.allSatisfy { $0["attempts"] == 1 && $0["started_at"] != .null && $0["finished_at"] != .null } == true)
        #expect(try await daemon.call("GET", "/v1/jobs/\(id)/result", token: ann).json["status"] == "completed")
        let cancel = try await daemon.call("POST", "/v1/jobs/\(id)/cancel", token: ann)
        #expect(cancel.status == 409 && cancel.json["error"]?["code"] == "not_cancellable")
        #expect(try await daemon.call("POST", "/v1/jobs/\(id)/retry", token: ann).status == 409)

        let slow = try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "sleepy", "input": ["ms": "50ms"], "run_at": "2099-01-01T00:00:00Z"])
        let slowID = try #require(slow.json["job"]?["id"]?.stringValue)
        let early = try await daemon.call("GET", "/v1/jobs/\(slowID)/result", token: ann)
        #expect(early.status == 409 && early.json["error"]?["code"] == "job_not_finished")
        #expect(try await daemon.call("POST", "/v1/jobs/\(slowID)/cancel", token: ann).json["job"]?["status"] == "cancelled")
        #expect(try await daemon.call("POST", "/v1/jobs/\(slowID)/retry", token: ann).status == 202)

        let cases: [(body: [UInt8], status: Int, code: String)] = [
            (Array("{not json".utf8), 400, "invalid_json"),
            (Array("[1, 2]".utf8), 400, "invalid_body"),
            (Array(#"{"pipeline": "sleepy", "inptu": {}}"#.utf8), 400, "unknown_field"),
            (Array(#"{"input": {}}"#.utf8), 422, "invalid_request"),
            (Array(#"{"pipeline": "sleepy", "input": {"ms": 5}}"#.utf8), 422, "invalid_input"),
            (Array(#"{"pipeline": "sleepy", "run_at": "tomorrow"}"#.utf8), 422, "invalid_run_at"),
            (Array(#"{"pipeline": "sleppy"}"#.utf8), 404, "unknown_pipeline"),
            (Array(#"{"pipeline": "x'; DROP TABLE genflow.jobs; --"}"#.utf8), 404, "unknown_pipeline"),
            ([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D], 400, "invalid_json"),
            ([UInt8](repeating: 0x20, count: 2 << 20), 413, "payload_too_large"),
            // Found by schemathesis (make faults): these were 500s from PostgreSQL.
            (Array(#"{"pipeline": "sleepy", "input": {"ms": "1ms\u0000"}}"#.utf8), 400, "invalid_body"),
            (Array(#"{"pipeline": "sleepy", "idempotency_key": "k\u0000"}"#.utf8), 400, "invalid_body"),
            (Array(#"{"pipeline": "sleepy", "input": {"\u0000": 1}}"#.utf8), 400, "invalid_body"),
        ]
        for (body, status, code) in cases {
            let reply = try await daemon.call("POST", "/v1/jobs", token: ann, raw: body)
            #expect(reply.status == status && reply.json["error"]?["code"] == .string(code), "\(String(decoding: body.prefix(60), as: UTF8.self)): \(reply.json)")
        }
        // The parser says what is wrong and where (a trailing comma was accepted by JSONDecoder).
        let trailing = try await daemon.call("POST", "/v1/jobs", token: ann, raw: Array(#"{"pipeline": "sleepy",}"#.utf8))
        #expect(trailing.status == 400 && trailing.json["error"]?["message"] == "the request body is invalid JSON: expected a key in quotes at byte 22", "\(trailing.json)")
        // An offset PostgreSQL would not read (beyond ±15:59) is fine: the time goes on in UTC.
        let late = try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "sleepy", "input": ["ms": "1ms"], "run_at": "2030-01-01T00:00:00+16:00"])
        #expect(late.status == 202 && late.json["job"]?["run_at"]?.stringValue?.hasPrefix("2029-12-31T08:00:00") == true, "\(late.json)")
        _ = try await daemon.call("POST", "/v1/jobs/\(late.json["job"]?["id"]?.stringValue ?? "")/cancel", token: ann)
        let invalid = try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "sleepy", "input": ["ms": 5]])
        #expect(invalid.json["error"]?["details"]?.arrayValue?.first?["path"] == "ms")
        #expect(try await harness.query("SELECT count(*)::int AS n FROM genflow.jobs").first?["n"] == "3", "refused bodies queued nothing")
    }

    @Test("users are isolated: another user's job, prompt and image are 404; lists hold only one's own")
    func isolation() async throws {
        let harness = try await Harness.make(pipelines: ["canvas-generation": try String(contentsOfFile: "pipelines/canvas-generation.yaml", encoding: .utf8)])
        let daemon = try await DaemonProcess(harness: harness, extraConfig: "providers: {default: {kind: offline, delay: 0s}}")
        defer { daemon.stop() }
        let (ann, bob) = (userToken("ann"), userToken("bob"))
        #expect(try await daemon.operatorCall("POST", "/v1/tokens/credit", body: ["user_id": "ann", "amount": 5_000]).status == 201)
        let submitted = try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "canvas-generation", "input": ["instructions": "a flowchart with 3 steps"]])
        let id = try #require(submitted.json["job"]?["id"]?.stringValue)
        #expect(try await daemon.finished(id, token: ann)["status"] == "completed")
        let prompts = try await daemon.call("GET", "/v1/prompts", token: ann)
        let prompt = try #require(prompts.json["items"]?.arrayValue?.first)
        let promptID = try #require(prompt["id"]?.stringValue)
        #expect(prompt["status"] == "completed" && prompt["canvases"]?.arrayValue?.first?["objects"]?.arrayValue?.isEmpty == false)
        _ = try await harness.store.write { try $0.recordImages([ImageRecord(prompt: "p", fullPrompt: nil, imageURL: "https://x/1.png", datasetID: "d", style: nil, aspectRatio: nil, quality: nil, format: "png", resolution: nil, referenceImagesCount: 0)], userID: "ann", jobID: id, step: "img") }
        let imageID = try #require(try await daemon.call("GET", "/v1/images?dataset_id=d", token: ann).json["items"]?.arrayValue?.first?["id"]?.stringValue)

        for path in ["/v1/jobs/\(id)", "/v1/jobs/\(id)/result", "/v1/prompts/\(promptID)", "/v1/images/\(imageID)", "/v1/images/\(imageID)/content"] {
            let reply = try await daemon.call("GET", path, token: bob)
            #expect(reply.status == 404 && reply.json["error"]?["code"] == "not_found", "\(path)")
        }
        for path in ["/v1/jobs/\(id)/cancel", "/v1/jobs/\(id)/retry"] {
            #expect(try await daemon.call("POST", path, token: bob).status == 404, "\(path)")
        }
        #expect(try await daemon.call("DELETE", "/v1/prompts/\(promptID)", token: bob).status == 404)
        #expect(try await daemon.call("GET", "/v1/jobs", token: bob).json["items"] == [])
        #expect(try await daemon.call("GET", "/v1/prompts", token: bob).json["items"] == [])
        #expect(try await daemon.call("GET", "/v1/tokens/balance", token: bob).json == ["user_id": "bob", "balance": 0])
        #expect(try await daemon.call("GET", "/v1/jobs/not-a-uuid", token: ann).status == 404)

        // The owner sees everything and may delete.
        #expect(try await daemon.call("GET", "/v1/prompts/\(promptID)", token: ann).status == 200)
        #expect(try await daemon.call("GET", "/v1/prompts/stats", token: ann).json["total"] == 1)
        let balance = try await daemon.call("GET", "/v1/tokens/balance", token: ann).json["balance"]?.intValue ?? 0
        let ledger = try await daemon.call("GET", "/v1/tokens/ledger", token: ann).json["items"]?.arrayValue ?? []
        #expect(ledger.count == 2 && ledger.first?["balance_after"] == .int(balance) && (ledger.first?["change"]?.intValue ?? 0) < 0)
        #expect(try await daemon.call("DELETE", "/v1/prompts/\(promptID)", token: ann).status == 204)
        #expect(try await daemon.call("GET", "/v1/prompts/\(promptID)", token: ann).status == 404)
        // Operators read any user's history by naming the user.
        #expect(try await daemon.operatorCall("GET", "/v1/images?user_id=ann").json["items"]?.arrayValue?.count == 1)
        #expect(try await daemon.operatorCall("GET", "/v1/images").status == 400)
    }

    @Test("lists page by cursor: every job once, newest first; bad limits and cursors are 400")
    func pagination() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        let ann = userToken("ann")
        var ids: [String] = []
        for _ in 0..<7 {
            let reply = try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "sleepy", "run_at": "2099-01-01T00:00:00Z"])
            ids.append(try #require(reply.json["job"]?["id"]?.stringValue))
        }
        var seen: [String] = []
        var cursor: String?
        repeat {
            let query = cursor.map { "&cursor=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? ""
            let page = try await daemon.call("GET", "/v1/jobs?limit=3\(query)", token: ann)
            #expect(page.status == 200, "\(page.json)")
            seen += page.json["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
            cursor = page.json["next_cursor"]?.stringValue
        } while cursor != nil && seen.count < 20
        #expect(seen == ids.reversed())
        #expect(try await daemon.call("GET", "/v1/jobs?status=queued&pipeline=sleepy", token: ann).json["items"]?.arrayValue?.count == 7)
        #expect(try await daemon.call("GET", "/v1/jobs?status=bogus", token: ann).status == 400)
        #expect(try await daemon.call("GET", "/v1/jobs?limit=0", token: ann).json["error"]?["code"] == "invalid_limit")
        #expect(try await daemon.call("GET", "/v1/jobs?cursor=junk", token: ann).json["error"]?["code"] == "invalid_cursor")
        #expect(try await daemon.call("GET", "/v1/tokens/ledger?cursor=-1", token: ann).status == 400)
    }

    @Test("jobs queued for later run when due, not at the next poll: a run_at a second ahead and a retry's delay, with a poll interval of a minute")
    func scheduledJobsRunWhenDue() async throws {
        let flaky = """
            name: flaky
            steps:
              - {id: once, stage: test.step, with: {fail_attempts: 1, fail_class: server_error}, retry: {max_attempts: 2, initial_interval: 1s, jitter: 0}}
            """
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy, "flaky": flaky])
        let daemon = try await DaemonProcess(harness: harness, pollInterval: "60s")
        defer { daemon.stop() }
        let ann = userToken("ann")
        // The claim loop has read that nothing is queued; only NOTIFY genflow_scheduled tells it otherwise.
        try await Task.sleep(for: .milliseconds(300))
        let dueAt = Int64(Date().timeIntervalSince1970 * 1_000) + 1_000
        let later = try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "sleepy", "input": ["ms": "1ms"], "run_at": .string(Timestamp.utc(milliseconds: dueAt))])
        let retried = try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "flaky"])
        func finished(_ reply: APIReply) async throws -> JSON {
            try await daemon.finished(try #require(reply.json["job"]?["id"]?.stringValue, "\(reply.json)"), token: ann)
        }
        let laterJob = try await finished(later), retriedJob = try await finished(retried)
        func milliseconds(_ job: JSON, _ field: String) throws -> Int64 { try #require(Timestamp.parse(job[field]?.stringValue ?? "")) }
        // Each ran once due: at its run_at, and a second after the failed attempt (which came after
        // the submission); a poll would have come a minute later.
        for (job, due) in [(laterJob, dueAt), (retriedJob, try milliseconds(retriedJob, "created_at") + 1_000)] {
            #expect(job["status"] == "completed")
            let waited = try milliseconds(job, "finished_at") - due
            #expect(waited >= -100 && waited < 30_000, "\(job)")
        }
    }

    @Test("submissions past limits.submit_per_minute are 429 with Retry-After")
    func rateLimit() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness, extraConfig: "limits: {submit_per_minute: 3}")
        defer { daemon.stop() }
        var statuses: [Int] = []
        for _ in 0..<4 {
            statuses.append(try await daemon.call("POST", "/v1/jobs", token: userToken("ann"), body: ["pipeline": "sleepy", "run_at": "2099-01-01T00:00:00Z"]).status)
        }
        #expect(statuses == [202, 202, 202, 429])
        let limited = try await daemon.call("POST", "/v1/jobs", token: userToken("ann"), body: ["pipeline": "sleepy"])
        #expect(limited.json["error"]?["code"] == "rate_limited" && Int(limited.headers["retry-after"] ?? "") ?? 0 >= 1)
        #expect(try await daemon.call("POST", "/v1/jobs", token: userToken("bob"), body: ["pipeline": "sleepy", "run_at": "2099-01-01T00:00:00Z"]).status == 202, "per user")
    }

    @Test("pipelines, stages, stats, metrics and the OpenAPI document describe the daemon")
    func introspection() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        let ann = userToken("ann")
        let pipelines = try await daemon.call("GET", "/v1/pipelines", token: ann).json["items"]?.arrayValue ?? []
        #expect(pipelines.map { $0["name"] } == ["sleepy"] && pipelines.first?["loaded_at"]?.stringValue != nil)
        let one = try await daemon.call("GET", "/v1/pipelines/sleepy", token: ann).json
        #expect(one["steps"]?.arrayValue?.count == 3 && one["version"]?.stringValue?.count == 64)
        #expect(try await daemon.call("GET", "/v1/pipelines/none", token: ann).status == 404)
        let stages = try await daemon.call("GET", "/v1/stages", token: ann).json["items"]?.arrayValue ?? []
        #expect(stages.contains { $0["name"] == "call_model" } && stages.contains { $0["name"] == "http.request" })

        let id = try #require(try await daemon.call("POST", "/v1/jobs", token: ann, body: ["pipeline": "sleepy", "input": ["ms": "1ms"]]).json["job"]?["id"]?.stringValue)
        _ = try await daemon.finished(id, token: ann)
        let stats = try await daemon.operatorCall("GET", "/v1/stats").json
        #expect(stats["by_status"]?["completed"] == 1 && stats["success_rate"]?.doubleValue == 1)
        #expect(stats["pipelines"]?["sleepy"]?["duration_ms"]?["p95"]?.doubleValue != nil)
        // The OpenAPI document lists every SPEC §9 endpoint, and every operation in it is routed.
        let document = try await daemon.call("GET", "/openapi.json").json
        #expect(document["openapi"] == "3.1.0")
        let paths = try #require(document["paths"]?.objectValue)
        let spec: [(String, String)] = [
            ("post", "/v1/jobs"), ("get", "/v1/jobs"), ("get", "/v1/jobs/{id}"), ("get", "/v1/jobs/{id}/result"), ("post", "/v1/jobs/{id}/cancel"),
            ("post", "/v1/jobs/{id}/retry"), ("get", "/v1/prompts"), ("get", "/v1/prompts/{id}"), ("delete", "/v1/prompts/{id}"),
            ("get", "/v1/prompts/stats"), ("get", "/v1/images"), ("get", "/v1/images/{id}"), ("get", "/v1/tokens/balance"),
            ("get", "/v1/tokens/ledger"), ("post", "/v1/tokens/credit"), ("get", "/v1/stats"), ("get", "/v1/pipelines"),
            ("get", "/v1/pipelines/{name}"), ("get", "/v1/stages"), ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"),
            ("get", "/openapi.json"), ("get", "/v1/events"), ("get", "/"), ("get", "/v1/plugins"),
        ]
        for (method, path) in spec { #expect(paths[path]?[method] != nil, "\(method) \(path) is documented") }
        for (path, operations) in paths where path != "/v1/events" {
            for method in operations.objectValue?.keys ?? [:].keys {
                let concrete = path.replacingOccurrences(of: "{id}", with: UUID().uuidString).replacingOccurrences(of: "{name}", with: "sleepy")
                let reply = try await daemon.call(method.uppercased(), concrete + "?user_id=ann", token: DaemonProcess.adminToken, body: method == "get" ? nil : [:])
                #expect(reply.status != 405 && reply.json["error"]?["message"]?.stringValue?.hasPrefix("no endpoint") != true, "\(method) \(path): \(reply.status)")
            }
        }

        // A request the listener refuses before routing: `%00` in the query.
        let refused = try await daemon.call("GET", "/healthz?x=%00")
        #expect(refused.status == 400 && refused.json["error"]?["code"] == "bad_request")
        let metrics = String(decoding: try await daemon.call("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains(#"genflow_listener_refused_total{status="400",code="bad_request"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"genflow_jobs_current{status="completed"} 1"#))
        #expect(metrics.contains("genflow_http_requests_total"))
    }

    @Test("a request whose database connection was cut answers 503 with Retry-After, never 500; the daemon recovers by itself (make faults found it)")
    func databaseUnavailable() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        let ann = userToken("ann")
        let database = String(harness.url.split(separator: "?")[0].split(separator: "/").last ?? "")
        var unavailable = 0
        for _ in 0..<30 where unavailable == 0 {
            // As a PostgreSQL restart does: every session of the daemon's database is cut.
            _ = try await harness.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [database])
            let reply = try await daemon.call("GET", "/v1/jobs", token: ann)
            #expect(reply.status == 200 || reply.status == 503, "\(reply.status) \(reply.json)")
            if reply.status == 503 {
                unavailable += 1
                #expect(reply.json["error"]?["code"] == "unavailable" && reply.headers["retry-after"] == "1")
            }
        }
        #expect(unavailable > 0, "one request met a cut connection")
        // Each cut connection of the pool fails once and is replaced: the daemon recovers by itself.
        var statuses: [Int] = []
        for _ in 0..<10 where statuses.last != 200 {
            statuses.append(try await daemon.call("GET", "/v1/jobs", token: ann).status)
        }
        #expect(statuses.last == 200 && statuses.allSatisfy { $0 == 200 || $0 == 503 }, "\(statuses)")
    }
}
