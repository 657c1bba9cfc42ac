#!/usr/bin/env python3
"""A trivial HTTP/1.1 server: the floor that bench/submit measures its client against.

Python standard library only: one asyncio event loop, one asyncio.Protocol per connection,
keep-alive. Every request (any method and path, its body read by Content-Length) is answered at
once with 202 and a fixed JSON body about the size of a submitted job's answer. No database, no
routing, no JSON parsing: what it costs is the client, the loopback and one Python loop.

    http_baseline_server.py     # prints its port on the first line of stdout
"""
import asyncio
import json
import sys

BODY = json.dumps({"created": True, "job": {
    "attempts": 0, "created_at": "2026-01-01T00:00:00.000000Z", "finished_at": None,
    "id": "00000000-0000-0000-0000-000000000000", "input": {}, "pipeline": "tick",
    "pipeline_version": "0" * 64, "priority": 0, "rescues": 0, "run_at": "2026-01-01T00:00:00.000000Z",
    "started_at": None, "status": "queued", "steps": [], "user_id": "u0000"}}, sort_keys=True).encode()
ANSWER = (b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: "
          + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


class Handler(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[:end + 4 + length]
            self.transport.write(ANSWER)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Handler, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
