#!/usr/bin/env python3
"""A local HTTP server for the tests: plain replies, slow replies, chosen statuses, chunked
streams and cut-off bodies. Standard library only. Prints its port on the first line of stdout
and serves on 127.0.0.1 until killed."""
import base64
import json
import os
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


CALLS = {}
LAST = {}
TRACES = []  # spans received at POST /v1/traces
SEEN = []  # every POST: its path and traceparent header
ACCEPTED = [0]  # connections accepted so far
DOWN_TRACES = [0]  # requests refused so far by the collector at /down-twice/v1/traces
# A 1x1 PNG, what the gpt-image models' base64 answers decode to here.
TINY_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/hello":
            self.reply(200, "hello", [("Content-Type", "text/plain")])
        elif url.path == "/slow":
            time.sleep(int(query.get("ms", "1000")) / 1000)
            self.reply(200, "slept")
        elif url.path.startswith("/status/"):
            status = int(url.path.rsplit("/", 1)[1])
            headers = [("Retry-After", query["retry_after"])] if "retry_after" in query else []
            self.reply(status, json.dumps({"error": {"message": f"status {status}"}}), headers)
        elif url.path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for index in range(int(query.get("n", "5"))):
                chunk = f"data: {index}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/traces":
            self.reply(200, json.dumps(TRACES), [("Content-Type", "application/json")])
        elif url.path == "/seen":
            self.reply(200, json.dumps(SEEN), [("Content-Type", "application/json")])
        elif url.path == "/calls":
            self.reply(200, json.dumps(CALLS), [("Content-Type", "application/json")])
        elif url.path == "/connections":
            self.reply(200, json.dumps({"accepted": ACCEPTED[0]}), [("Content-Type", "application/json")])
        elif url.path == "/last":
            self.reply(200, json.dumps(LAST.get(query.get("model", ""))), [("Content-Type", "application/json")])
        elif url.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()
            self.close_connection = True
        else:
            self.reply(404, "not found")

    def chat(self, request):
        """OpenAI chat completions; the model name picks the behaviour."""
        model = request.get("model", "")
        CALLS[model] = CALLS.get(model, 0) + 1
        content = json.dumps({"objects": [{"id": "r1", "type": "rectangle", "x": 0, "y": 0, "width": 10, "height": 10}]})
        usage = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
        if model == "rate-limit":
            return self.reply(429, json.dumps({"error": {"message": "slow down"}}), [("retry-after-ms", "150")])
        if model == "rate-limit-seconds":
            return self.reply(429, json.dumps({"error": {"message": "slow down"}}), [("Retry-After", "2")])
        if model == "rate-limit-minute":
            return self.reply(429, json.dumps({"error": {"message": "slow down"}}), [("Retry-After", "60")])
        if model in ("server-error", "auth", "bad", "missing"):
            status = {"server-error": 500, "auth": 401, "bad": 400, "missing": 404}[model]
            return self.reply(status, json.dumps({"error": {"message": f"{model} happened"}}))
        if model == "slow":
            time.sleep(8)  # past every test timeout (the longest is 5 s)
        if model.startswith("sleep-"):
            time.sleep(float(model[6:]))  # then answers as "ok" does
        if model == "garbage":
            return self.reply(200, "<html>not json</html>")
        finish = "length" if model == "length" else "stop"
        if not request.get("stream"):
            return self.reply(200, json.dumps({"model": model, "choices": [{"message": {"role": "assistant", "content": content},
                                                "finish_reason": finish}], "usage": usage}), [("Content-Type", "application/json")])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data):
            chunk = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()

        pieces = [content[i:i + 20] for i in range(0, len(content), 20)]
        for index, piece in enumerate(pieces):
            if model == "cut" and index == 2:
                self.close_connection = True
                return
            if model == "error-event" and index == 2:
                send(json.dumps({"error": {"message": "overloaded"}}))
                break
            send(json.dumps({"model": model, "choices": [{"delta": {"content": piece}, "finish_reason": None}]}))
            time.sleep(0.01)
        send(json.dumps({"model": model, "choices": [{"delta": {}, "finish_reason": finish}]}))
        send(json.dumps({"model": model, "choices": [], "usage": usage}))
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")

    def images(self, request):
        """OpenAI image generations: gpt-image models answer base64, others a URL; the model name
        can also ask for a failure, an answer without usage (no-usage) or a bad image (bad-url, bad-b64)."""
        model = request.get("model", "")
        CALLS[model] = CALLS.get(model, 0) + 1
        LAST[model] = request
        if model in ("server-error", "bad"):
            status = {"server-error": 500, "bad": 400}[model]
            return self.reply(status, json.dumps({"error": {"message": f"{model} happened"}}))
        count = int(request.get("n", 1))
        if model.startswith("gpt-image"):
            data = [{"b64_json": base64.b64encode(TINY_PNG).decode()} for _ in range(count)]
        else:
            data = [{"url": f"https://images.example/{model}/{index}.png", "revised_prompt": "revised: " + request.get("prompt", "")}
                    for index in range(count)]
        if model == "bad-url":
            data = [{"url": "ftp://images.example/0.png"}]
        if model == "bad-b64":
            data = [{"b64_json": base64.b64encode(b"<html>not an image</html>").decode()}]
        answer = {"created": int(time.time()), "data": data}
        if model != "no-usage":  # DALL-E 3 answers without usage
            answer["usage"] = {"input_tokens": 20, "output_tokens": 272 * count, "total_tokens": 20 + 272 * count}
        self.reply(200, json.dumps(answer), [("Content-Type", "application/json")])

    def messages(self, request):
        """Anthropic's Messages API, plain or streamed; the model name picks the behaviour."""
        model = request.get("model", "")
        CALLS[model] = CALLS.get(model, 0) + 1
        LAST[model] = {"request": request, "version": self.headers.get("anthropic-version"), "key": self.headers.get("x-api-key")}
        if model == "overloaded":
            return self.reply(529, json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
        if model == "rate-limit":
            return self.reply(429, json.dumps({"type": "error", "error": {"message": "slow down"}}), [("retry-after-ms", "120")])
        text = "echo: " + " ".join(m.get("content", "") for m in request.get("messages", []) if isinstance(m.get("content"), str))
        stop = "max_tokens" if model == "max-tokens" else "end_turn"
        if not request.get("stream"):
            return self.reply(200, json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                                               "content": [{"type": "text", "text": text}], "stop_reason": stop,
                                               "usage": {"input_tokens": 11, "output_tokens": 5}}), [("Content-Type", "application/json")])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(kind, data):
            chunk = f"event: {kind}\ndata: {json.dumps(dict(data, type=kind))}\n\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()

        send("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
                                           "usage": {"input_tokens": 11, "output_tokens": 1}}})
        send("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        send("ping", {})
        for index, start in enumerate(range(0, len(text), 4)):
            if model == "error-event" and index == 2:
                send("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
                self.wfile.write(b"0\r\n\r\n")
                return
            if model == "cut" and index == 2:
                self.wfile.write(b"0\r\n\r\n")
                return
            send("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text[start:start + 4]}})
            time.sleep(0.005)
        send("content_block_stop", {"index": 0})
        send("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 5}})
        send("message_stop", {})
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        SEEN.append({"path": self.path, "traceparent": self.headers.get("traceparent")})
        if self.path in ("/v1/traces", "/slow/v1/traces", "/down-twice/v1/traces"):
            # An OTLP/HTTP receiver (JSON encoding): keeps each span with the resource it came with;
            # /slow/ answers after 0.5 s, /down-twice/ refuses its first two requests.
            if self.headers.get("Content-Type") != "application/json":
                return self.reply(415, "{}")
            if self.path.startswith("/down-twice/") and DOWN_TRACES[0] < 2:
                DOWN_TRACES[0] += 1
                return self.reply(503, "{}")
            if self.path.startswith("/slow/"):
                # A collector that answers after 0.5 s, and keeps nothing of a request whose
                # sender hung up meanwhile (its spans never arrived).
                time.sleep(0.5)
                readable, _, _ = select.select([self.connection], [], [], 0)
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return
            for resource in json.loads(body).get("resourceSpans", []):
                for scope in resource.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        TRACES.append(dict(span, resource=resource.get("resource", {})))
            return self.reply(200, "{}", [("Content-Type", "application/json")])
        if self.path.endswith("/chat/completions"):
            return self.chat(json.loads(body or b"{}"))
        if self.path.endswith("/images/generations"):
            return self.images(json.loads(body or b"{}"))
        if self.path.endswith("/v1/messages"):
            return self.messages(json.loads(body or b"{}"))
        self.echo("POST", body)

    def do_PUT(self):
        self.echo("PUT", self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def echo(self, method, body):
        self.reply(200, json.dumps({"method": method, "path": self.path, "length": len(body), "body": body.decode(errors="replace"),
                                    "content_type": self.headers.get("Content-Type"), "headers": dict(self.headers.items()),
                                    "data": {"items": [{"id": "first"}, {"id": "second"}]}}),
                   [("Content-Type", "application/json")])


class Server(ThreadingHTTPServer):
    # Hundreds of connections arrive at once in the concurrency tests: the default backlog of 5
    # would drop their SYNs and stall them for seconds.
    request_queue_size = 1024

    def process_request(self, request, client_address):
        ACCEPTED[0] += 1  # on the serving thread, one connection at a time
        super().process_request(request, client_address)


if __name__ == "__main__":
    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # Exit when the test process that started us goes away (it holds our stdin open).
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()
