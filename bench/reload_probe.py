#!/usr/bin/env python3
"""Pipeline reload and daemon start-up timings for bench/reload (Python standard library only).

Drives one `genflow serve` after another against a database that is already up:

  start      starts the daemon BENCH times; each time: from the exec to the 'genflow ready' log
             line, and to the first 200 from GET /readyz (a fresh connection tried every 1 ms);
             also the daemon's own `genflow.startup_ms`. The first start, which applies the
             migrations to an empty database, is reported apart.
  rtt        the client's own round trip: GET /v1/pipelines/NAME of an unchanged pipeline, on the
             keep-alive connection the reload polls use.
  file       rewrites the pipeline file (written next door, then renamed over it: one atomic
             IN_MOVED_TO) with a different step id, and times from the rename to the first
             GET /v1/pipelines/NAME that shows the new step id and a new version (polled every 1 ms).
  sighup     the same change written through a descriptor that stays open (inotify waits for the
             close, so the watcher does not fire), then SIGHUP; timed from the signal to the GET
             that shows it. The descriptor is closed afterwards (that close reloads nothing new).
  validate   `genflow validate --config CONFIG FILE` of the same file, a fresh process each time.

Prints one JSON document on stdout; progress on stderr. Exits 1 when something is not as expected
(a reload not seen within 5 s, a GET that is not 200, a validate that fails).
"""
import argparse
import atexit
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

READY_PATTERN = re.compile(r"genflow\.listen=127\.0\.0\.1:(\d+).*genflow\.startup_ms=(\d+).*genflow ready")
RUNNING = set()  # daemons started and not yet stopped; stopped at exit whatever the reason


def log(text):
    print(text, file=sys.stderr, flush=True)


def fail(text):
    log("bench/reload_probe.py: " + text)
    sys.exit(1)


def stats(values):
    """Nearest-rank percentiles, in milliseconds (values are seconds)."""
    ordered = sorted(v * 1000 for v in values)
    if not ordered:
        return {"n": 0}

    def pick(q):
        index = max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))
        return round(ordered[index], 3)

    return {"n": len(ordered), "min": round(ordered[0], 3), "p50": pick(0.5), "p95": pick(0.95), "max": round(ordered[-1], 3),
            "mean": round(sum(ordered) / len(ordered), 3)}


def pipeline_text(name, step_id, round_name):
    return (f"name: {name}\n"
            f"description: bench/reload, {round_name}.\n"
            "steps:\n"
            f"  - id: {step_id}\n"
            "    stage: test.step\n")


class Daemon:
    """One `genflow serve`; its log lines are copied to a file by a thread (the pipe never fills)."""

    def __init__(self, binary, config, log_path, environment):
        self.log_file = open(log_path, "a", buffering=1)
        self.ready = threading.Event()
        self.ready_at = None
        self.port = None
        self.startup_ms = None
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen([binary, "serve", "--config", config], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment)
        RUNNING.add(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.process.stdout:
            stamp = time.perf_counter()
            line = raw.decode("utf-8", "replace")
            if not self.ready.is_set():
                match = READY_PATTERN.search(line)
                if match:
                    self.ready_at = stamp
                    self.port = int(match.group(1))
                    self.startup_ms = int(match.group(2))
                    self.ready.set()
            self.log_file.write(line)

    def wait_ready(self, timeout=60):
        deadline = time.perf_counter() + timeout
        while not self.ready.wait(0.005):
            if self.process.poll() is not None:
                fail(f"genflow serve exited with status {self.process.returncode} during start-up (see its log)")
            if time.perf_counter() > deadline:
                fail(f"genflow did not log 'genflow ready' within {timeout} s")
        return self.ready_at - self.started_at

    def wait_readyz(self, timeout=60):
        """Seconds from the exec to the first 200 from GET /readyz (a new connection per try)."""
        deadline = time.perf_counter() + timeout
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/readyz")
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status == 200:
                    return time.perf_counter() - self.started_at
            except OSError:
                pass
            if time.perf_counter() > deadline:
                fail("GET /readyz did not answer 200 within 60 s")
            time.sleep(0.001)

    def stop(self, timeout=20):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log("   genflow did not stop within 20 s of SIGTERM; killing it")
                self.process.kill()
                self.process.wait()
        RUNNING.discard(self)
        self.reader.join(5)
        self.log_file.close()


class Client:
    """GET /v1/pipelines/NAME on one keep-alive connection, with the admin token."""

    def __init__(self, port, token, name):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.path = f"/v1/pipelines/{name}"
        self.headers = {"Authorization": f"Bearer {token}"}

    def pipeline(self):
        self.connection.request("GET", self.path, headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            fail(f"GET {self.path} answered {response.status}: {body[:200]!r}")
        return json.loads(body)


def wait_for(client, step_id, old_version, started, timeout=5.0):
    """Polls every 1 ms until the pipeline has `step_id` and a version other than `old_version`."""
    polls = 0
    while True:
        document = client.pipeline()
        polls += 1
        seen = time.perf_counter()
        steps = document.get("steps") or []
        if steps and steps[0].get("id") == step_id and document.get("version") != old_version:
            return seen - started, polls, document["version"]
        if seen - started > timeout:
            fail(f"the pipeline did not show step {step_id} within {timeout} s (last: version {document.get('version')}, "
                 f"steps {steps}, error {document.get('error')})")
        time.sleep(0.001)


def stop_running():
    for daemon in list(RUNNING):
        daemon.stop()


def main():
    atexit.register(stop_running)
    # bench/reload stops this script with SIGTERM when it is interrupted: exit, stopping the daemon.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--genflow", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--pipelines", required=True, help="the daemon's pipelines_dir")
    parser.add_argument("--staging", required=True, help="a directory on the same file system, not watched")
    parser.add_argument("--name", default="bench")
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--log", required=True, help="where the daemon's log lines go")
    parser.add_argument("--reloads", type=int, default=50)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--validates", type=int, default=20)
    parser.add_argument("--rtt", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between two reloads")
    arguments = parser.parse_args()

    environment = dict(os.environ, GENFLOW_TEST_STAGES="1")
    name = arguments.name
    target = os.path.join(arguments.pipelines, f"{name}.yaml")
    staged = os.path.join(arguments.staging, f"{name}.yaml")
    with open(target, "w") as handle:
        handle.write(pipeline_text(name, "s0", "as started"))
    results = {}

    # The first start applies the migrations to an empty database.
    log("== first start (empty database: migrations)")
    daemon = Daemon(arguments.genflow, arguments.config, arguments.log, environment)
    results["first_start"] = {"ready_s": daemon.wait_ready(), "readyz_s": daemon.wait_readyz(), "startup_ms": daemon.startup_ms}
    log(f"   'genflow ready' after {results['first_start']['ready_s'] * 1000:.0f} ms (startup_ms {daemon.startup_ms})")
    client = Client(daemon.port, arguments.admin_token, name)
    document = client.pipeline()
    if (document.get("steps") or [{}])[0].get("id") != "s0":
        fail(f"the daemon did not load {target}: {document}")
    version = document["version"]
    versions = {version}

    # The client's own round trip on the same connection, pipeline unchanged.
    log(f"== client round trip: {arguments.rtt} x GET /v1/pipelines/{name}, unchanged, keep-alive")
    for _ in range(50):
        client.pipeline()
    trips = []
    for _ in range(arguments.rtt):
        started = time.perf_counter()
        client.pipeline()
        trips.append(time.perf_counter() - started)
    results["rtt"] = stats(trips)

    # Reload after a file write: rename the new file over the old one.
    log(f"== reload after a file write: {arguments.reloads} x rename, then poll every 1 ms")
    reloads, polls = [], []
    for index in range(1, arguments.reloads + 1):
        step_id = f"f{index}"
        with open(staged, "w") as handle:
            handle.write(pipeline_text(name, step_id, f"file write {index}"))
        started = time.perf_counter()
        os.rename(staged, target)
        seconds, count, version_now = wait_for(client, step_id, version, started)
        reloads.append(seconds)
        polls.append(count)
        version = version_now
        versions.add(version)
        time.sleep(arguments.gap)
    results["file"] = stats(reloads) | {"polls_mean": round(sum(polls) / len(polls), 1)}

    # Reload on SIGHUP: the change is in the file, but its descriptor is still open (no inotify event).
    log(f"== reload on SIGHUP: {arguments.reloads} x write without closing, SIGHUP, then poll every 1 ms")
    reloads, polls = [], []
    for index in range(1, arguments.reloads + 1):
        step_id = f"h{index}"
        descriptor = os.open(target, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(descriptor, pipeline_text(name, step_id, f"SIGHUP {index}").encode())
            started = time.perf_counter()
            daemon.process.send_signal(signal.SIGHUP)
            seconds, count, version_now = wait_for(client, step_id, version, started)
        finally:
            os.close(descriptor)
        reloads.append(seconds)
        polls.append(count)
        version = version_now
        versions.add(version)
        time.sleep(arguments.gap)  # the close reloads (nothing new) after the watcher's debounce
    results["sighup"] = stats(reloads) | {"polls_mean": round(sum(polls) / len(polls), 1)}
    results["versions"] = len(versions)
    results["final_version"] = version
    client.connection.close()
    daemon.stop()
    if daemon.process.returncode != 0:
        fail(f"genflow serve exited with status {daemon.process.returncode} after SIGTERM")

    # Start to ready, the database already up and migrated.
    log(f"== start to ready: {arguments.starts} starts, database up and migrated")
    ready, readyz, reported = [], [], []
    for _ in range(arguments.starts):
        daemon = Daemon(arguments.genflow, arguments.config, arguments.log, environment)
        ready.append(daemon.wait_ready())
        readyz.append(daemon.wait_readyz())
        reported.append(daemon.startup_ms / 1000)
        daemon.stop()
        if daemon.process.returncode != 0:
            fail(f"genflow serve exited with status {daemon.process.returncode} after SIGTERM")
    results["start_ready"] = stats(ready)
    results["start_readyz"] = stats(readyz)
    results["start_reported"] = stats(reported)

    # Parse and validate the same file in a fresh process.
    log(f"== genflow validate {name}.yaml: {arguments.validates} fresh processes")
    runs = []
    for _ in range(arguments.validates):
        started = time.perf_counter()
        done = subprocess.run([arguments.genflow, "validate", "--config", arguments.config, target], env=environment,
                              capture_output=True, text=True)
        runs.append(time.perf_counter() - started)
        if done.returncode != 0 or f"ok  {name}  version {version[:12]}" not in done.stdout:
            fail(f"genflow validate failed or did not report version {version[:12]}:\n{done.stdout}{done.stderr}")
    results["validate"] = stats(runs)

    print(json.dumps(results))


if __name__ == "__main__":
    main()
