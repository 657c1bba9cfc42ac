#!/usr/bin/env python3
"""WebSocket fan-out client for bench/websocket: N connections, memory per connection, event latency.

Debian's python3-websockets (10.4) on asyncio; no compression and no client pings (a browser
sends none either; the server's pings are answered by the library). The orchestrator (this
script without --worker) starts P worker processes (this script with --worker K) that share the
N connections: connection i belongs to user i mod U (U = lines of --tokens) and to worker i mod P,
so every user has N / U connections. Steps, driven over the workers' stdin/stdout:

1. every worker opens its connections (`--connect-concurrency` handshakes in flight per worker)
   to `<url>?token=<the user's token>`; the server's RSS (VmRSS of --server-pid) is read before
   and, after `--settle` seconds, once they are all open: the difference over N is the memory of
   an idle connection;
2. the workers start recording; the load runs for --seconds at --rate jobs/s:
   genflow: `POST <http>/v1/jobs {"pipeline": …}` on a fixed timetable (bench/http_load.py),
            job k for user k mod U, so each job's events go to that user's N / U connections;
   baseline: the same timetable, run by bench/ws_baseline_server.py through its /control socket;
3. the workers count deliveries until the expected number arrived (or nothing came for a while),
   then report: latency = receive time (time.time(), when the message is handed to the
   application) minus the event's `at`, on the same machine clock; deliveries per event id;
   connections still open; close codes; CPU seconds of each phase.

Prints one JSON object on stdout.
"""
import argparse
import asyncio
import datetime
import json
import os
import resource
import sys
import time
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_load  # noqa: E402  (bench/http_load.py)


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- worker -----------------------------------------------------------------------------------

class Worker:
    def __init__(self, args, index):
        self.args = args
        self.index = index
        self.connections = []
        self.measuring = False
        self.latencies = []
        self.per_event = {}
        self.before_measuring = 0
        self.closed = {}
        self.open_errors = {}
        self.parsed_at = {}

    def at_seconds(self, text):
        value = self.parsed_at.get(text)
        if value is None:
            if len(self.parsed_at) > 10_000:
                self.parsed_at.clear()
            value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
            self.parsed_at[text] = value
        return value

    async def read(self, connection):
        try:
            async for message in connection:
                received = time.time()
                if not self.measuring:
                    self.before_measuring += 1
                    continue
                event = json.loads(message)
                if event.get("op") != "event":
                    continue
                self.latencies.append((received - self.at_seconds(event["at"])) * 1e3)
                self.per_event[event["id"]] = self.per_event.get(event["id"], 0) + 1
        except websockets.ConnectionClosed as closed:
            key = str(closed.rcvd.code if closed.rcvd else 1006)
            self.closed[key] = self.closed.get(key, 0) + 1

    async def open_one(self, url, gate):
        async with gate:
            for attempt in range(3):
                try:
                    connection = await websockets.connect(url, compression=None, ping_interval=None, close_timeout=2,
                                                          open_timeout=60, max_size=1 << 20)
                    self.connections.append(connection)
                    asyncio.get_running_loop().create_task(self.read(connection))
                    return True
                except Exception as error:  # noqa: BLE001 - every failure is counted and reported
                    key = type(error).__name__ + ": " + str(error)[:80]
                    self.open_errors[key] = self.open_errors.get(key, 0) + 1
                    await asyncio.sleep(0.5 * (attempt + 1))
            return False

    async def run(self):
        args = self.args
        tokens = [line.split()[1] for line in open(args.tokens) if line.strip()]
        mine = [i for i in range(args.connections) if i % args.processes == self.index]
        gate = asyncio.Semaphore(args.connect_concurrency)
        cpu_start = cpu_seconds()
        started = time.monotonic()
        results = await asyncio.gather(*(self.open_one(f"{args.url}?token={tokens[i % len(tokens)]}", gate) for i in mine))
        opened = sum(results)
        self.say({"opened": opened, "failed": len(mine) - opened, "open_errors": self.open_errors,
                  "seconds": round(time.monotonic() - started, 2), "cpu": round(cpu_seconds() - cpu_start, 2)})
        stdin = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        cpu_measure = None
        while True:
            command = (await stdin.readline()).decode().strip()
            if command == "measure":
                cpu_measure = cpu_seconds()
                self.measuring = True
                self.say({"measuring": True})
            elif command == "count":
                self.say({"deliveries": len(self.latencies)})
            elif command == "report":
                self.measuring = False
                held = sum(1 for c in self.connections if c.open)
                self.say({"deliveries": len(self.latencies), "latencies": [round(v, 3) for v in self.latencies],
                          "per_event": self.per_event, "held": held, "closed": self.closed,
                          "before_measuring": self.before_measuring,
                          "cpu_measure": round(cpu_seconds() - (cpu_measure or cpu_seconds()), 2),
                          "rss_kib": int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])})
            elif command in ("close", ""):
                os._exit(0)

    def say(self, obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


# --- orchestrator -----------------------------------------------------------------------------

def proc_status_kib(pid, field):
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def tree_cpu_seconds(pid):
    """User + system CPU seconds of a process and its direct children (PostgreSQL's backends)."""
    if not pid:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            pids += [int(p) for p in file.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            pass
    return total


def metric(url, name):
    if not url:
        return None
    try:
        text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


class Orchestrator:
    def __init__(self, args):
        self.args = args
        self.workers = []

    async def ask(self, worker, command=None):
        if command:
            worker.stdin.write((command + "\n").encode())
            await worker.stdin.drain()
        line = await worker.stdout.readline()
        if not line:
            raise RuntimeError("a worker exited early (its stderr is above)")
        return json.loads(line)

    async def ask_all(self, command=None):
        return await asyncio.gather(*(self.ask(w, command) for w in self.workers))

    async def run(self):
        args = self.args
        tokens = [line.split() for line in open(args.tokens) if line.strip()]
        users = [user for user, _ in tokens]
        result = {"mode": args.mode, "connections": args.connections, "users": len(users), "processes": args.processes,
                  "rate": args.rate, "seconds": args.seconds}
        rss_before = proc_status_kib(args.server_pid, "VmRSS")
        start = time.monotonic()
        for k in range(args.processes):
            self.workers.append(await asyncio.create_subprocess_exec(
                sys.executable, os.path.abspath(__file__), "--worker", str(k), *sys.argv[1:],
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 30))
        opened = await self.ask_all()
        open_seconds = time.monotonic() - start
        idle_cpu = tree_cpu_seconds(args.server_pid)
        await asyncio.sleep(args.settle)
        result["server_cpu_idle_pct"] = round(100 * (tree_cpu_seconds(args.server_pid) - idle_cpu) / args.settle, 1)
        rss_open = proc_status_kib(args.server_pid, "VmRSS")
        total_open = sum(o["opened"] for o in opened)
        errors = {}
        for o in opened:
            for key, count in o["open_errors"].items():
                errors[key] = errors.get(key, 0) + count
        result["open"] = {"opened": total_open, "failed": sum(o["failed"] for o in opened), "errors": errors,
                          "seconds": round(open_seconds, 2), "client_cpu": [o["cpu"] for o in opened],
                          "server_gauge": metric(args.http, args.gauge)}
        result["rss_kib"] = {"before": rss_before, "open": rss_open}
        result["kib_per_connection"] = round((rss_open - rss_before) / max(1, total_open), 2)
        sys.stderr.write(f"   {total_open} of {args.connections} connections open in {open_seconds:.1f} s; "
                         f"server RSS {rss_before / 1024:.1f} -> {rss_open / 1024:.1f} MiB\n")

        await self.ask_all("measure")
        server_cpu = tree_cpu_seconds(args.server_pid)
        pg_cpu = tree_cpu_seconds(args.pg_pid)
        load_start = time.monotonic()
        if args.mode == "genflow":
            body = json.dumps({"pipeline": args.pipeline})
            submit, _ = await http_load.run_load(args.http, args.rate, args.seconds, args.submit_connections, "POST",
                                                 "/v1/jobs", [body], [token for _, token in tokens], 0.0, 202)
            result["submit"] = submit
            jobs = submit["answered"]
            expected = jobs * args.events_per_job * (args.connections // len(users))
        else:
            async with websockets.connect(args.control, compression=None, ping_interval=None, max_size=1 << 26) as control:
                await control.send(json.dumps({"rate": args.rate, "seconds": args.seconds,
                                               "events_per_job": args.events_per_job, "users": users}))
                result["emitted"] = json.loads(await control.recv())
            jobs = result["emitted"]["jobs"]
            expected = result["emitted"]["deliveries"]
        load_seconds = time.monotonic() - load_start
        # Wait for what is still on its way: until every expected delivery arrived, or nothing
        # new came for --quiet seconds.
        last, last_change = -1, time.monotonic()
        while True:
            count = sum(c["deliveries"] for c in await self.ask_all("count"))
            if count >= expected:
                break
            if count != last:
                last, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > args.quiet:
                break
            await asyncio.sleep(0.25)
        measured_seconds = time.monotonic() - load_start
        result["server_cpu"] = round(tree_cpu_seconds(args.server_pid) - server_cpu, 2)
        result["pg_cpu"] = round(tree_cpu_seconds(args.pg_pid) - pg_cpu, 2) if args.pg_pid else None
        result["load_seconds"] = round(load_seconds, 2)
        result["measured_seconds"] = round(measured_seconds, 2)
        reports = await self.ask_all("report")
        result["rss_kib"]["after_load"] = proc_status_kib(args.server_pid, "VmRSS")
        result["rss_kib"]["peak"] = proc_status_kib(args.server_pid, "VmHWM")
        latencies = [v for r in reports for v in r["latencies"]]
        per_event = {}
        for r in reports:
            for key, count in r["per_event"].items():
                per_event[key] = per_event.get(key, 0) + count
        closed = {}
        for r in reports:
            for key, count in r["closed"].items():
                closed[key] = closed.get(key, 0) + count
        fan_out = args.connections // len(users)
        result["jobs"] = jobs
        result["events"] = {"distinct": len(per_event), "deliveries": len(latencies), "expected_deliveries": expected,
                            "short_events": sum(1 for c in per_event.values() if c < fan_out),
                            "messages_per_s": round(len(latencies) / max(1e-9, measured_seconds), 1),
                            "before_measuring": sum(r["before_measuring"] for r in reports)}
        result["latency_ms"] = http_load.summary(latencies)
        result["held"] = sum(r["held"] for r in reports)
        result["closed"] = closed
        result["server_gauge_after"] = metric(args.http, args.gauge)
        result["client_cpu_load"] = [r["cpu_measure"] for r in reports]
        result["client_rss_kib"] = [r["rss_kib"] for r in reports]
        for worker in self.workers:
            worker.stdin.write(b"close\n")
            await worker.stdin.drain()
        await asyncio.gather(*(w.wait() for w in self.workers))
        print(json.dumps(result))
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["genflow", "baseline"], required=True)
    parser.add_argument("--url", required=True, help="ws://HOST:PORT/v1/events")
    parser.add_argument("--tokens", required=True, help="file of 'user token' lines")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight per worker")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--pg-pid", type=int, help="PostgreSQL postmaster (its CPU and its backends')")
    parser.add_argument("--settle", type=float, default=3)
    parser.add_argument("--rate", type=float, default=50, help="jobs per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--events-per-job", type=int, default=5)
    parser.add_argument("--quiet", type=float, default=5, help="stop waiting after this long without a delivery")
    parser.add_argument("--http", help="genflow: http://HOST:PORT (submissions, /metrics)")
    parser.add_argument("--pipeline", default="tick")
    parser.add_argument("--submit-connections", type=int, default=4)
    parser.add_argument("--gauge", default="genflow_websocket_connections_current")
    parser.add_argument("--control", help="baseline: ws://HOST:PORT/control")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        return asyncio.run(Worker(args, args.worker).run())
    return asyncio.run(Orchestrator(args).run())


if __name__ == "__main__":
    sys.exit(main())
