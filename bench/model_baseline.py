#!/usr/bin/env python3
"""Baseline client for bench/model-concurrency: what the slow provider serves on this machine to a
plain client, measured in the same run as Genflow's.

Standard library only: asyncio streams, HTTP/1.1, one connection per concurrent caller. Starts
CONCURRENCY callers at once; each makes ROUNDS chat completion calls one after the other on its
own keep-alive connection (ROUNDS 1: every call on a fresh connection, all started together).
Each answer must be a 200 with a chat completion whose first choice has content and
`finish_reason: stop`.

Prints one line: `baseline <concurrency> <rounds> <calls> <seconds> <errors> <p50_seconds>
<max_seconds> <peak_rss_mib> <cpu_seconds>`: the wall time from the first connection attempt to the
last answer, single-call latencies, this process's peak resident memory and its CPU time (user +
system). Exits non-zero if any call failed (the first errors go to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time


async def caller(host: str, port: int, path: str, number: int, rounds: int, timeout: float) -> list[float | BaseException]:
    """ROUNDS calls on one connection; the latency of each, or why it failed (the rest then fail too)."""
    outcomes: list[float | BaseException] = []
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        for round_number in range(rounds):
            started = time.perf_counter()
            body = json.dumps({"model": "bench", "stream": False,
                               "messages": [{"role": "user", "content": f"call {number} round {round_number}"}]}).encode()
            writer.write((f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
            async with asyncio.timeout(timeout):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), None)
                if length is None:
                    raise ValueError("the answer has no Content-Length")
                reply = await reader.readexactly(length)
            if status != 200:
                raise ValueError(f"status {status}: {reply[:200]!r}")
            choice = json.loads(reply)["choices"][0]
            if not choice["message"]["content"] or choice["finish_reason"] != "stop":
                raise ValueError(f"not a finished chat completion: {reply[:200]!r}")
            outcomes.append(time.perf_counter() - started)
    except (OSError, ValueError, KeyError, IndexError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as error:
        outcomes += [error] * (rounds - len(outcomes))
    finally:
        if writer is not None:
            writer.close()
    return outcomes


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--concurrency", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0, help="per call, in seconds")
    args = parser.parse_args()

    authority, _, prefix = args.url.split("://", 1)[1].partition("/")
    host, _, port = authority.partition(":")
    path = "/" + (prefix.rstrip("/") + "/" if prefix else "") + "chat/completions"

    started = time.perf_counter()
    results = await asyncio.gather(*(caller(host, int(port or 80), path, number, args.rounds, args.timeout)
                                     for number in range(args.concurrency)))
    seconds = time.perf_counter() - started

    outcomes = [outcome for result in results for outcome in result]
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    latencies = sorted(outcome for outcome in outcomes if not isinstance(outcome, BaseException))
    for error in errors[:5]:
        print(f"baseline: {type(error).__name__}: {error}", file=sys.stderr)
    p50 = latencies[len(latencies) // 2] if latencies else 0.0
    slowest = latencies[-1] if latencies else 0.0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"baseline {args.concurrency} {args.rounds} {len(outcomes)} {seconds:.3f} {len(errors)} {p50:.3f} {slowest:.3f} "
          f"{usage.ru_maxrss / 1024:.1f} {usage.ru_utime + usage.ru_stime:.2f}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
