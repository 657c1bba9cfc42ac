import Foundation
import GenflowCore
import GenflowQueue
import GenflowTestHarness
import Testing

/// Events of one job, by type, from a list of server messages.
private func types(_ messages: [JSON], job: String) -> [String] {
    messages.filter { $0["op"] == "event" && $0["job_id"] == .string(job) }.compactMap { $0["type"]?.stringValue }
}

private func isEnd(of job: String) -> (JSON) -> Bool {
    { $0["type"] == "job.completed" && $0["job_id"] == .string(job) }
}

@Suite("WebSocket events", .serialized, .timeLimit(.minutes(3)))
struct WebSocketTests {
    @Test("a canvas job's events arrive in order, each once: queued, started, objects as they stream, debit, completed")
    func canvasJob() async throws {
        let harness = try await Harness.make(pipelines: ["canvas-generation": try String(contentsOfFile: "pipelines/canvas-generation.yaml", encoding: .utf8)])
        let daemon = try await DaemonProcess(harness: harness, extraConfig: "providers: {default: {kind: offline, delay: 5ms}}")
        defer { daemon.stop() }
        _ = try await daemon.operatorCall("POST", "/v1/tokens/credit", body: ["user_id": "ann", "amount": 5_000])
        let socket = try daemon.socket("token=\(userToken("ann"))")
        defer { socket.close() }
        #expect(await socket.next()?["op"] == "_open")
        let submitted = try await daemon.call("POST", "/v1/jobs", token: userToken("ann"), body: ["pipeline": "canvas-generation", "input": ["instructions": "a flowchart with 4 steps"]])
        let id = try #require(submitted.json["job"]?["id"]?.stringValue)
        let messages = try #require(await socket.messages(through: isEnd(of: id)))
        let received = types(messages, job: id)
        #expect(received.first == "job.queued" && received.dropFirst().first == "job.started" && received.last == "job.completed")
        let objects = received.firstIndex(of: "canvas.objects"), debit = received.firstIndex(of: "token_balance_updated")
        #expect(objects != nil && debit != nil && objects! < debit!)
        let ids = messages.compactMap { $0["id"]?.intValue }
        #expect(ids == ids.sorted() && Set(ids).count == ids.count, "in order, no duplicates")
        // Everything the database recorded arrived (progress may coalesce to its latest value).
        let stored = try await harness.events(id).filter { $0.type != "step.progress" }.map { Int($0.id) }
        // (The credit's own token_balance_updated may also arrive, if it became visible after the socket opened.)
        #expect(messages.filter { $0["job_id"] == .string(id) && $0["type"] != "step.progress" }.compactMap { $0["id"]?.intValue } == stored)
        let drawn = messages.filter { $0["type"] == "canvas.objects" }.flatMap { $0["data"]?["objects"]?.arrayValue ?? [] }
        #expect(drawn.filter { $0["type"] == "rectangle" }.count == 4)
    }

    @Test("a client that reconnects with since gets exactly the events it missed")
    func reconnect() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        let token = userToken("ann")
        let first = try daemon.socket("token=\(token)")
        #expect(await first.next()?["op"] == "_open")
        let submitted = try await daemon.call("POST", "/v1/jobs", token: token, body: ["pipeline": "sleepy", "input": ["ms": "200ms"]])
        let id = try #require(submitted.json["job"]?["id"]?.stringValue)
        let before = try #require(await first.messages(through: { $0["type"] == "step.completed" }))
        first.close()
        let lastSeen = try #require(before.last?["id"]?.intValue)
        #expect(try await daemon.finished(id, token: token)["status"] == "completed")

        let second = try daemon.socket("token=\(token)&since=\(lastSeen)")
        defer { second.close() }
        #expect(await second.next()?["op"] == "_open")
        let after = try #require(await second.messages(through: isEnd(of: id)))
        let stored = try await harness.events(id).map { Int($0.id) }
        #expect(before.compactMap { $0["id"]?.intValue } + after.compactMap { $0["id"]?.intValue } == stored, "no gap, no duplicate")
        // Live again: the next job's events follow on the same connection.
        let next = try await daemon.call("POST", "/v1/jobs", token: token, body: ["pipeline": "sleepy", "input": ["ms": "1ms"]])
        let nextID = try #require(next.json["job"]?["id"]?.stringValue)
        #expect(types(try #require(await second.messages(through: isEnd(of: nextID))), job: nextID).first == "job.queued")
    }

    @Test("a socket closes with 4401 when its token expires (after auth.clock_skew); a REST call with that token is 401 expired")
    func tokenExpiry() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness, clockSkew: "0s")
        defer { daemon.stop() }
        // Lifetime enough for the client to start and connect on a loaded machine (tokens hold whole seconds).
        let token = userToken("ann", lifetime: .seconds(8))
        let socket = try daemon.socket("token=\(token)")
        defer { socket.close() }
        #expect(await socket.next()?["op"] == "_open")
        let closed = await socket.next(timeout: .seconds(30))
        #expect(closed?["op"] == "_closed" && closed?["code"] == 4401, "\(String(describing: closed))")
        #expect(closed?["reason"]?.stringValue?.hasPrefix("token expired") == true)
        let refused = try await daemon.call("GET", "/v1/jobs", token: token)
        #expect(refused.status == 401 && refused.json["error"]?["details"]?["reason"] == "expired")
    }

    @Test("another user's events never reach a socket, even one that subscribes to that user's job")
    func isolation() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        let ann = try daemon.socket("token=\(userToken("ann"))"), bob = try daemon.socket("token=\(userToken("bob"))")
        defer { ann.close(); bob.close() }
        #expect(await ann.next()?["op"] == "_open")
        #expect(await bob.next()?["op"] == "_open")
        let submitted = try await daemon.call("POST", "/v1/jobs", token: userToken("ann"), body: ["pipeline": "sleepy", "input": ["ms": "50ms"]])
        let id = try #require(submitted.json["job"]?["id"]?.stringValue)
        bob.send(["op": "subscribe", "job_id": .string(id), "since": 0])
        #expect(await bob.next()?["code"] == "not_found")
        #expect(try #require(await ann.messages(through: isEnd(of: id))).count >= 8)
        bob.send(["op": "ping"])
        #expect(await bob.next() == ["op": "pong"], "nothing of ann's came before the pong")

        // Messages that make no sense get an error and the connection stays.
        bob.send(["op": "dance"])
        #expect(await bob.next()?["code"] == "unknown_op")
        bob.send(["op": "subscribe", "job_id": "x'; DROP TABLE genflow.events; --"])
        #expect(await bob.next()?["code"] == "invalid_message")
        bob.send(["op": "ping"])
        #expect(await bob.next() == ["op": "pong"])
    }

    @Test("upgrades without a valid token or on another path are refused; an operator replays a job from since 0")
    func refusals() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let daemon = try await DaemonProcess(harness: harness)
        defer { daemon.stop() }
        for (url, code) in [("/v1/events", 4401), ("/v1/events?token=junk", 4401), ("/v1/events?token=\(userToken("ann"))&since=x", 4400), ("/v1/other?token=\(userToken("ann"))", 4404)] {
            let refused = try WebSocketClient("ws://127.0.0.1:\(daemon.port)\(url)")
            #expect(await refused.next()?["op"] == "_open")
            #expect(await refused.next()?["code"] == .int(code), "\(url)")
        }

        let submitted = try await daemon.call("POST", "/v1/jobs", token: userToken("ann"), body: ["pipeline": "sleepy", "input": ["ms": "1ms"]])
        let id = try #require(submitted.json["job"]?["id"]?.stringValue)
        _ = try await daemon.finished(id, token: userToken("ann"))
        let watcher = try daemon.socket("token=\(DaemonProcess.adminToken)")
        defer { watcher.close() }
        #expect(await watcher.next()?["op"] == "_open")
        watcher.send(["op": "subscribe", "job_id": .string(id), "since": 0])
        let reply = await watcher.next()
        #expect(reply?["op"] == "subscribed", "\(String(describing: reply))")
        let replayed = try #require(await watcher.messages(through: isEnd(of: id)))
        #expect(replayed.filter { $0["job_id"] == .string(id) }.compactMap { $0["id"]?.intValue } == (try await harness.events(id)).map { Int($0.id) })
    }

    @Test("two daemons on one database: a client of daemon A receives every event of a job daemon B runs")
    func twoDaemons() async throws {
        let harness = try await Harness.make(pipelines: ["sleepy": sleepy])
        let a = try await DaemonProcess(harness: harness, workers: 1)
        defer { a.stop() }
        let token = userToken("ann")
        // Keep A's only worker busy, so the next job can only run on B.
        let blocker = try #require(try await a.call("POST", "/v1/jobs", token: token, body: ["pipeline": "sleepy", "input": ["ms": "20s"]]).json["job"]?["id"]?.stringValue)
        try await harness.waitForRuns(of: blocker, "a first attempt") { !$0.isEmpty }
        let b = try await DaemonProcess(harness: harness)
        defer { b.stop() }
        let socket = try a.socket("token=\(token)")
        defer { socket.close() }
        #expect(await socket.next()?["op"] == "_open")
        let submitted = try await b.call("POST", "/v1/jobs", token: token, body: ["pipeline": "sleepy", "input": ["ms": "50ms"]])
        let id = try #require(submitted.json["job"]?["id"]?.stringValue)
        let messages = try #require(await socket.messages(through: isEnd(of: id)))
        let mine = messages.filter { $0["job_id"] == .string(id) }
        #expect(mine.compactMap { $0["id"]?.intValue } == (try await harness.events(id)).map { Int($0.id) })
        let runners = Set(mine.filter { $0["type"] == "step.started" }.compactMap { $0["data"]?["daemon"]?.stringValue })
        #expect(runners == [b.owner], "B ran it (A's worker was busy)")
        _ = try await a.call("POST", "/v1/jobs/\(blocker)/cancel", token: token)
    }
}

