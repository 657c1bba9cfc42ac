#!/usr/bin/python3
"""Drives clients/js/genflow.js in headless Chromium, as a frontend team's page would use it.

usage: client_browser.py DAEMON_URL JWT_SECRET USER TOKEN_SECONDS

Serves the module and a page that imports it (nothing else) from a local HTTP server, another origin
than the daemon's, plus /token: a fresh HS256 token for USER that expires after TOKEN_SECONDS
(the page's token function calls it, and the server counts the calls). Opens the page, then takes
commands on stdin, one JSON object a line, and answers each with one JSON line on stdout:

  {"cmd": "submit", "pipeline": P, "input": {...}}   submits with the client and follows the job: {"job_id"}
  {"cmd": "wait_end", "job_id": J}                   waits for the job's end event: {"events": [{id, type}, ...]}
  {"cmd": "wait_state", "state": S}                  waits until the stream's state is S: {}
  {"cmd": "drop"}                                    closes the socket under the client, as a lost network would: {}
  {"cmd": "rest", "job_id": J}                       the REST helpers: {"job", "listed", "balance", "cancel_error"}
  {"cmd": "log"}                                     what the page saw: {"states", "token_fetches", "events"}

An error answers {"error": "..."}; end of stdin ends the browser."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cdp import chromium_page

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>genflow.js</title>
<script type="module">
import { GenflowClient } from "/genflow.js";
const daemon = new URLSearchParams(location.search).get("daemon");
window.log = { states: [], events: [], jobs: {} };
const genflow = new GenflowClient({
  baseUrl: daemon,
  token: async () => (await fetch("/token")).text(),
  backoff: { initial: 100, max: 1000 },
});
genflow.onState((state, detail) => window.log.states.push({ state, code: detail?.code ?? null }));
genflow.on("*", (event) => window.log.events.push({ id: event.id, type: event.type, job_id: event.job_id }));
window.genflow = genflow;
genflow.connect();
</script>
"""


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(secret, user, seconds):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = b64(json.dumps({"sub": user, "iat": now, "exp": now + seconds}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


def serve(secret, user, seconds, counts):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, body, content_type):
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/genflow.js":
                with open(os.path.join(ROOT, "clients/js/genflow.js"), encoding="utf-8") as module:
                    self.reply(module.read(), "text/javascript; charset=utf-8")
            elif path == "/token":
                counts["tokens"] += 1
                self.reply(mint(secret, user, seconds), "text/plain")
            else:
                self.reply(PAGE, "text/html; charset=utf-8")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


async def lines():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        if line.strip():
            yield json.loads(line)


async def command(page, message, counts):
    cmd = message["cmd"]
    if cmd == "submit":
        return {"job_id": await page.evaluate(
            f"(async () => {{ const {{job}} = await genflow.submit({json.dumps(message['pipeline'])}, {json.dumps(message.get('input', {}))});"
            " log.jobs[job.id] = []; genflow.followJob(job.id, (e) => log.jobs[job.id].push({id: e.id, type: e.type}));"
            " return job.id; })()")}
    if cmd == "wait_end":
        job = json.dumps(message["job_id"])
        events = await page.wait_for(
            f"(l => l && l.some(e => ['job.completed', 'job.failed', 'job.cancelled'].includes(e.type)) && l)(log.jobs[{job}])",
            f"job {message['job_id']} to end on the page", timeout=message.get("timeout", 60))
        return {"events": events}
    if cmd == "wait_state":
        await page.wait_for(f"genflow.state === {json.dumps(message['state'])}", f"the stream to be {message['state']}", timeout=message.get("timeout", 30))
        return {}
    if cmd == "drop":
        await page.evaluate("genflow.socket.close(4000, 'test: the network went away')")
        return {}
    if cmd == "rest":
        job = json.dumps(message["job_id"])
        return await page.evaluate(
            f"(async () => {{ const job = await genflow.job({job}); const listed = [];"
            " for await (const j of genflow.jobs({limit: 1})) listed.push(j.id);"
            " const balance = await genflow.balance();"
            f" let cancel_error = null; try {{ await genflow.cancel({job}); }} catch (e) {{ cancel_error = {{name: e.name, status: e.status, code: e.code}}; }}"
            " return {job: {id: job.id, status: job.status}, listed, balance, cancel_error}; })()")
    if cmd == "log":
        return {"states": await page.evaluate("log.states"), "token_fetches": counts["tokens"], "events": await page.evaluate("log.events")}
    raise ValueError(f"unknown command {cmd}")


async def drive(daemon, secret, user, seconds):
    counts = {"tokens": 0}
    port = serve(secret, user, seconds, counts)
    async with chromium_page(window="800,600") as page:
        await page.call("Page.navigate", url=f"http://127.0.0.1:{port}/?daemon={daemon}")
        await page.wait_for("window.genflow && genflow.state === 'open'", "the page's stream to open", timeout=30)
        print(json.dumps({"ready": True}), flush=True)
        async for message in lines():
            try:
                answer = await command(page, message, counts)
            except Exception as error:  # noqa: BLE001 - the test reads the reason
                answer = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(answer), flush=True)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    daemon, secret, user, seconds = sys.argv[1:]
    try:
        asyncio.run(drive(daemon, secret, user, int(seconds)))
    except Exception as error:  # noqa: BLE001
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
