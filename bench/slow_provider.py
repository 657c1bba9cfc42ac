#!/usr/bin/env python3
"""A slow OpenAI-compatible chat completions server for bench/model-concurrency.

Standard library only: one asyncio event loop, one asyncio.Protocol per connection (HTTP/1.1 with
keep-alive), so thousands of connections cost a buffer each and no thread. Listens on 127.0.0.1 on
a random port (backlog 4096) and prints that port on the first line of stdout.

    POST /v1/chat/completions   a non-streamed chat completion, sent DELAY seconds after the
                                request arrived (a timer per request, nothing blocks)
    GET  /calls                 {"calls": chat calls answered, "in_flight": now, "peak_in_flight":
                                 most requests held at once, "connections": open now,
                                 "peak_connections": most open at once, "accepted": connections
                                 accepted, "arrival_spread": seconds from the first chat request
                                 to the last}
    POST /reset                 starts the counts again (peaks from what is open now)

DELAY: `--delay SECONDS`, else the environment variable DELAY, else 1.0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

BACKLOG = 4096
MAX_HEADER = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class Counters:
    def __init__(self) -> None:
        self.calls = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.connections = 0
        self.peak_connections = 0
        self.accepted = 0
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None

    def arrived(self) -> None:
        now = time.monotonic()
        if self.first_arrival is None:
            self.first_arrival = now
        self.last_arrival = now
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def reset(self) -> None:
        self.calls = 0
        self.peak_in_flight = self.in_flight
        self.peak_connections = self.connections
        self.accepted = 0
        self.first_arrival = self.last_arrival = None

    def as_json(self) -> dict:
        return {"calls": self.calls, "in_flight": self.in_flight, "peak_in_flight": self.peak_in_flight,
                "connections": self.connections, "peak_connections": self.peak_connections, "accepted": self.accepted,
                "arrival_spread": round(self.last_arrival - self.first_arrival, 3) if self.first_arrival is not None else None}


COUNTERS = Counters()


def completion(model: str, number: int, prompt_characters: int) -> bytes:
    """A chat completion as OpenAI returns it (non-streamed)."""
    content = f"Reply {number} from the slow provider."
    prompt_tokens = max(1, prompt_characters // 4)
    completion_tokens = max(1, len(content) // 4)
    return json.dumps({
        "id": f"chatcmpl-slow{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


class HTTPConnection(asyncio.Protocol):
    """One client connection. Requests are answered in order, one at a time (a pipelined request
    waits in the buffer until the one before it has been answered)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False          # a request is being answered (its timer is pending)
        self.timer: asyncio.TimerHandle | None = None
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        COUNTERS.connections += 1
        COUNTERS.accepted += 1
        COUNTERS.peak_connections = max(COUNTERS.peak_connections, COUNTERS.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        COUNTERS.connections -= 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            COUNTERS.in_flight -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.next_request()

    def next_request(self) -> None:
        """Parses and starts the next complete request in the buffer, unless one is in progress."""
        if self.busy or self.transport is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER:
                self.respond(431, b'{"error": {"message": "headers too large"}}', close=True)
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = head[0].split(" ", 2)
        except ValueError:
            self.respond(400, b'{"error": {"message": "bad request line"}}', close=True)
            return
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY or "chunked" in headers.get("transfer-encoding", "").lower():
            self.respond(400, b'{"error": {"message": "a Content-Length body is required"}}', close=True)
            return
        if len(self.buffer) < end + 4 + length:
            return  # the rest of the body is still on its way
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        connection = headers.get("connection", "").lower()
        self.keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        self.busy = True
        self.handle(method, target.split("?", 1)[0], body)

    def handle(self, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                request = json.loads(body)
                messages = request["messages"]
                model = str(request["model"])
            except (ValueError, KeyError, TypeError):
                self.respond(400, b'{"error": {"message": "the body is not a chat completion request"}}')
                return
            if request.get("stream"):
                self.respond(400, b'{"error": {"message": "this server does not stream"}}')
                return
            prompt_characters = sum(len(str(message.get("content", ""))) for message in messages if isinstance(message, dict))
            COUNTERS.arrived()
            self.timer = asyncio.get_running_loop().call_later(self.delay, self.answer_chat, model, prompt_characters)
        elif method == "GET" and path == "/calls":
            self.respond(200, json.dumps(COUNTERS.as_json()).encode())
        elif method == "POST" and path == "/reset":
            COUNTERS.reset()
            self.respond(200, json.dumps(COUNTERS.as_json()).encode())
        else:
            self.respond(404, b'{"error": {"message": "not found"}}')

    def answer_chat(self, model: str, prompt_characters: int) -> None:
        self.timer = None
        COUNTERS.in_flight -= 1
        COUNTERS.calls += 1
        self.respond(200, completion(model, COUNTERS.calls, prompt_characters))

    def respond(self, status: int, body: bytes, close: bool = False) -> None:
        if self.transport is None:
            return
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 431: "Request Header Fields Too Large"}.get(status, "Error")
        keep = self.keep_alive and not close
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n")
        self.transport.write(head.encode() + body)
        self.busy = False
        if keep:
            self.next_request()
        else:
            self.transport.close()


async def serve(delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HTTPConnection(delay), "127.0.0.1", 0, backlog=BACKLOG, reuse_address=True)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=float(os.environ.get("DELAY", "1.0")),
                        help="seconds before each chat completion is answered (default: $DELAY or 1.0)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.delay))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
