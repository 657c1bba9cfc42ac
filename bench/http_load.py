#!/usr/bin/env python3
"""Open-loop HTTP/1.1 load: requests on a fixed timetable over keep-alive connections.

Python standard library only (asyncio, one event loop, one asyncio.Protocol per connection).
Request i is due at start + i / rate, whatever happened to the ones before it: a request that
finds every connection busy waits in a queue, and its latency is counted from when it was due,
not from when it went out, so a stall shows up in the figures instead of hiding in fewer
requests (no coordinated omission). Each connection carries one request at a time.

    http_load.py --url http://127.0.0.1:PORT --rate 1000 --seconds 10 --connections 32 \
                 [--method POST --path /v1/jobs --body '{"pipeline": "tick"}' --tokens FILE] \
                 [--expect 202] [--warmup 1]

Prints one JSON object on stdout: counts, latency percentiles (ms, from the scheduled time),
how late requests went out (the client's own lag), the achieved rate and the client's CPU.
Used as a library by bench/ws_client.py (`run_load`).
"""
import argparse
import asyncio
import json
import math
import os
import resource
import sys
import time


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    index = max(0, min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def summary(values_ms):
    values = sorted(values_ms)
    pick = lambda q: None if not values else round(percentile(values, q), 3)
    return {"n": len(values), "p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "p999": pick(0.999),
            "max": None if not values else round(values[-1], 3)}


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; answers are matched to the request in flight."""

    def __init__(self, load):
        self.load = load
        self.transport = None
        self.buffer = bytearray()
        self.current = None  # (index, due, sent)
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)
        self.load.lost(self, exc)

    def send(self, item):
        self.current = item
        self.transport.write(self.load.request_bytes(item[0]))

    def data_received(self, data):
        self.buffer += data
        while self.current is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            status = int(head.split(" ", 2)[1])
            item, self.current = self.current, None
            self.load.answered(self, item, status, body, head)


class OpenLoop:
    """The timetable, the connections and the results of one run."""

    def __init__(self, host, port, method, path, bodies, tokens, rate, seconds, warmup, connections, expect, keep_bodies=False):
        self.host, self.port = host, port
        self.rate, self.seconds, self.warmup = rate, seconds, warmup
        self.total = int(round(rate * (seconds + warmup)))
        self.measured_from = int(round(rate * warmup))
        self.connection_count = connections
        self.expect = expect
        self.keep_bodies = keep_bodies
        self.requests = []
        head_common = f"Host: {host}:{port}\r\nUser-Agent: genflow-bench\r\n"
        self.tokens = tokens or [None]
        bodies = bodies or [None]
        # One request text per (token, body) pair, prepared up front.
        self.prepared = {}
        for t, token in enumerate(self.tokens):
            for b, body in enumerate(bodies):
                head = f"{method} {path} HTTP/1.1\r\n{head_common}"
                if token:
                    head += f"Authorization: Bearer {token}\r\n"
                payload = (body or "").encode()
                if body is not None:
                    head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                self.prepared[(t, b)] = (head + "\r\n").encode() + payload
        self.body_count = len(bodies)
        self.idle = []
        self.backlog = []
        self.latency = []      # ms from due to answer, measured window only
        self.send_lag = []     # ms from due to the write, measured window only
        self.statuses = {}
        self.errors = 0
        self.lost_connections = 0
        self.bodies = []       # (index, status, body) when keep_bodies
        self.done = 0
        self.finished = None

    def request_bytes(self, index):
        return self.prepared[(index % len(self.tokens), (index // len(self.tokens)) % self.body_count)]

    def answered(self, connection, item, status, body, head):
        index, due, sent = item
        now = time.monotonic()
        if index >= self.measured_from:
            self.latency.append((now - due) * 1e3)
            self.send_lag.append((sent - due) * 1e3)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if self.expect and status != self.expect:
                self.errors += 1
                if self.errors <= 3:
                    sys.stderr.write(f"http_load: request {index} answered {status}: {body[:300]!r}\n")
        if self.keep_bodies:
            self.bodies.append((index, status, body))
        if "connection: close" in head.lower():
            connection.transport.close()
        else:
            self.release(connection)
        self.done += 1
        if self.done == self.total and self.finished and not self.finished.done():
            self.finished.set_result(None)

    def lost(self, connection, exc):
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.current is not None:
            self.lost_connections += 1
            self.errors += 1
            self.done += 1
            if self.done == self.total and self.finished and not self.finished.done():
                self.finished.set_result(None)
            connection.current = None
        asyncio.get_running_loop().create_task(self.replace())

    async def replace(self):
        if self.done >= self.total:
            return
        try:
            connection = await self.connect()
        except OSError as error:
            sys.stderr.write(f"http_load: reconnect failed: {error}\n")
            return
        self.release(connection)

    def release(self, connection):
        if self.backlog:
            index, due = self.backlog.pop(0)
            connection.send((index, due, time.monotonic()))
        else:
            self.idle.append(connection)

    async def connect(self):
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(lambda: Connection(self), self.host, self.port)
        return connection

    async def run(self):
        loop = asyncio.get_running_loop()
        self.finished = loop.create_future()
        connections = [await self.connect() for _ in range(self.connection_count)]
        self.idle = list(connections)
        cpu_before = cpu_seconds()
        start = time.monotonic() + 0.05
        measured_start = start + self.warmup
        for index in range(self.total):
            due = start + index / self.rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            if self.idle:
                self.idle.pop().send((index, due, time.monotonic()))
            else:
                self.backlog.append((index, due))
        sent_by = time.monotonic()
        try:
            await asyncio.wait_for(self.finished, timeout=60)
        except asyncio.TimeoutError:
            sys.stderr.write(f"http_load: {self.total - self.done} requests unanswered 60 s after the last was due\n")
        end = time.monotonic()
        cpu = cpu_seconds() - cpu_before
        for connection in connections:
            if connection.transport:
                connection.transport.close()
        measured = self.total - self.measured_from
        answered = len(self.latency)
        return {
            "requests": measured, "answered": answered, "errors": self.errors + (measured - answered if measured > answered else 0),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "lost_connections": self.lost_connections,
            "rate_target": self.rate, "seconds": self.seconds, "warmup": self.warmup, "connections": self.connection_count,
            "rate_achieved": round(answered / max(1e-9, end - measured_start), 1),
            "schedule_overrun_ms": round((sent_by - (start + (self.total - 1) / self.rate)) * 1e3, 3),
            "latency_ms": summary(self.latency), "send_lag_ms": summary(self.send_lag),
            "client_cpu_s": round(cpu, 2), "client_cpu_pct": round(100 * cpu / max(1e-9, end - start), 1),
        }


async def run_load(url, rate, seconds, connections, method="GET", path="/", bodies=None, tokens=None, warmup=0.0,
                   expect=None, keep_bodies=False):
    """One open-loop run; returns (result dict, [(index, status, body)] when keep_bodies)."""
    rest = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    load = OpenLoop(host, int(port), method, path, bodies, tokens, rate, seconds, warmup, connections, expect, keep_bodies)
    result = await load.run()
    return result, load.bodies


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="http://HOST:PORT")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--body", action="append", help="request body (repeat to rotate bodies)")
    parser.add_argument("--tokens", help="file of 'user token' lines; requests rotate over them")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1, help="seconds at the same rate before measuring")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--expect", type=int, help="the status every answer must have (others count as errors)")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    tokens = None
    if args.tokens:
        with open(args.tokens) as file:
            tokens = [line.split()[1] for line in file if line.strip()]
    result, _ = asyncio.run(run_load(args.url, args.rate, args.seconds, args.connections, args.method, args.path,
                                     args.body, tokens, args.warmup, args.expect))
    result["label"] = args.label
    result["pid"] = os.getpid()
    print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
