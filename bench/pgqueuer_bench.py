"""PgQueuer drain baseline for bench/queue.

Installs PgQueuer's schema into the given (empty) database, enqueues N no-op jobs in one batch,
then times PgQueuer QueueManagers in drain mode (they stop by themselves once the queue is empty
and their in-flight jobs are logged) until all N are done. This mirrors the "drain" strategy of
PgQueuer's own tools/benchmark.py: several QueueManagers in one process, each on its own asyncpg
connection, uvloop when available.

Prints one line: `pgqueuer <jobs> <seconds> <consumers> <batch_size> <loop> <version> <pg_cpu_s>
<client_cpu_s>`: the CPU seconds (user + system) that PostgreSQL (the postmaster given by
`--postgres-pid` and its live backends, as bench/scaling counts them; `-` without it) and this
process spent during the drain. Exits non-zero if any job did not complete.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import os
import time
from datetime import timedelta

import asyncpg

import pgqueuer
from pgqueuer import AsyncpgDriver, Job, QueueManager, Queries
from pgqueuer.domain.types import QueueExecutionMode


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (the postmaster and its backends)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
    except OSError:
        children = []
    for p in [str(pid), *children]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / ticks


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--consumers", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--postgres-pid", type=int, help="the postmaster's pid, to report PostgreSQL's CPU")
    args = parser.parse_args()

    admin = await asyncpg.connect(dsn=args.dsn)
    queries = Queries(AsyncpgDriver(admin))
    if not await queries.schema_is_installed():
        await queries.install()
    await queries.clear_queue()
    await queries.clear_queue_log()
    await queries.clear_statistics_log()

    # One batched INSERT of N jobs (PgQueuer's list form of enqueue).
    await queries.enqueue(["noop"] * args.jobs, [None] * args.jobs, [0] * args.jobs)
    queued = await admin.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'queued'")
    if queued != args.jobs:
        print(f"pgqueuer: expected {args.jobs} queued jobs, found {queued}", file=sys.stderr)
        return 1

    managers: list[QueueManager] = []
    done = 0
    for _ in range(args.consumers):
        connection = await asyncpg.connect(dsn=args.dsn)
        qm = QueueManager(Queries(AsyncpgDriver(connection)))

        @qm.entrypoint("noop")
        async def noop(job: Job) -> None:
            nonlocal done
            done += 1

        managers.append(qm)

    pg_before = tree_cpu(args.postgres_pid) if args.postgres_pid else 0.0
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(
        *(
            qm.run(
                batch_size=args.batch_size,
                mode=QueueExecutionMode.drain,
                dequeue_timeout=timedelta(seconds=1),
            )
            for qm in managers
        )
    )
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    pg_cpu = f"{tree_cpu(args.postgres_pid) - pg_before:.2f}" if args.postgres_pid else "-"

    left = await admin.fetchval("SELECT count(*) FROM pgqueuer")
    logged = await admin.fetchval(
        "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful' AND entrypoint = 'noop'"
    )
    await admin.close()
    if left != 0 or logged != args.jobs or done != args.jobs:
        print(
            f"pgqueuer: not every job completed: {left} left in the queue, {logged} logged successful, "
            f"{done} entrypoint calls, {args.jobs} enqueued",
            file=sys.stderr,
        )
        return 1
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(f"pgqueuer {args.jobs} {seconds:.3f} {args.consumers} {args.batch_size} {loop} {pgqueuer.__version__} {pg_cpu} {client_cpu:.2f}")
    return 0


if __name__ == "__main__":
    try:
        import uvloop

        sys.exit(uvloop.run(main()))
    except ImportError:
        sys.exit(asyncio.run(main()))
