#!/usr/bin/env python3
"""A minimal WebSocket fan-out server: the baseline bench/websocket measures its client against.

Debian's python3-websockets (10.4), one asyncio event loop, no compression, no pings. A
connection to `/v1/events?token=<JWT>` is checked (HS256 with --secret, `exp`) and joins its user's
set, as a genflow user connection does. A connection to `/control` drives the load: it sends
`{"rate": R, "seconds": D, "events_per_job": E, "users": [ids…]}` and the server then emits "jobs"
on a fixed timetable (job k at start + k / R, for user users[k mod len]); each job is E messages
shaped like genflow's events, stamped with `at` (now, ISO 8601 with microseconds) just before
`websockets.broadcast` queues it on every connection of that user. When done it answers
`{"jobs": …, "events": …, "deliveries": …}`. No database: the events exist only in memory.

    ws_baseline_server.py --secret S     # prints its port on the first line of stdout
"""
import argparse
import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import sys
import time
import urllib.parse
import uuid

import websockets

users = {}  # user id -> set of connections


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def user_of(token, secret):
    """The token's `sub` when its HS256 signature and `exp` hold, else None."""
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, unb64(signature)):
            return None
        claims = json.loads(unb64(payload))
        if claims.get("exp", 0) + 30 < time.time():
            return None
        return claims.get("sub")
    except ValueError:
        return None


def iso_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def run_load(control, rate, seconds, per_job, order):
    types = ["job.queued", "job.started", "step.started", "step.completed", "job.completed"]
    total = int(round(rate * seconds))
    start = time.monotonic() + 0.05
    event_id = 0
    deliveries = 0
    for k in range(total):
        due = start + k / rate
        pause = due - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        user = order[k % len(order)]
        job = str(uuid.uuid4())
        targets = users.get(user, ())
        for e in range(per_job):
            event_id += 1
            message = json.dumps({"at": iso_now(), "data": {"pipeline": "tick"}, "id": event_id, "job_id": job,
                                  "op": "event", "step": "s1" if 1 < e < per_job - 1 else None,
                                  "type": types[e % len(types)]}, separators=(",", ":"), sort_keys=True)
            websockets.broadcast(targets, message)
            deliveries += len(targets)
    await control.send(json.dumps({"jobs": total, "events": event_id, "deliveries": deliveries}))


async def handler(connection, secret):
    path = connection.path
    if path.startswith("/control"):
        async for text in connection:
            request = json.loads(text)
            await run_load(connection, request["rate"], request["seconds"], request["events_per_job"], request["users"])
        return
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    user = user_of(query.get("token", [""])[0], secret)
    if not path.startswith("/v1/events") or user is None:
        await connection.close(4401, "bad token")
        return
    members = users.setdefault(user, set())
    members.add(connection)
    try:
        await connection.wait_closed()
    finally:
        members.discard(connection)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    secret = args.secret.encode()
    async with websockets.serve(lambda connection: handler(connection, secret), "127.0.0.1", 0, compression=None,
                                ping_interval=None, backlog=4096, max_size=1 << 16) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
