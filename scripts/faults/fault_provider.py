#!/usr/bin/python3
"""An OpenAI-compatible chat provider that fails at set rates, for `make faults`.

usage: fault_provider.py PORT_FILE SEED RATES

RATES is `ok=50,rate_limited=10,server_error=10,timeout=10,cut=10,garbage=10` (weights). Each
`POST /v1/chat/completions` draws one outcome:

  ok            a canvas-objects answer (streamed when asked)
  rate_limited  429 with `Retry-After: 1` (seconds) or `retry-after-ms: 300`, alternately
  server_error  500 with an OpenAI error body
  timeout       no answer for 4 s (longer than the pipeline's 1 s step timeout)
  cut           a streamed answer cut after its first chunk (the connection closes)
  garbage       200 with an HTML body

The request's text carries the job's marker (`job-NNNN`): `GET /outcomes` answers, per marker, the
outcomes in the order they were served, with the Retry-After asked in milliseconds, so the fault
suite can replay the retry policy and compare. The port goes to PORT_FILE once listening.
"""
import json
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUTCOMES = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon gave up on this call (its timeout): nobody is reading any more

    def do_GET(self):
        with LOCK:
            body = json.dumps(OUTCOMES)
        self.reply(200, body, [("Content-Type", "application/json")])

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        text = json.dumps(request.get("messages", []))
        found = re.search(r"job-\d+", text)
        marker = found.group(0) if found else "unmarked"
        with LOCK:
            outcome = RNG.choices(NAMES, WEIGHTS)[0]
            served = OUTCOMES.setdefault(marker, [])
            retry_after_ms = None
            if outcome == "rate_limited":
                retry_after_ms = 1000 if len(served) % 2 == 0 else 300
            served.append([outcome, retry_after_ms])
        if outcome == "rate_limited":
            header = ("Retry-After", "1") if retry_after_ms == 1000 else ("retry-after-ms", "300")
            return self.reply(429, json.dumps({"error": {"message": "rate limited"}}), [header])
        if outcome == "server_error":
            return self.reply(500, json.dumps({"error": {"message": "internal error"}}))
        if outcome == "timeout":
            time.sleep(4)
            return self.reply(500, json.dumps({"error": {"message": "too late"}}))
        if outcome == "garbage":
            return self.reply(200, "<html><body>502 Bad Gateway</body></html>", [("Content-Type", "text/html")])
        content = json.dumps({"objects": [{"id": "r1", "type": "rectangle", "x": 0, "y": 0, "width": 10, "height": 10}]})
        usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
        if not request.get("stream"):
            return self.reply(200, json.dumps({"model": request.get("model"), "choices": [
                {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}], "usage": usage}),
                [("Content-Type", "application/json")])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pieces = [content[i:i + 20] for i in range(0, len(content), 20)]

        def send(data):
            line = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        for index, piece in enumerate(pieces):
            send(json.dumps({"choices": [{"delta": {"content": piece}, "finish_reason": None}]}))
            if outcome == "cut":
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
                return
        send(json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]}))
        send(json.dumps({"choices": [], "usage": usage}))
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


if __name__ == "__main__":
    port_file, seed, rates = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pairs = [item.split("=") for item in rates.split(",")]
    NAMES = [name for name, _ in pairs]
    WEIGHTS = [float(weight) for _, weight in pairs]
    RNG = random.Random(seed)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file, "w") as file:
        file.write(str(server.server_address[1]))
    server.serve_forever()
